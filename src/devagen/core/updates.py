"""The training loops' shared parts, written once: the learning-rate schedules (warm-up + cosine / cyclic / restarts
for the diffusion loop, distillation and the autoencoder; one-cycle for the judges' SGD recipe), one optimizer
update, and the loss meters that keep losses on the device (WindowMean for the small loops, LossMeter for the main
loop)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

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


def one_cycle(step: int, total: int, warmup: float) -> float:
    """The judges' one-cycle recipe (SGD): LR factor in (0, 1] at `step` of `total`: linear rise over a `warmup` fraction, then cosine toward 0."""
    up = max(1, round(warmup * total))
    if step < up:
        return (step + 1) / up
    return 0.5 * (1 + math.cos(math.pi * (step - up) / max(1, total - up)))


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


# ---------------------------------------------------------------- the main loop's loss meter
# Reading a loss as a Python float (`.item()`) every step makes the host wait for the device at every step.
# LossMeter adds each step's loss with device ops only and is read at log time and before anything is saved: one
# host sync per `train.log_every` steps. It remembers the first non-finite loss and its step, so the stop it causes
# names the same step as a per-step check would.

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
