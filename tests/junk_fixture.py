"""Images that are not characters, for legibility tests: noise, blank, white, scrambled glyphs, untrained samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from model_fixture import make_model_dir


def gaussian_noise(n: int, size: int, seed: int) -> np.ndarray:
    """uint8 (n, size, size): N(127.5, 64²) per pixel, clipped."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(127.5, 64.0, (n, size, size)), 0, 255).astype(np.uint8)


def uniform_noise(n: int, size: int, seed: int) -> np.ndarray:
    """uint8 (n, size, size): every pixel uniform in [0, 255]."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def constant(n: int, size: int, value: int) -> np.ndarray:
    """uint8 (n, size, size) all `value` (0: blank black, 255: all white)."""
    return np.full((n, size, size), value, dtype=np.uint8)


def scrambled(glyphs: np.ndarray, tile: int, seed: int) -> np.ndarray:
    """uint8 (N, S, S) glyphs cut into tile x tile squares, shuffled within each image (S divisible by tile)."""
    n, s = len(glyphs), glyphs.shape[-1]
    k = s // tile
    tiles = glyphs.reshape(n, k, tile, k, tile).transpose(0, 1, 3, 2, 4).reshape(n, k * k, tile, tile)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([t[rng.permutation(k * k)] for t in tiles])
    return shuffled.reshape(n, k, k, tile, tile).transpose(0, 1, 3, 2, 4).reshape(n, s, s)


def untrained_samples(tmp: Path, n: int, size: int, steps: int = 3, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size) from a random-weight unconditional `tiny` UNet, DPM-Solver++ for `steps` steps."""
    import torch

    from devagen.sampling.pipeline import load_pipeline

    pipeline = load_pipeline(make_model_dir(tmp / "untrained", conditional=False, image_size=size), device="cpu")
    return pipeline(batch_size=n, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed))


def junk_sets(glyphs: np.ndarray, tmp: Path, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every kind of non-character, n of each, at the glyphs' size; scrambles the first n glyphs."""
    size = glyphs.shape[-1]
    return {"gaussian noise": gaussian_noise(n, size, seed), "uniform noise": uniform_noise(n, size, seed + 1),
            "blank": constant(n, size, 0), "white": constant(n, size, 255),
            "scrambled 8x8": scrambled(glyphs[:n], 8, seed), "untrained model": untrained_samples(tmp, n, size)}
