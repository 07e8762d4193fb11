"""Build the UNet (from a named preset) and the noise scheduler. Knows nothing of training."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler, UNet2DModel

from .classes import NUM_CLASSES
from .config import DiffusionConfig, ModelConfig
from .errors import DevagenError
from .presets import PRESETS, downsample_factor

# Class index the conditional UNet reads as "no class": label dropout trains it, and
# classifier-free guidance uses it for the unconditional half of the batch.
NULL_LABEL = NUM_CLASSES  # 46


def build_unet(cfg: ModelConfig, image_size: int) -> UNet2DModel:
    """A freshly initialised UNet2DModel for (B, 1, image_size, image_size) inputs."""
    factor = downsample_factor(cfg.preset)
    if image_size % factor:
        raise DevagenError(f"params.yaml: data.image_size: {image_size} is not a multiple of {factor}, "
                           f"the downsampling of preset {cfg.preset!r}")
    extra = {"num_class_embeds": NUM_CLASSES + 1} if cfg.conditional else {}
    return UNet2DModel(sample_size=image_size, in_channels=1, out_channels=1, **PRESETS[cfg.preset], **extra)


def build_noise_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    """The DDPM forward process; saved with the model so samplers rebuild the same schedule."""
    # clip_sample only acts in DDPMScheduler.step (ancestral sampling), never in training.
    # Off here so every sampler sees the raw prediction; samplers that want clipping or
    # dynamic thresholding turn it on themselves.
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps,
                         beta_schedule=cfg.diffusers_beta_schedule,
                         prediction_type=cfg.prediction_type,
                         clip_sample=False)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
