"""The training loops' shared parts: the learning-rate schedule (every loop's), and for the small loops
(distillation rounds, the autoencoder) one optimizer update and the loss averaged over windows of steps, read from
the device once per window (the main loop has LossMeter)."""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch

from .errors import DevagenError


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine", cycle: int = 0,
              floor: float = 0.0) -> float:
    """The lr at optimizer step `step` as a share of the peak, in [0, 1]: linear warm-up from 0 over `warmup` steps,
    then `schedule` between `floor` and 1: cosine (one half-cosine down to floor at step `total`), cyclic (triangular:
    down to floor and back up every `cycle` steps) or restarts (half-cosine down to floor, back to 1, every `cycle`)."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    if schedule == "cosine":  # the same floats as diffusers' get_cosine_schedule_with_warmup when floor is 0
        progress = float(step - warmup) / float(max(1, total - warmup))
        shape = max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    elif schedule == "cyclic":
        shape = abs(1.0 - 2.0 * ((step - warmup) % cycle) / cycle)
    elif schedule == "restarts":
        shape = 0.5 * (1.0 + math.cos(math.pi * ((step - warmup) % cycle) / cycle))
    else:
        raise ValueError(f"unknown lr schedule {schedule!r}")
    return floor + (1.0 - floor) * shape


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int, schedule: str = "cosine", cycle: int = 0,
                floor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR that sets each step's lr to the optimizer's lr times lr_factor (stepped once per optimizer step)."""
    def factor(step: int) -> float:
        return lr_factor(step, warmup, total, schedule, cycle, floor)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_update(loss: torch.Tensor, parameters: Iterable[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                     schedule: torch.optim.lr_scheduler.LRScheduler, grad_clip: float) -> None:
    """Backward, clip the gradient norm at grad_clip (0: no clipping), step optimizer and lr schedule, zero grads."""
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(list(parameters), grad_clip)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)


class WindowMean:
    """Losses in, their mean over each window of `every` steps out (the window's last step reads it)."""

    def __init__(self, device: torch.device, every: int, stage: str, fix: str) -> None:
        self.every, self.stage, self.fix = every, stage, fix
        self._total, self._count = torch.zeros((), device=device), 0
        self.first, self.last = math.nan, math.nan  # the first and the latest window means

    def add(self, loss: torch.Tensor, step: int, final: bool) -> Optional[float]:
        """Record step `step`'s (1-based) loss; at a window's end (or the final step) return the window's mean.

        A non-finite mean raises DevagenError naming the step and what to change (`fix`)."""
        self._total, self._count = self._total + loss.detach().float(), self._count + 1
        if step % self.every and not final:
            return None
        mean = float(self._total) / self._count
        self._total, self._count = torch.zeros_like(self._total), 0
        if not math.isfinite(mean):
            raise DevagenError(f"{self.stage}: loss became {mean} at step {step}; {self.fix}")
        self.first = mean if math.isnan(self.first) else self.first
        self.last = mean
        return mean
