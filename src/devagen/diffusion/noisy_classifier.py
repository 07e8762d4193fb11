"""Classifier guidance's network (Dhariwal & Nichol 2021): a small CNN that reads a noised image x_t and its timestep
and says which of the 46 classes it is, trained by the noisy_classifier stage. Its gradient ∇log p(y | x_t, t) steers
sampling toward class y (devagen.diffusion.guidance.classifier_guided). It is never the OCR judge, which measures
the samples: guiding by the judge would make the evaluation circular.

It reads pixels in [-1, 1] (B, 1, S, S) as x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·noise on the diffusion model's own
schedule; a patch model's x_t is the same pixels rearranged (devagen.diffusion.patches), so it is rearranged back
first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from ..core.classes import NUM_CLASSES
from ..core.config import DiffusionConfig, NoisyClassifierConfig
from ..core.device import full_precision
from ..core.errors import DevagenError, one_line
from ..core.integrity import check_manifest, damaged, write_manifest
from ..core.io import read_json, write_json
from ..core.off_notes import CLASSIFIER_NOTE
from .patches import from_patches
from .unet import build_noise_scheduler

WEIGHTS_FILE = "classifier.safetensors"
CONFIG_FILE = CLASSIFIER_NOTE  # {"enabled": false} when the stage is off; architecture and schedule when on
STAGE = "noisy_classifier"


def _groups(channels: int) -> int:
    """GroupNorm groups: 8, or fewer for narrow layers (always a divisor)."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class TimeBlock(nn.Module):
    """(B, cin, H, W), time embedding (B, E) -> (B, cout, H, W): norm, SiLU, conv; plus the embedding's projection;
    norm, SiLU, conv; plus a skip."""

    def __init__(self, cin: int, cout: int, embed: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(embed, cout)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(embed)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class NoisyClassifier(nn.Module):
    """x_t (B, 1, S, S) in model range, timesteps (B,) -> class logits (B, num_classes). Three levels of width w, 2w,
    4w (the side halved between them), each one TimeBlock; a sinusoidal timestep embedding of 4w."""

    def __init__(self, width: int, image_size: int, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.width, self.image_size, self.num_classes = width, image_size, num_classes
        embed = 4 * width
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(width, embed)
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.blocks = nn.ModuleList([TimeBlock(width, width, embed), TimeBlock(width, 2 * width, embed),
                                     TimeBlock(2 * width, 4 * width, embed)])
        self.norm = nn.GroupNorm(_groups(4 * width), 4 * width)
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        embed = self.time_embed(self.time_proj(t.reshape(-1).expand(x.shape[0])).to(x.dtype))
        h = self.stem(x)
        for i, block in enumerate(self.blocks):
            h = block(F.avg_pool2d(h, 2) if i else h, embed)
        return self.head(F.silu(self.norm(h)).mean(dim=(2, 3)))


def classifier_loss(classifier: NoisyClassifier, scheduler: DDPMScheduler, x0: torch.Tensor, labels: torch.Tensor,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Scalar cross-entropy of the classifier on x0 (B, 1, S, S) in [-1, 1] noised by `scheduler` to timesteps drawn
    uniformly from all of its training timesteps, against labels (B,) int64."""
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device)
    noisy = scheduler.add_noise(x0, torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype), t)
    return F.cross_entropy(classifier(noisy, t).float(), labels)


def log_prob_gradient(classifier: NoisyClassifier, x: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor,
                      patch: int = 1) -> torch.Tensor:
    """∇_x log p(labels | x_t = x, t): like x (B, C, h, w), the UNet's input (a patch model's pixel patches as
    channels, patch > 1), float32 whatever autocast the caller samples under."""
    with torch.enable_grad(), full_precision(x.device):
        x = x.detach().float().requires_grad_(True)
        steps = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        log_probs = F.log_softmax(classifier(from_patches(x, patch), steps).float(), dim=1)
        chosen = log_probs.gather(1, labels.reshape(-1, 1).to(x.device)).sum()
        return torch.autograd.grad(chosen, x)[0]


def schedule_of(cfg: DiffusionConfig) -> dict[str, Any]:
    """What of the diffusion section the classifier is trained for: the noise schedule."""
    return {"num_train_timesteps": cfg.num_train_timesteps, "beta_schedule": cfg.beta_schedule}


def save_classifier(classifier: NoisyClassifier, directory: Path, cfg: NoisyClassifierConfig,
                    schedule: dict[str, Any]) -> None:
    """classifier.safetensors (weights), classifier.json (architecture, schedule, the config that trained it) and
    checksums.json, written last."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in classifier.state_dict().items()},
              str(directory / WEIGHTS_FILE))
    arch = {"width": classifier.width, "image_size": classifier.image_size, "num_classes": classifier.num_classes}
    write_json({"enabled": True, "architecture": arch, "schedule": schedule, STAGE: dataclasses.asdict(cfg)},
               directory / CONFIG_FILE)
    write_manifest(directory)


def load_classifier(directory: Path) -> tuple[NoisyClassifier, DDPMScheduler]:
    """The network the stage wrote (eval mode, CPU, no parameter gradients) and the noise schedule it was trained on;
    a folder holding only the off-note, or a damaged one, raises DevagenError saying what to run."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / WEIGHTS_FILE).is_file():
        raise DevagenError(f"{directory}: no trained noisy classifier; set noisy_classifier.enabled: true and run "
                           f"`dvc repro {STAGE}`")
    check_manifest(directory, STAGE)
    try:
        info = read_json(directory / CONFIG_FILE)
        arch, schedule = info["architecture"], info["schedule"]
        classifier = NoisyClassifier(int(arch["width"]), int(arch["image_size"]), int(arch["num_classes"]))
        classifier.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        scheduler = build_noise_scheduler(DiffusionConfig(num_train_timesteps=int(schedule["num_train_timesteps"]),
                                                          beta_schedule=str(schedule["beta_schedule"])))
    except Exception as exc:  # json, KeyError, safetensors' own error type, shape mismatches
        raise damaged(directory, f"the network does not load: {one_line(exc)}", STAGE) from None
    return classifier.requires_grad_(False).eval(), scheduler


def load_classifier_for(directory: Path, alphas_cumprod: torch.Tensor, side: Optional[int]) -> NoisyClassifier:
    """load_classifier's network, checked to read what a diffusion model denoises: side x side pixels (None: latents,
    refused) noised with alphas_cumprod (T,)."""
    classifier, schedule = load_classifier(directory)
    if side != classifier.image_size:
        raise DevagenError(f"{directory}: the noisy classifier reads {classifier.image_size}x{classifier.image_size} "
                           f"pixels, the model draws {'latents' if side is None else f'{side}x{side} images'}; run "
                           f"`dvc repro {STAGE}` at the model's prepare.image_size, or use sample.guidance: cfg")
    trained = schedule.alphas_cumprod.float()
    if trained.shape != alphas_cumprod.shape or not torch.allclose(trained, alphas_cumprod.float().cpu()):
        raise DevagenError(f"{directory}: the noisy classifier was trained on another noise schedule than the model's; "
                           f"run `dvc repro {STAGE}` with the model's diffusion section")
    return classifier
