"""Auxiliary image losses on the network's clean-image estimate: SSIM, and a perceptual distance in the
features of a frozen classifier (the OCR judge).

Both compare x0_hat, the clean image the prediction implies, with the real x0, per image. They are added to
the diffusion loss by devagen.diffusion.objective with a weight each (diffusion.ssim_weight, diffusion.perceptual_weight)
and a per-image factor alpha_bar_t (the signal share of x_t): at high noise the estimate is a blur whatever
the network does, so it should barely count there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SSIM_WINDOW = 7  # Gaussian window side, px (32x32 glyphs: the usual 11 would span a third of the image)
SSIM_SIGMA = 1.5
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2  # Wang et al. 2004's constants for a dynamic range of 1


def _window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, 1, W, W) normalised Gaussian window."""
    r = torch.arange(SSIM_WINDOW, device=device, dtype=dtype) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-r.pow(2) / (2 * SSIM_SIGMA ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image (B,) of single-channel images (B, 1, S, S) in [-1, 1] (compared on [0, 1]),
    Gaussian-weighted local statistics, zero padding at the border."""
    a, b = (a.float() + 1) / 2, (b.float() + 1) / 2
    w = _window(a.device, a.dtype)
    pad = SSIM_WINDOW // 2
    blur = lambda x: F.conv2d(x, w, padding=pad)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    score = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / \
        ((mu_a ** 2 + mu_b ** 2 + SSIM_C1) * (var_a + var_b + SSIM_C2))
    return score.mean(dim=(1, 2, 3))


def stage_features(body: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The activations of `body` (a conv classifier's feature stack) at the end of each resolution: before
    every max-pool and before the global pooling (an nn.AdaptiveAvgPool2d), for x (B, C, S, S). In a judge
    built with pool_first the ones before a max-pool are the conv's output, before BatchNorm and ReLU."""
    found = []
    for layer in body:
        if isinstance(layer, (nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
            found.append(x)
            if isinstance(layer, nn.AdaptiveAvgPool2d):
                break
        x = layer(x)
    return found


def perceptual_distance(body: nn.Sequential, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) distance of images a, b (B, 1, S, S) in [-1, 1] in a frozen network's stage features: at each
    resolution the features are unit-normalised across channels at every pixel, then the squared difference
    is averaged over pixels and summed over channels (Zhang et al. 2018's LPIPS without learned weights)."""
    total = torch.zeros(a.shape[0], device=a.device)
    for fa, fb in zip(stage_features(body, a), stage_features(body, b)):
        fa, fb = F.normalize(fa.float(), dim=1, eps=1e-6), F.normalize(fb.float(), dim=1, eps=1e-6)
        total = total + (fa - fb).pow(2).sum(1).mean(dim=(1, 2))
    return total


def frozen(network: nn.Module) -> nn.Module:
    """The network in eval mode (BatchNorm uses its running statistics) with no parameter needing a gradient."""
    network.eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return network
