"""Guidance and clean-image maths on a diffusers scheduler's noise schedule: what a model output (eps, v or x0
prediction) implies for the clean image, its inverse, the projected guidance update and classifier guidance's move.
Used by sampling (guidance) and by training (auxiliary losses on the predicted clean image, distillation targets)."""

from __future__ import annotations

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin


def alpha_sigma(scheduler: SchedulerMixin, sample: torch.Tensor, t: torch.Tensor | int) -> tuple:
    """(alpha_t, sigma_t): x_t = alpha_t·x0 + sigma_t·noise at integer timestep t, or per image for t (B,)
    (then shaped (B, 1, ..., 1) to broadcast over sample)."""
    index = torch.as_tensor(t, device=sample.device).long()
    alpha_bar = scheduler.alphas_cumprod.to(sample.device, torch.float32)[index]
    if alpha_bar.ndim == 1:
        alpha_bar = alpha_bar.view(-1, *([1] * (sample.ndim - 1)))
    return alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()


def output_from_x0(scheduler: SchedulerMixin, x0: torch.Tensor, sample: torch.Tensor,
                   t: torch.Tensor | int) -> torch.Tensor:
    """The model output (eps, v or x0 prediction) that implies clean image x0 at timestep t: predicted_x0's inverse."""
    a, s = alpha_sigma(scheduler, sample, t)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (sample - a * x0) / s
    if kind == "v_prediction":
        return (a * sample - x0) / s
    if kind == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {kind!r}")


def project_guidance(good: torch.Tensor, worse: torch.Tensor, scale: float, parallel: float) -> torch.Tensor:
    """Guided clean image (B, C, H, W) from two x0 predictions, with the part of the guidance update that is
    parallel to `good` weighted by `parallel` (Sadat et al. 2024, APG): 1 = plain guidance; 0 drops the part
    that only rescales the prediction, which is what oversaturates (here: inflates the ink of strokes)."""
    delta = good - worse
    dims = tuple(range(1, good.ndim))
    along = (delta * good).sum(dims, keepdim=True) / good.pow(2).sum(dims, keepdim=True).clamp_min(1e-12) * good
    return good + (scale - 1.0) * (delta - along + parallel * along)


def guided_prediction(scheduler: SchedulerMixin, good: torch.Tensor, worse: torch.Tensor | None, scale: float,
                      parallel: float, weak: torch.Tensor | None, weak_scale: float, sample: torch.Tensor,
                      t: torch.Tensor | int) -> torch.Tensor:
    """The guided model output: worse + scale·(good − worse) (worse None: good; parallel != 1: projected in x0 space,
    project_guidance), plus (weak_scale − 1)·(good − weak) where a weak network's output is given (autoguidance
    added on top)."""
    mean = good
    if worse is not None and parallel == 1.0:
        mean = worse + scale * (good - worse)
    elif worse is not None:
        x0_good, x0_worse = (predicted_x0(scheduler, out, sample, t) for out in (good, worse))
        mean = output_from_x0(scheduler, project_guidance(x0_good, x0_worse, scale, parallel), sample, t)
    return mean if weak is None else mean + (weak_scale - 1.0) * (good - weak)


def predicted_x0(scheduler: SchedulerMixin, output: torch.Tensor, sample: torch.Tensor,
                 t: torch.Tensor | int) -> torch.Tensor:
    """Clean image (B, C, H, W) implied by the model output (eps, v or x0 prediction) at integer timestep t,
    or at one timestep per image for t (B,) (training's auxiliary losses)."""
    a, s = alpha_sigma(scheduler, sample, t)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (sample - s * output) / a
    if kind == "v_prediction":
        return a * sample - s * output
    if kind == "sample":
        return output
    raise ValueError(f"unknown prediction_type {kind!r}")


def classifier_guided(scheduler: SchedulerMixin, output: torch.Tensor, sample: torch.Tensor, t: torch.Tensor | int,
                      gradient: torch.Tensor, scale: float) -> torch.Tensor:
    """The model output (eps, v or x0 prediction) moved by classifier guidance (Dhariwal & Nichol 2021, Algorithm 2):
    eps - scale·sigma_t·gradient, where gradient (like sample) is ∇log p(y | x_t). For v and x0 predictions the same
    move, through the clean image it implies: x0 + scale·sigma_t²/alpha_t·gradient (eps and x0 of one x_t move
    together: x_t = alpha_t·x0 + sigma_t·eps)."""
    a, s = alpha_sigma(scheduler, sample, t)
    if scheduler.config.prediction_type == "epsilon":  # directly: the x0 round trip divides by alpha_t ~ 0 at t ~ T
        return output - scale * s * gradient.to(output.dtype)
    x0 = predicted_x0(scheduler, output, sample, t)
    return output_from_x0(scheduler, x0 + scale * s.square() / a * gradient.to(output.dtype), sample, t)
