"""Build the UNet (a preset and its params.yaml overrides) and the noise scheduler. Knows nothing of training."""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import nn

from ..core.classes import NUM_CLASSES
from ..core.config import DiffusionConfig
from ..core.shape import ModelConfig
from ..core.errors import DevagenError
from ..core.presets import attention_levels, check_model, model_downsample, model_shape, patch_size
from .variance import LEARNED_RANGE

# Class index the conditional UNet reads as "no class": label dropout trains it, and
# classifier-free guidance uses it for the unconditional half of the batch.
NULL_LABEL = NUM_CLASSES  # 46
STYLE_CODES = 2  # stroke and slant (devagen.pen.conditions.codes)
LAYOUT_CODES = 4  # with model.layout_conditioning: the ink's centroid and spread after them
STYLE_WIDTH = 2 + STYLE_CODES  # columns of a style condition without augmentation labels: class, codes, given
# Beta schedules that DDPMScheduler, DDIMScheduler and DPMSolverMultistepScheduler all compute from the name alone.
NAMED_EVERYWHERE = ("linear", "scaled_linear", "squaredcos_cap_v2")


class ClassStyleEmbedding(nn.Module):
    """The class embedding of a style-conditioned UNet: condition (B, 4) float = [class index, stroke code,
    slant code, 1 if a style is given else 0] -> (B, dim), added to the time embedding like a class's. With
    layout_dim = 4 (model.layout_conditioning) the 4 layout codes follow the slant code: (B, 8).

    The class part is the plain UNet's embedding table (index NULL_LABEL = no class). The style part is a
    small MLP of the codes (zeroed when not given) and the given-flag, so "no style" is its own learned input
    and unconditional-in-style sampling works as it does for the class (train.style_drop_prob).

    With augment_dim > 0 (a model trained with train.augment) the condition may carry augment_dim more columns,
    the augmentation labels of devagen.data.augment, mapped by a bias-free linear layer (as EDM's): zeros, or
    no such columns (B, 4), mean "not augmented" and add nothing, which is how sampling asks for real glyphs.
    """

    def __init__(self, num_classes: int, dim: int, augment_dim: int = 0, layout_dim: int = 0) -> None:
        super().__init__()
        self.codes = STYLE_CODES + layout_dim
        self.width = 2 + self.codes  # class, codes, given
        self.classes = nn.Embedding(num_classes, dim)
        self.style = nn.Sequential(nn.Linear(self.codes + 1, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.augment_dim = augment_dim
        if augment_dim:  # built last: the other weights draw the same numbers as a model without it
            self.augment = nn.Linear(augment_dim, dim, bias=False)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        if condition.shape[1] not in {self.width, self.width + self.augment_dim}:
            raise ValueError(f"style conditions must be (B, {self.width})" + (
                f" or (B, {self.width + self.augment_dim})" if self.augment_dim else "") + f", got {tuple(condition.shape)}")
        dtype = self.style[0].weight.dtype
        given = condition[:, 1 + self.codes:self.width].float()
        style = torch.cat([condition[:, 1:1 + self.codes].float() * given, given], dim=1)
        out = self.classes(condition[:, 0].round().long()) + self.style(style.to(dtype))
        if condition.shape[1] > self.width:
            out = out + self.augment(condition[:, self.width:].to(dtype))
        return out


class StyleUNet2DModel(UNet2DModel):
    """UNet2DModel whose class_labels are style conditions (B, 4), (B, 8) with layout codes (layout_dim 4), and
    augment_dim more columns with augmentation labels (see ClassStyleEmbedding). The same config and keyword
    arguments as UNet2DModel, plus augment_dim and layout_dim, which config.json holds only when not 0;
    diffusers saves and loads it as its own class (config.json's _class_name), and a plain UNet2DModel does not
    load its weights."""

    def __init__(self, augment_dim: int = 0, layout_dim: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.config.num_class_embeds is None:
            raise ValueError("StyleUNet2DModel needs num_class_embeds (style conditioning rides on the class embedding)")
        self.class_embedding = ClassStyleEmbedding(self.config.num_class_embeds,
                                                   self.time_embedding.linear_2.out_features, augment_dim, layout_dim)
        # a model without them keeps the config it always had
        self.register_to_config(**{k: v for k, v in (("augment_dim", augment_dim), ("layout_dim", layout_dim)) if v})


# diffusers builds models from config.json by reading the __init__ signature: UNet2DModel's + augment_dim, layout_dim.
StyleUNet2DModel.__init__.__signature__ = inspect.signature(UNet2DModel.__init__).replace(parameters=[
    *inspect.signature(UNet2DModel.__init__).parameters.values(),
    *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=0, annotation=int)
      for name in ("augment_dim", "layout_dim"))])
UNET_CLASSES = {cls.__name__: cls for cls in (UNet2DModel, StyleUNet2DModel)}


def is_style_conditioned(unet: nn.Module) -> bool:
    """Whether the network reads (class, stroke, slant) conditions rather than class indices."""
    return isinstance(unet, StyleUNet2DModel)


def augment_dim(unet: nn.Module) -> int:
    """Augmentation labels the network reads (its config's augment_dim; 0 for a model trained without them)."""
    return int(getattr(unet.config, "augment_dim", 0) or 0) if is_style_conditioned(unet) else 0


def layout_dim(unet: nn.Module) -> int:
    """Layout codes the network reads (its config's layout_dim: 4 with model.layout_conditioning, else 0)."""
    return int(getattr(unet.config, "layout_dim", 0) or 0) if is_style_conditioned(unet) else 0


def style_codes(unet: nn.Module) -> int:
    """Pen codes the network reads: 2 (stroke, slant), 6 with layout codes, 0 for a network without a pen."""
    return STYLE_CODES + layout_dim(unet) if is_style_conditioned(unet) else 0


def no_augmentation(unet: nn.Module, batch: int, device: torch.device) -> Optional[torch.Tensor]:
    """The "not augmented" labels (batch, augment_dim) of zeros that sampling gives, or None for a model without."""
    dim = augment_dim(unet)
    return torch.zeros(batch, dim, device=device) if dim else None


def condition(labels: torch.Tensor, style_codes: Optional[torch.Tensor], given: Optional[torch.Tensor] = None,
              augment: Optional[torch.Tensor] = None, codes: int = STYLE_CODES) -> torch.Tensor:
    """A style-conditioned UNet's class_labels (B, 2 + K) from labels (B,) (NULL_LABEL = none), codes (B, K)
    (None = no style for any image: K = `codes` zeros) and a bool (B,) mask of images whose style is given
    (default: all); (B, 2 + K + A) with augmentation labels augment (B, A) (devagen.data.augment) appended."""
    b = labels.shape[0]
    if style_codes is None:
        style_codes = torch.zeros(b, codes, device=labels.device)
        given = torch.zeros(b, dtype=torch.bool, device=labels.device)
    elif given is None:
        given = torch.ones(b, dtype=torch.bool, device=labels.device)
    parts = [labels.float()[:, None], style_codes.float(), given.float()[:, None]]
    return torch.cat(parts if augment is None else [*parts, augment.float()], dim=1)


def with_null_class(class_labels: torch.Tensor, null_label: int) -> torch.Tensor:
    """The same conditions with the class replaced by the null label (the style, if any, kept)."""
    if class_labels.ndim == 1:
        return torch.full_like(class_labels, null_label)
    out = class_labels.clone()
    out[:, 0] = null_label
    return out


def build_unet(cfg: ModelConfig, image_size: int, channels: int = 1, augment_labels: int = 0,
               learned_variance: bool = False) -> UNet2DModel:
    """A freshly initialised UNet2DModel (StyleUNet2DModel with model.style_conditioning) of cfg's shape (the preset
    with params.yaml's overrides) for (B, channels, S, S) inputs: images, or a latent model's latents (then image_size
    is the latent side). A patch preset's UNet takes them as patches (devagen.diffusion.patches):
    (B, channels·p², S/p, S/p). augment_labels > 0: a style-conditioned UNet that also reads that many augmentation
    labels (ClassStyleEmbedding). learned_variance: twice the output channels, the second half the reverse step's
    variance (devagen.diffusion.variance)."""
    if augment_labels and not cfg.style_conditioning:
        raise ValueError("augmentation labels ride on the style conditions: they need model.style_conditioning")
    check_model(cfg)
    factor = model_downsample(cfg)
    if image_size % factor:
        raise DevagenError(f"params.yaml: prepare.image_size: {image_size} is not a multiple of {factor}, "
                           f"the downsampling of preset {cfg.preset!r} with its model.* shape")
    extra = {"num_class_embeds": NUM_CLASSES + 1} if cfg.conditional else {}
    if cfg.scale_shift:
        extra["resnet_time_scale_shift"] = "scale_shift"
    if augment_labels:
        extra["augment_dim"] = augment_labels
    if cfg.layout_conditioning:
        extra["layout_dim"] = LAYOUT_CODES
    cls = StyleUNet2DModel if cfg.style_conditioning else UNet2DModel
    patch = patch_size(cfg.preset)  # a patch preset denoises (channels·p², S/p, S/p): devagen.diffusion.patches
    inputs = channels * patch ** 2
    return cls(sample_size=image_size // patch, in_channels=inputs * (2 if cfg.self_conditioning else 1),
               out_channels=inputs * (2 if learned_variance else 1),
               **model_shape(cfg), **extra)


def built_shape(unet: UNet2DModel, patch: int) -> dict:
    """The shape a UNet was built with, read from its config (what the train stage records): widths, attention
    levels, layers, mid block, groups, dropout, head size, input side and channels, patch side."""
    config = unet.config
    mid = "none" if config.mid_block_type is None else ("attention" if config.add_attention else "plain")
    return {"block_out_channels": list(config.block_out_channels),
            "attention_levels": list(attention_levels(config)), "layers_per_block": config.layers_per_block,
            "mid_block": mid, "norm_num_groups": config.norm_num_groups, "dropout": config.dropout,
            "attention_head_dim": config.attention_head_dim, "sample_size": config.sample_size,
            "in_channels": config.in_channels, "patch_size": patch}


def explicit_betas(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """A scheduler config (training's or a saved one) that every sampler builds: a beta_schedule that not all of
    diffusers' DDPM, DDIM and DPM-Solver schedulers compute by name (sigmoid: DDPM only) gets its betas, computed
    once by DDPMScheduler, as trained_betas (float32 values, exact through JSON); other configs come back unchanged."""
    config = dict(schedule)
    if config.get("trained_betas") is not None or config.get("beta_schedule", "linear") in NAMED_EVERYWHERE:
        return config
    betas = DDPMScheduler.from_config({**config, "rescale_betas_zero_snr": False}).betas  # a sampler may rescale them
    return {**config, "trained_betas": betas.tolist()}


def build_noise_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    """The DDPM forward process; saved with the model so samplers rebuild the same schedule (and a diffusers user's
    DDPM step reads a learned variance)."""
    # clip_sample only acts in DDPMScheduler.step (ancestral sampling), never in training.
    # Off here so every sampler sees the raw prediction; samplers that want clipping or
    # dynamic thresholding turn it on themselves.
    # A learned-variance model's saved scheduler says so: diffusers' DDPM step then reads the output's variance half.
    learned = {"variance_type": LEARNED_RANGE} if cfg.learned_variance else {}
    return DDPMScheduler(**explicit_betas({"num_train_timesteps": cfg.num_train_timesteps,
                                           "beta_schedule": cfg.diffusers_beta_schedule,
                                           "prediction_type": cfg.prediction_type, "clip_sample": False, **learned}))


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
