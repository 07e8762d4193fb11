"""Self-conditioning (Chen, Zhang & Hinton, "Analog Bits", 2022): the UNet reads, beside x_t, its own previous
estimate of the clean image, as extra input channels (zeros when it has none).

Training gives a random SHARE of the batches an estimate made by the same network on that x_t with zeros in those
channels (no gradient through it), the other batches zeros, so the network learns both to draw from nothing and to
refine a draft. Sampling feeds each step the clean image the previous step's (guided) output implies; the first step
gets zeros. The estimate is clipped to the image range [-1, 1].

A self-conditioned UNet has twice as many input channels as output channels; that is how a saved one is known.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from diffusers import UNet2DModel

SHARE = 0.5  # share of training batches given their own estimate (the paper's 50 %)


def is_self_conditioned(unet: torch.nn.Module) -> bool:
    """Whether the UNet reads a clean-image estimate beside x_t (in_channels twice out_channels); a UNet wrapped
    for several processes (DistributedDataParallel's .module) is read through the wrapper."""
    config = getattr(unet, "module", unet).config
    return config.in_channels == 2 * config.out_channels


def denoised_channels(unet: UNet2DModel) -> int:
    """Channels of what the UNet denoises: its input channels, less the estimate's half when self-conditioned."""
    return unet.config.in_channels // (2 if is_self_conditioned(unet) else 1)


def with_estimate(x: torch.Tensor, estimate: Optional[torch.Tensor]) -> torch.Tensor:
    """The network input (B, 2C, H, W): x_t (B, C, H, W) and the estimate like it (None: zeros)."""
    return torch.cat([x, torch.zeros_like(x) if estimate is None else estimate.to(x.dtype)], dim=1)


def clipped(x0: torch.Tensor) -> torch.Tensor:
    """An estimate as the network reads it: detached, in [-1, 1]."""
    return x0.detach().clamp(-1.0, 1.0)


def training_estimate(estimate_x0: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B, C, H, W) self-conditioning input for a training batch x_t: with probability SHARE (drawn with `generator`)
    the whole batch's estimate_x0(x_t), made without gradient, else zeros. One coin per batch, not per image: a
    second pass over the whole batch costs about what one over half of it does on a CPU, so half the steps pay it."""
    if torch.rand((), generator=generator, device=noisy.device) >= SHARE:
        return torch.zeros_like(noisy)
    with torch.no_grad():
        return clipped(estimate_x0(noisy)).to(noisy.dtype)
