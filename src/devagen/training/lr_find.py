"""The learning-rate finder (Smith 2017, "Cyclical learning rates"): a short run of the configured training whose lr
grows exponentially each optimizer step, the loss recorded against it until it diverges.

The run is the training loop's own (its setup, objective, optimizer step and data order, with the lr schedule
replaced by the sweep, no warm-up and no EMA), so the curve belongs to the model, batch and losses params.yaml
configures. The suggestion is a tenth of the lr where the smoothed loss is lowest: the minimum of a short, noisy
sweep is stable between neighbouring steps where the steepest slope jumps about, and a decade below it the loss
still falls fast, well short of where it turns up. The steepest-descent lr is reported beside it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.config import AugmentConfig, DiffusionConfig, TrainConfig
from ..core.errors import DevagenError
from ..core.shape import ModelConfig
from .loop import _check_data, _optimizer_step, _setup, check_compile, training_pen

SMOOTHING = 0.9  # EMA factor of the smoothed loss: ~10-step memory, short beside a sweep of a few hundred steps
DIVERGE = 4.0  # stop once the smoothed loss exceeds this multiple of its lowest value
SUGGEST_BELOW_MIN = 10.0  # the suggestion: the min-loss lr divided by this


def sweep_factor(step: int, steps: int, start: float, end: float) -> float:
    """The lr at step `step` of `steps` as a multiple of `start`: start -> end geometrically (end at the last step)."""
    return (end / start) ** (step / max(1, steps - 1))


def lr_sweep(train_cfg: TrainConfig, model_cfg: ModelConfig, diffusion_cfg: DiffusionConfig,
             augment_cfg: AugmentConfig, images: np.ndarray, labels: np.ndarray, start: float, end: float,
             steps: int, pen: Optional[np.ndarray] = None, judge: Optional[torch.nn.Module] = None,
             vae: Optional[torch.nn.Module] = None, progress: bool = True) -> list[dict]:
    """Rows {step, lr, loss, smoothed} of up to `steps` optimizer steps with lr from start to end (geometric);
    stops at a non-finite loss or once the smoothed loss passes DIVERGE x its minimum (the minimum + (DIVERGE - 1) x
    its size, should the adversarial term take it below 0). Inputs as train_diffusion's."""
    check_compile(train_cfg)
    _check_data(images, labels, model_cfg.conditional)
    cfg = dataclasses.replace(train_cfg, lr=start, warmup_steps=0, max_steps=steps, ema_decay=0.0, guide_step=0)
    run = _setup(cfg, model_cfg, diffusion_cfg, augment_cfg, images, labels, training_pen(model_cfg, pen, images),
                 judge, vae, lr_lambda=lambda step: sweep_factor(step, steps, start, end))
    rows: list[dict] = []
    average, best = 0.0, math.inf
    with tqdm(range(steps), desc="lr-find", unit="step", disable=not progress) as bar:
        for step in bar:
            lr = run.lr_scheduler.get_last_lr()[0]
            loss = float(_optimizer_step(run, step))  # a host sync per step: the sweep reads every loss
            if not math.isfinite(loss):
                break
            average = SMOOTHING * average + (1 - SMOOTHING) * loss
            smoothed = average / (1 - SMOOTHING ** (step + 1))  # bias-corrected: the first steps are not pulled to 0
            rows.append({"step": step + 1, "lr": lr, "loss": loss, "smoothed": smoothed})
            bar.set_postfix(lr=f"{lr:.2e}", loss=f"{smoothed:.4f}")
            best = min(best, smoothed)
            if smoothed > best + (DIVERGE - 1) * abs(best):  # DIVERGE x best; also for the adversarial term's < 0
                break
    if not rows:
        raise DevagenError(f"lr-find: the loss was not finite at the first step (lr {start:g}); lower --start")
    return rows


def suggest(rows: list[dict]) -> dict[str, Optional[float]]:
    """From lr_sweep's rows: min_loss_lr (lowest smoothed loss), suggested_lr (min_loss_lr / SUGGEST_BELOW_MIN) and
    steepest_lr (most negative slope of the smoothed loss against log lr before the minimum; None with < 3 rows)."""
    lrs = np.array([r["lr"] for r in rows], dtype=np.float64)
    smoothed = np.array([r["smoothed"] for r in rows], dtype=np.float64)
    lowest = int(np.argmin(smoothed))
    steepest = None
    if lowest >= 2:
        slope = np.gradient(smoothed[:lowest + 1], np.log10(lrs[:lowest + 1]))
        steepest = float(lrs[int(np.argmin(slope))])
    return {"min_loss_lr": float(lrs[lowest]), "suggested_lr": float(lrs[lowest]) / SUGGEST_BELOW_MIN,
            "steepest_lr": steepest}
