"""Prepared arrays (uint8 images, labels, pen measures per split, written and read with their checks) and
pixel-range conversion.

This is the only module where pixel ranges change: uint8 [0, 255] on disk and in the
prepared arrays, float32 [-1, 1] inside networks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from ..core.classes import CLASS_NAMES, glyphs
from ..core.integrity import damaged, read_npz
from .archive import SPLITS, iter_decoded

@dataclass(frozen=True)
class Split:
    """Decoded images of one split: uint8 (N, S, S), int64 labels (N,) and, once measured, the pen
    float32 (N, 2): each image's stroke width (px) and slant (degrees), measured by the prepare stage
    (devagen.pen.conditions.measure_pen)."""

    images: np.ndarray
    labels: np.ndarray
    pen: Optional[np.ndarray] = None


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W) -> uint8 (N, size, size), bicubic; identity when already that size."""
    if images.shape[-1] == size:
        return images
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
    return out


@dataclass(frozen=True)
class Prepared:
    """Both splits at the target size, and what was removed to make train leak-free."""

    train: Split
    test: Split
    duplicates_within_train: int
    duplicates_of_test: int


def dedupe_train(train_hashes: list[bytes], test_hashes: set[bytes]) -> tuple[np.ndarray, int, int]:
    """Keep-mask for train: drop repeats within train and copies of test images."""
    seen: set[bytes] = set()
    keep = np.ones(len(train_hashes), dtype=bool)
    within = cross = 0
    for i, h in enumerate(train_hashes):
        if h in test_hashes:
            keep[i], cross = False, cross + 1
        elif h in seen:
            keep[i], within = False, within + 1
        seen.add(h)
    return keep, within, cross


def prepare(archive: Path, image_size: int, dedupe: bool = True, progress: bool = False) -> Prepared:
    """Decode the archive once into leak-free train/test arrays at `image_size`."""
    images: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labels: dict[str, list[int]] = {s: [] for s in SPLITS}
    for member, img in iter_decoded(archive, progress):
        images[member.split].append(img)
        labels[member.split].append(member.label)
    arrays = {s: (np.stack(images[s]), np.asarray(labels[s], dtype=np.int64)) for s in SPLITS}
    keep, within, cross = np.ones(len(arrays["Train"][0]), dtype=bool), 0, 0
    if dedupe:
        digest = lambda a: hashlib.sha1(a.tobytes()).digest()  # noqa: E731
        test_hashes = {digest(a) for a in arrays["Test"][0]}
        keep, within, cross = dedupe_train([digest(a) for a in arrays["Train"][0]], test_hashes)
    train_x, train_y = arrays["Train"]
    test_x, test_y = arrays["Test"]
    train_x, test_x = resize(train_x[keep], image_size), resize(test_x, image_size)
    return Prepared(Split(train_x, train_y[keep]), Split(test_x, test_y), within, cross)


def save_split(split: Split, path: Path) -> None:
    """Write one split as .npz (images, labels, pen if measured, class_names, glyphs) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    pen = {} if split.pen is None else {"pen": split.pen}
    np.savez(tmp, images=split.images, labels=split.labels, **pen,
             class_names=np.asarray(CLASS_NAMES), glyphs=np.asarray(glyphs()))
    tmp.replace(path)


def read_labelled_images(path: Path, stage: str, unlabelled_ok: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """images uint8 (N, S, S) and labels int (N,) in [0, 46) (or -1 if unlabelled_ok) from an .npz written by
    `stage`; a missing, truncated, tampered or malformed file raises one line naming the stage to re-run."""
    arrays = read_npz(path, ("images", "labels"), stage)
    images, labels = arrays["images"], arrays["labels"]
    low = -1 if unlabelled_ok else 0
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2] or len(images) == 0:
        raise damaged(path, f"images are {images.dtype} {images.shape}, not uint8 (N, S, S)", stage)
    if labels.dtype.kind not in "iu" or labels.shape != (len(images),):
        raise damaged(path, f"labels are {labels.dtype} {labels.shape}, not integers ({len(images)},)", stage)
    if labels.min() < low or labels.max() >= len(CLASS_NAMES):
        raise damaged(path, f"labels span [{labels.min()}, {labels.max()}], not [{low}, {len(CLASS_NAMES)})", stage)
    return images, labels


def read_pen(path: Path, count: int) -> np.ndarray:
    """The pen measures float32 (count, 2) saved beside a split's images, or DevagenError naming the fix."""
    pen = read_npz(path, ("pen",), "prepare")["pen"]
    if pen.shape != (count, 2) or not np.isfinite(pen).all():
        raise damaged(path, f"pen is {pen.dtype} {pen.shape}, not finite ({count}, 2)", "prepare")
    return pen.astype(np.float32)


def load_split(path: Path) -> Split:
    """Read a split written by save_split; a missing or damaged file says which stage rebuilds it."""
    return Split(*read_labelled_images(path, "prepare"))


def data_stats(prepared: Prepared) -> dict:
    """Counts per split and class, duplicates removed, train pixel mean/std in [0, 1]."""
    def per_class(split: Split) -> dict[str, int]:
        counts = np.bincount(split.labels, minlength=len(CLASS_NAMES))
        return {name: int(c) for name, c in zip(CLASS_NAMES, counts)}

    pixels = prepared.train.images.astype(np.float64) / 255.0
    return {
        "image_size": int(prepared.train.images.shape[-1]),
        "classes": len(CLASS_NAMES),
        "train": int(len(prepared.train.labels)),
        "test": int(len(prepared.test.labels)),
        "duplicates_removed": prepared.duplicates_within_train + prepared.duplicates_of_test,
        "duplicates_within_train": prepared.duplicates_within_train,
        "duplicates_of_test": prepared.duplicates_of_test,
        "pixel_mean": float(pixels.mean()),
        "pixel_std": float(pixels.std()),
        "train_per_class": per_class(prepared.train),
        "test_per_class": per_class(prepared.test),
    }


def grey_histogram(images: np.ndarray, per_image: bool = False) -> np.ndarray:
    """uint8 (N, S, S) -> float64 shares of pixels at each grey level: (256,) over all pixels, or (N, 256) per image
    (each row sums to 1)."""
    flat = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    if not per_image:
        return np.bincount(flat.reshape(-1), minlength=256) / max(flat.size, 1)
    offsets = flat.astype(np.int64) + 256 * np.arange(len(flat))[:, None]
    return np.bincount(offsets.reshape(-1), minlength=256 * len(flat)).reshape(len(flat), 256) / max(flat.shape[1], 1)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 tensor (B, S, S) or (B, 1, S, S) -> float32 (B, 1, S, S) in [-1, 1]."""
    x = images.float() if images.dim() == 4 else images.float().unsqueeze(1)
    return x / 127.5 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """float tensor (B, 1, S, S) in [-1, 1] (clamped) -> uint8 (B, S, S)."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).squeeze(1)
