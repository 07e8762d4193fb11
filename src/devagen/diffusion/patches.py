"""Pixel patches as channels: what a patch-size-p UNet (presets.patch_size) denoises instead of pixels.

(B, C, S, S) images <-> (B, C·p², S/p, S/p), lossless (pixel_unshuffle / pixel_shuffle). Gaussian noise stays i.i.d.
Gaussian under the rearrangement, so diffusion in patch space is diffusion on pixels with a network whose first
layer reads p x p patches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, S, S) -> (B, C·patch², S/patch, S/patch); patch 1 returns the input."""
    return images if patch == 1 else F.pixel_unshuffle(images, patch)


def from_patches(patches: torch.Tensor, patch: int) -> torch.Tensor:
    """The inverse of to_patches."""
    return patches if patch == 1 else F.pixel_shuffle(patches, patch)
