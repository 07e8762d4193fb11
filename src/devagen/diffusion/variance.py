"""Learned reverse-step variance (Nichol & Dhariwal 2021, Improved DDPM §3.1) with diffusion.learned_variance.

The UNet outputs twice the sample's channels (a patch model: twice its patch channels, so both halves are patches
like the sample): the first half is the usual prediction (eps, v or x0), which sets the reverse step's mean; the
second half v interpolates each value's log variance between the posterior's β̃_t and β_t,
    log σ² = (v + 1)/2 · log β_t + (1 − v)/2 · log β̃_t,
which is how diffusers' DDPMScheduler(variance_type="learned_range") reads it when sampling. Only the variational
bound trains v (the hybrid loss L_simple + λ·L_vlb, with the mean's gradient stopped in L_vlb): vlb_term.
Samplers other than DDPM use the first half alone.
"""

from __future__ import annotations

import copy
import math
from typing import Optional

import torch
from diffusers import DDPMScheduler, UNet2DModel

from .guidance import predicted_x0

LEARNED_RANGE = "learned_range"  # the DDPMScheduler variance_type of a learned-variance model's saved scheduler
LN2 = math.log(2.0)


def learns_variance(unet: torch.nn.Module) -> bool:
    """Whether a UNet outputs a variance half beside its prediction (out_channels twice in_channels)."""
    return unet.config.out_channels == 2 * unet.config.in_channels


def split_output(output: torch.Tensor, channels: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(prediction (B, C, H, W), variance half (B, C, H, W) or None) of a network output for C-channel samples:
    (B, 2C, H, W) splits in two, (B, C, H, W) is all prediction (returned as is)."""
    if output.shape[1] == channels:
        return output, None
    if output.shape[1] != 2 * channels:
        raise ValueError(f"a network output of {output.shape[1]} channels fits neither {channels}-channel samples "
                         f"nor a learned variance ({2 * channels})")
    prediction, variance = output.split(channels, dim=1)
    return prediction, variance


def mean_half(output: torch.Tensor, channels: int) -> torch.Tensor:
    """The prediction (B, C, H, W) of an output with or without a variance half (what non-DDPM samplers read)."""
    return split_output(output, channels)[0]


def join_output(prediction: torch.Tensor, variance: Optional[torch.Tensor]) -> torch.Tensor:
    """split_output's inverse: (B, 2C, H, W), or the prediction alone when there is no variance half."""
    return prediction if variance is None else torch.cat([prediction, variance], dim=1)


def _per_step(scheduler: DDPMScheduler, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """The training grid's per-timestep constants at t (B,), each (B, 1, 1, 1) float32 on t's device: the posterior
    q(x_{t-1} | x_t, x0)'s coefficients of x0 and x_t and its log variance (log β̃_t, clipped at t = 0, where β̃ is 0,
    to β̃_1 as Improved DDPM does), and log β_t. Computed in float64 on the host."""
    alpha_bar = scheduler.alphas_cumprod.detach().cpu().double()
    betas = 1.0 - alpha_bar / torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])  # = scheduler.betas, from ᾱ exactly
    previous = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    posterior = betas * (1.0 - previous) / (1.0 - alpha_bar)
    table = {"x0": betas * previous.sqrt() / (1.0 - alpha_bar),
             "xt": (1.0 - previous) * (1.0 - betas).sqrt() / (1.0 - alpha_bar),
             "min_log": torch.cat([posterior[1:2], posterior[1:]]).log(),
             "max_log": betas.log()}
    return {k: v.to(t.device, torch.float32)[t].view(-1, 1, 1, 1) for k, v in table.items()}


def log_variance(v: torch.Tensor, min_log: torch.Tensor, max_log: torch.Tensor) -> torch.Tensor:
    """The model's log σ² from its variance half v: (v + 1)/2 of the way from log β̃_t to log β_t (learned_range)."""
    fraction = (v + 1.0) / 2.0
    return fraction * max_log + (1.0 - fraction) * min_log


def gaussian_kl(mean_q: torch.Tensor, log_var_q: torch.Tensor, mean_p: torch.Tensor,
                log_var_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_q, e^log_var_q) || N(mean_p, e^log_var_p)) per element, in nats (>= 0)."""
    return 0.5 * (log_var_p - log_var_q - 1.0 + torch.exp(log_var_q - log_var_p)
                  + (mean_q - mean_p).pow(2) * torch.exp(-log_var_p))


def vlb_term(scheduler: DDPMScheduler, prediction: torch.Tensor, variance: torch.Tensor, noisy: torch.Tensor,
             x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-image L_t (B,) in bits per dimension: KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)), p Gaussian with the
    mean that the network's prediction half implies (through its clean-image estimate; gradient stopped: L_vlb
    trains only the variance, as in Improved DDPM) and the log variance of its variance half. At t = 0 the bound's term is the discretised decoder's NLL of x0;
    this takes the same KL there instead (q's variance clipped to β̃_1), an approximation that stays >= 0 and
    trains the t = 0 variance the same way. All (B, C, H, W); float32 maths."""
    step = _per_step(scheduler, t)
    x0, noisy = x0.float(), noisy.float()
    true_mean = step["x0"] * x0 + step["xt"] * noisy
    estimate = predicted_x0(scheduler, prediction.detach().float(), noisy, t)
    model_mean = step["x0"] * estimate + step["xt"] * noisy
    model_log_var = log_variance(variance.float(), step["min_log"], step["max_log"])
    kl = gaussian_kl(true_mean, step["min_log"], model_mean, model_log_var)
    return kl.mean(dim=tuple(range(1, kl.ndim))) / LN2


def mean_only(unet: UNet2DModel) -> UNet2DModel:
    """A copy of `unet` that outputs only its prediction: a learned-variance UNet rebuilt with conv_out cut to its
    first half (the same weights otherwise); any other UNet deep-copied. What a DDIM student starts from."""
    if not learns_variance(unet):
        return copy.deepcopy(unet)
    half = unet.config.in_channels
    student = type(unet).from_config({**unet.config, "out_channels": half})
    state = unet.state_dict()
    state["conv_out.weight"], state["conv_out.bias"] = state["conv_out.weight"][:half], state["conv_out.bias"][:half]
    student.load_state_dict(state)
    return student.to(unet.device, unet.dtype).train(unet.training)
