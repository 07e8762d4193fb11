"""Training classifier guidance's noisy classifier (devagen.diffusion.noisy_classifier): AdamW with warm-up then
cosine, batches of DHCD train images noised to uniformly random timesteps of the diffusion schedule, each step's
batch, noise and timesteps drawn from its own seeded stream; and its accuracy on images noised to given timesteps."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch
from diffusers import DDPMScheduler
from tqdm.auto import tqdm

from ..core.config import DiffusionConfig, NoisyClassifierConfig
from ..core.device import autocast, precision_name
from ..core.seeding import seeded_generator
from ..core.updates import WindowMean, optimizer_update, warmup_schedule
from ..data.prepared import to_model_range
from ..diffusion.noisy_classifier import NoisyClassifier, classifier_loss
from ..diffusion.unet import build_noise_scheduler

WARMUP_STEPS = 30  # at most; a tenth of the steps when fewer
LOSS_READ_EVERY = 25
GRAD_CLIP = 1.0
PRECISION = "auto"  # bf16 autocast where the CPU computes it natively (devagen.core.device), else fp32


def train_noisy_classifier(images: np.ndarray, labels: np.ndarray, cfg: NoisyClassifierConfig,
                           diffusion: DiffusionConfig, device: torch.device,
                           progress: bool = True) -> tuple[NoisyClassifier, dict[str, Any]]:
    """Train on uint8 images (N, S, S) with labels (N,) int64 at diffusion's schedule; the classifier (eval mode,
    fp32 weights, on `device`) and its training stats."""
    torch.manual_seed(cfg.seed)  # the initial weights
    classifier = NoisyClassifier(cfg.width, images.shape[-1]).to(device).train()
    scheduler = build_noise_scheduler(diffusion)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = warmup_schedule(optimizer, min(WARMUP_STEPS, cfg.steps // 10), cfg.steps)
    data, targets = torch.from_numpy(images).to(device), torch.from_numpy(labels.astype(np.int64)).to(device)
    losses = WindowMean(device, LOSS_READ_EVERY, "noisy_classifier",
                        f"lower noisy_classifier.lr (now {cfg.lr:g}) and re-run")
    began = time.perf_counter()
    with tqdm(range(cfg.steps), desc="noisy classifier", unit="step", disable=not progress) as bar:
        for step in bar:
            generator = seeded_generator(device, cfg.seed, step)
            index = torch.randint(0, len(data), (cfg.batch_size,), generator=generator, device=device)
            with autocast(device, PRECISION):
                loss = classifier_loss(classifier, scheduler, to_model_range(data[index]), targets[index], generator)
            optimizer_update(loss, classifier.parameters(), optimizer, schedule, GRAD_CLIP)
            mean = losses.add(loss, step + 1, step + 1 == cfg.steps)
            if mean is not None:
                bar.set_postfix(loss=f"{mean:.3f}")
    seconds = time.perf_counter() - began
    return classifier.eval(), {"steps": cfg.steps, "first_loss": losses.first, "final_loss": losses.last,
                               "seconds": seconds, "img_per_s": cfg.steps * cfg.batch_size / seconds,
                               "params": sum(p.numel() for p in classifier.parameters()), "device": str(device),
                               "precision": precision_name(device, PRECISION)}


@torch.no_grad()
def accuracy_by_timestep(classifier: NoisyClassifier, scheduler: DDPMScheduler, images: np.ndarray,
                         labels: np.ndarray, timesteps: Sequence[int], seed: int, batch_size: int = 256) -> list[float]:
    """The classifier's accuracy on uint8 images (N, S, S) with labels (N,) noised to each timestep (seeded noise)."""
    device = next(classifier.parameters()).device
    x0, y = to_model_range(torch.from_numpy(images)).to(device), torch.from_numpy(labels).to(device)
    out = []
    for t in timesteps:
        generator, right = seeded_generator(device, seed, t), 0
        for start in range(0, len(x0), batch_size):
            clean = x0[start:start + batch_size]
            steps = torch.full((len(clean),), t, device=device, dtype=torch.long)
            noise = torch.randn(clean.shape, generator=generator, device=device, dtype=clean.dtype)
            noisy = scheduler.add_noise(clean, noise, steps)
            right += int((classifier(noisy, steps).argmax(1) == y[start:start + batch_size]).sum())
        out.append(right / max(len(x0), 1))
    return out
