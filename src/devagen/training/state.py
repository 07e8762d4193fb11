"""What one training run holds (TrainRun) and where its checkpoints go (Checkpoints): shared by the loop,
the checkpoints and the saved model folder."""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from accelerate import Accelerator
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel

from ..core.config import AugmentConfig, DiffusionConfig, TrainConfig
from ..diffusion.adversarial import Adversary
from ..pen.conditions import PenReference


@dataclass
class TrainRun:
    """What one training run holds: configs, prepared objects, the data on the device."""

    cfg: TrainConfig
    diffusion_cfg: DiffusionConfig
    augment_cfg: AugmentConfig
    accelerator: Accelerator
    model: UNet2DModel  # the bare module (EMA and saving use it)
    unet: torch.nn.Module  # the prepared module (DDP-wrapped under several processes)
    optimizer: Any
    lr_scheduler: Any
    ema: Optional[EMAModel]
    noise_scheduler: DDPMScheduler
    images: torch.Tensor  # (N, S, S) uint8 on the device
    labels: Optional[torch.Tensor]  # (N,) int64 on the device; None for an unconditional model
    styles: Optional[torch.Tensor]  # (N, 2) pen codes (devagen.pen.conditions.codes) on the device; None unless style-conditioned
    total_steps: int
    judge_body: Optional[torch.nn.Sequential] = None  # the frozen judge's feature stack (perceptual loss) on the device
    vae: Optional[torch.nn.Module] = None  # latent diffusion: the frozen autoencoder whose latents the UNet learns
    patch: int = 1  # a patch preset's patch side: x0 is denoised as devagen.diffusion.patches.to_patches(x0, patch)
    adversary: Optional[Adversary] = None  # diffusion.adversarial_weight > 0: the critic and its optimizer
    pen_reference: Optional[PenReference] = None  # pen model with train.augment: codes are measured per batch against it
    offset_direction: Optional[torch.Tensor] = None  # latent model: offset noise's direction (sample_noise), on the device

    @property
    def global_batch(self) -> int:
        """Images per optimizer step, over all processes and micro-steps."""
        return self.cfg.batch_size * self.cfg.grad_accum * self.accelerator.num_processes


@dataclass
class Checkpoints:
    """Where this run's checkpoints go, what identifies them, and the newest one written or loaded."""

    directory: Path
    fingerprint: str
    facts: dict  # what the fingerprint hashes, stored readable in each checkpoint
    last: Optional[Path] = None
    step: int = 0  # optimizer steps the newest one holds
    loss: float = math.nan  # smoothed loss when it was written
    sealing: Optional[Future] = None  # main process: the newest one's checksums, metadata and rename


def network_copy(run: TrainRun, ema: bool) -> UNet2DModel:
    """A standalone copy of the network: its EMA weights when ema is True and there is an EMA, else the raw ones."""
    net = type(run.model).from_config(run.model.config)
    net.load_state_dict(run.model.state_dict())
    if ema and run.ema is not None:
        run.ema.copy_to(net.parameters())
    return net
