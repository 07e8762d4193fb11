"""The training loss kept on the device, so that a step never waits for the device to finish.

Reading a loss as a Python float (`.item()`) every step makes the host wait for the GPU at every step;
issue 11's stand-alone H100 probe (not this loop) measured 2.3k vs 2.9k img/s at batch 128 for it. LossMeter
adds each step's loss with device ops only and is read at log time and before anything is saved: one
host sync per `train.log_every` steps. It remembers the first non-finite loss and its step, so the
stop it causes names the same step as a per-step check would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

SMOOTHING = 0.98  # EMA of the per-step loss: what logs show and what training returns as its final loss

Gather = Callable[[torch.Tensor], torch.Tensor]  # (k,) on this rank -> (ranks * k,) (accelerate's gather)


@dataclass(frozen=True)
class LossReading:
    """One read of the meter, the same on every rank."""

    smoothed: float  # EMA of the finite per-step losses, averaged over ranks (NaN before the first step)
    bad_step: int  # first step whose loss was not finite on any rank; 0 when every loss was finite
    bad_loss: float  # that loss (nan, inf or -inf); 0.0 when none

    @property
    def finite(self) -> bool:
        return self.bad_step == 0


class LossMeter:
    """Per-step losses in, smoothed loss and first non-finite step out; nothing leaves the device until read()."""

    def __init__(self, device: torch.device, smoothed: float = math.nan) -> None:
        self._smoothed = torch.tensor(smoothed, dtype=torch.float32, device=device)
        self._bad_step = torch.zeros((), dtype=torch.float32, device=device)  # float: read in one stacked copy
        self._bad_loss = torch.zeros((), dtype=torch.float32, device=device)

    def add(self, loss: torch.Tensor, step: int) -> None:
        """Record step `step`'s loss (a scalar tensor on the meter's device). No host sync."""
        loss = loss.detach().float().reshape(())
        finite = torch.isfinite(loss)
        first_bad = ~finite & (self._bad_step == 0)
        self._bad_step = torch.where(first_bad, float(step), self._bad_step)
        self._bad_loss = torch.where(first_bad, loss, self._bad_loss)
        blended = torch.where(torch.isnan(self._smoothed), loss, SMOOTHING * self._smoothed + (1 - SMOOTHING) * loss)
        self._smoothed = torch.where(finite, blended, self._smoothed)

    def read(self, gather: Gather = lambda t: t) -> LossReading:
        """The meter's state over all ranks: one device-to-host copy (and one gather with several ranks)."""
        ranks = gather(torch.stack([self._smoothed, self._bad_step, self._bad_loss])).reshape(-1, 3).cpu()
        smoothed, bad_step, bad_loss = ranks[:, 0], ranks[:, 1], ranks[:, 2]
        bad = bad_step > 0
        if not bool(bad.any()):
            return LossReading(float(smoothed.mean()), 0, 0.0)
        first = int(torch.argmin(torch.where(bad, bad_step, math.inf)))
        return LossReading(float(smoothed.mean()), int(bad_step[first]), float(bad_loss[first]))
