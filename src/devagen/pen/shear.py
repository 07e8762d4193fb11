"""Slant by shear: give a generated glyph exactly the moment slant it was asked for.

The style measures define slant from ink moments, tan(slant) = -mu11 / mu02 (devagen.pen.measures.slant_degrees).
A horizontal shear about the ink centroid that moves each row by k·(cy - y) pixels leaves the centroid and
mu02 alone and turns mu11 into mu11 - k·mu02, so it adds exactly k to tan(slant). Each row moves on its
own, with linear interpolation along the row, which keeps a row's ink mass and first moment: the only
losses are ink pushed past the image's edge and rounding to uint8.

The pen-conditioned network follows an asked slant only a little (asked -15..+15 degrees, it drew medians
-1.7..+1.8 on the default model, benchmarks/results/style_control/README.md), so DevagenPipeline shears what it drew by the rest when a slant is asked.
"""

from __future__ import annotations

import numpy as np

from .measures import slant_degrees

MAX_DEGREES = 60.0  # targets and measured slants are clipped to ±this before the shear (tan grows fast)


def shear_rows(images: np.ndarray, k: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W), shear factors (N,) -> uint8 (N, H, W): row y of image n moved right by k·(cy - y) px,
    cy being the image's ink centroid row (images without ink, or k = 0, come back unchanged)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"shear_rows wants uint8 (N, H, W) images, got {images.dtype} {images.shape}")
    k = np.asarray(k, dtype=float).reshape(-1)
    if len(k) != len(images):
        raise ValueError(f"{len(k)} shear factors for {len(images)} images")
    x = images.astype(float)
    n, h, w = x.shape
    mass = x.sum((1, 2))
    ys = np.arange(h, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (x.sum(2) * ys).sum(1) / mass
    k = np.where(np.isfinite(cy), k, 0.0)
    cy = np.where(np.isfinite(cy), cy, 0.0)
    source = np.arange(w, dtype=float)[None, None, :] - (k[:, None] * (cy[:, None] - ys[None, :]))[:, :, None]
    left = np.floor(source)
    frac = source - left
    left = left.astype(np.int64)
    padded = np.concatenate([np.zeros((n, h, 1)), x, np.zeros((n, h, 1))], axis=2)  # index -1 and w read 0

    def at(col: np.ndarray) -> np.ndarray:
        return np.take_along_axis(padded, np.clip(col, -1, w) + 1, axis=2)

    out = (1.0 - frac) * at(left) + frac * at(left + 1)
    out = np.where((k == 0.0)[:, None, None], x, out)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def shear_to_slant(images: np.ndarray, target_degrees: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W), target slants (N,) in degrees (NaN = leave the image) -> the images sheared so that
    their moment slant is the target (up to ink lost at the edges and uint8 rounding)."""
    target = np.asarray(target_degrees, dtype=float).reshape(-1)
    if len(target) != len(images):
        raise ValueError(f"{len(target)} target slants for {len(images)} images")
    measured = slant_degrees(images)
    k = np.tan(np.radians(np.clip(target, -MAX_DEGREES, MAX_DEGREES))) - \
        np.tan(np.radians(np.clip(measured, -MAX_DEGREES, MAX_DEGREES)))
    return shear_rows(images, np.where(np.isfinite(k), k, 0.0))
