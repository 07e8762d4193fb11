"""Pen-style conditions: each training image's stroke width and slant (the style measures' definitions),
how a style-conditioned network reads them, the ranges it was trained on, and drawing a style.

Units people use: `stroke` is a multiplier of the training set's median stroke width (1.0 = typical),
`slant` is in degrees relative to the character's own median slant in the training set (0 = typical
for that character, positive = the top leans further right). Relative, because the moment slant of a
glyph is mostly its shape (class medians span tens of degrees), so a raw angle asks different things of
different characters; measured on the first trained model, raw slant conditioning was barely followed
(asked -15..25°, measured medians 6.7..15.6°). The network reads two codes, log2(stroke) and slant / 30°.

A model folder records a `PenStyle` (in pen.json, devagen.sampling.hub): the median width in pixels,
the trained ranges (the 0.5th-99.5th percentiles of the training images) and, per class, a seeded pool
of (stroke, slant) pairs of real training images, from which styles are drawn when none is asked for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..core.classes import NUM_CLASSES
from ..core.errors import DevagenError
from .measures import INK, skeleton, skeleton_length, slant_degrees, stroke_width

SLANT_SCALE = 30.0  # degrees per unit of the slant code
RANGE_QUANTILES = (0.5, 99.5)  # percentiles of the training images that bound the values one may ask for
POOL_PER_CLASS = 32  # (stroke, slant) pairs kept per class to draw styles from


def measure_pen(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """uint8 (N, S, S) white-on-black -> float32 (N, 2): stroke width (px) and slant (degrees), as
    devagen.pen.measures measures them; an image without ink gets the median of the others."""
    out = np.empty((len(images), 2), np.float64)
    for start in range(0, len(images), chunk):
        part = np.asarray(images[start:start + chunk])
        binary = part > INK
        mass = part.sum((1, 2), dtype=np.int64) / 255.0
        with np.errstate(invalid="ignore", divide="ignore"):
            width = stroke_width(mass, *skeleton_length(skeleton(binary)))
        out[start:start + len(part), 0] = np.where(binary.any((1, 2)), width, np.nan)
        out[start:start + len(part), 1] = slant_degrees(part)
    for j in range(2):
        bad = ~np.isfinite(out[:, j])
        if bad.all():
            out[:, j] = 1.0 if j == 0 else 0.0
        elif bad.any():
            out[bad, j] = np.median(out[~bad, j])
    return out.astype(np.float32)


@dataclass(frozen=True)
class PenStyle:
    """What a style-conditioned model saw in training: see the module docstring."""

    median_width_px: float
    stroke_range: tuple[float, float]  # multipliers of median_width_px
    slant_range: tuple[float, float]  # degrees, relative to the class median
    pool: tuple[tuple[int, float, float], ...]  # (class, stroke multiplier, relative slant degrees)
    class_slant: tuple[float, ...]  # each class's median slant in degrees (what relative slant 0 means)

    def to_json(self) -> dict[str, Any]:
        """Plain lists and floats (for the model folder's pen.json)."""
        return {k: [list(p) for p in v] if k == "pool" else (list(v) if isinstance(v, (tuple, list)) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw: Optional[dict]) -> Optional["PenStyle"]:
        """Inverse of to_json; None stays None (a model without style conditioning)."""
        if raw is None:
            return None
        return cls(float(raw["median_width_px"]), tuple(map(float, raw["stroke_range"])),
                   tuple(map(float, raw["slant_range"])),
                   tuple((int(c), float(s), float(a)) for c, s, a in raw["pool"]),
                   tuple(map(float, raw["class_slant"])))

    def check(self, stroke: Optional[float], slant: Optional[float]) -> None:
        """DevagenError (one line, naming the range) unless the asked values lie in the trained ranges."""
        for name, value, (lo, hi), unit in (("--stroke", stroke, self.stroke_range, "x the median width"),
                                             ("--slant", slant, self.slant_range, " degrees from the character's typical slant")):
            if value is not None and not (np.isfinite(value) and lo <= value <= hi):
                raise DevagenError(f"{name} {value:g} is outside the range this model was trained on: "
                                   f"{lo:.2f} to {hi:.2f}{unit}")

    def draw(self, labels: Optional[Sequence[int]], generator: torch.Generator) -> tuple[float, float]:
        """One (stroke, slant) pair of a random training image, of the class labels[0] if given (else any),
        clipped to the trained ranges."""
        pool = [p for p in self.pool if labels is None or p[0] == int(labels[0])] or list(self.pool)
        _, stroke, slant = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        # the pool holds real images' values, a few beyond the 0.5-99.5 % ranges: clip, so a drawn pen passes check()
        return float(np.clip(stroke, *self.stroke_range)), float(np.clip(slant, *self.slant_range))


def class_medians(values: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float (num_classes,): the median of values (N,) per class (0 for a class without images)."""
    return np.array([np.median(values[labels == c]) if (labels == c).any() else 0.0 for c in range(num_classes)])


def relative_slant(pen: np.ndarray, labels: np.ndarray, class_slant: Sequence[float]) -> np.ndarray:
    """Measured slants pen[:, 1] (degrees) minus their class's median: what --slant asks for."""
    return pen[:, 1] - np.asarray(class_slant, dtype=float)[np.asarray(labels)]


def pen_style(pen: np.ndarray, labels: np.ndarray, seed: int = 0, per_class: int = POOL_PER_CLASS) -> PenStyle:
    """PenStyle of training images with measures pen float (N, 2) (measure_pen) and labels (N,) in [0, 46)."""
    median = float(np.median(pen[:, 0]))
    stroke = pen[:, 0] / median
    lo, hi = np.percentile(stroke, RANGE_QUANTILES)
    class_slant = np.round(class_medians(pen[:, 1], labels, NUM_CLASSES), 3)
    slant = relative_slant(pen, labels, class_slant)
    slo, shi = np.percentile(slant, RANGE_QUANTILES)
    rng = np.random.default_rng(seed)
    pool = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        for i in rng.choice(members, min(per_class, len(members)), replace=False):
            pool.append((int(c), round(float(stroke[i]), 4), round(float(slant[i]), 3)))
    return PenStyle(round(median, 4), (round(float(lo), 3), round(float(hi), 3)),
                    (round(float(slo), 2), round(float(shi), 2)), tuple(pool), tuple(float(x) for x in class_slant))


def codes(stroke: torch.Tensor, slant: torch.Tensor) -> torch.Tensor:
    """Stroke multipliers (B,) and slants in degrees (B,) -> the network's codes (B, 2) float32."""
    return torch.stack([torch.log2(stroke.float().clamp_min(1e-3)), slant.float() / SLANT_SCALE], dim=1)


@dataclass(frozen=True)
class PenReference:
    """What training codes are relative to: the training set's median stroke width (px) and each class's median
    slant (degrees, rounded as pen_style records them)."""

    median_width_px: float
    class_slant: np.ndarray  # float (NUM_CLASSES,)

    @classmethod
    def of(cls, pen: np.ndarray, labels: np.ndarray) -> "PenReference":
        """The reference of training images with measures pen (N, 2) (measure_pen) and labels (N,)."""
        return cls(float(np.median(pen[:, 0])), np.round(class_medians(pen[:, 1], labels, NUM_CLASSES), 3))


def training_codes(pen: np.ndarray, labels: np.ndarray, reference: Optional[PenReference] = None) -> np.ndarray:
    """measure_pen output (N, 2) in px and degrees, labels (N,) -> codes float32 (N, 2): stroke relative to the
    median width, slant relative to the median of the image's class, both of `reference` (default: of these
    images, as pen_style records them)."""
    reference = PenReference.of(pen, labels) if reference is None else reference
    stroke = torch.from_numpy(pen[:, 0] / reference.median_width_px)
    return codes(stroke, torch.from_numpy(relative_slant(pen, labels, reference.class_slant))).numpy()
