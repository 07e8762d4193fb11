"""The small training loops' shared parts (distillation rounds, the autoencoder): one optimizer update, and the
loss averaged over windows of steps, read from the device once per window (the main loop has LossMeter)."""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch

from .errors import DevagenError


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
