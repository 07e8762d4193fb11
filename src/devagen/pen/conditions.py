"""Pen-style conditions: each training image's stroke width and slant (the style measures' definitions),
how a style-conditioned network reads them, the ranges it was trained on, and drawing a style.

Units people use: `stroke` is a multiplier of the training set's median stroke width (1.0 = typical),
`slant` is in degrees relative to the character's own median slant in the training set (0 = typical
for that character, positive = the top leans further right). Relative, because the moment slant of a
glyph is mostly its shape (class medians span tens of degrees), so a raw angle asks different things of
different characters; measured on the first trained model, raw slant conditioning was barely followed
(asked -15..25°, measured medians 6.7..15.6°). The network reads two codes, log2(stroke) and slant / 30°.

With model.layout_conditioning the network also reads where the ink lies: four more codes, the ink's
grey-weighted centroid and spread (layout_moments), so that the sampler can ask for the placements DHCD's
writers used instead of the network's average one (benchmarks/results/c2st_scatter/README.md).

A model folder records a `PenStyle` (in pen.json, devagen.sampling.hub): the median width in pixels,
the trained ranges (the 0.5th-99.5th percentiles of the training images) and, per class, a seeded pool
of (stroke, slant[, layout moments]) of real training images, from which styles are drawn when none is asked for.
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
PEN_CODES = 2  # log2(stroke), slant / SLANT_SCALE
LAYOUT_CODES = 4  # ink centroid (y, x) and spread (y, x)
# Layout moments in units of the image side -> codes near unit scale: centroid about the centre in 1/16ths of the
# side, spread about DHCD's typical 0.23 of the side in 1/32ths (32x32: 2 px and 1 px per unit).
LAYOUT_CENTRE, LAYOUT_UNIT = np.array([0.5, 0.5, 0.23, 0.23]), np.array([1 / 16, 1 / 16, 1 / 32, 1 / 32])


def layout_moments(images: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S) white-on-black -> float32 (N, 4): the grey-weighted ink centroid (y, x) and spread (standard
    deviation; y, x), in pixels from the top-left pixel's centre; an image without ink gets the centre and 0."""
    x = np.asarray(images, dtype=np.float64)
    mass = x.sum(axis=(1, 2))
    safe = np.where(mass > 0, mass, 1.0)[:, None]
    rows, cols = np.arange(x.shape[1], dtype=np.float64), np.arange(x.shape[2], dtype=np.float64)
    by_row, by_col = x.sum(axis=2) / safe, x.sum(axis=1) / safe
    cy, cx = by_row @ rows, by_col @ cols
    sy = np.sqrt(np.maximum(by_row @ rows ** 2 - cy ** 2, 0.0))
    sx = np.sqrt(np.maximum(by_col @ cols ** 2 - cx ** 2, 0.0))
    empty = mass <= 0
    cy[empty], cx[empty] = (x.shape[1] - 1) / 2, (x.shape[2] - 1) / 2
    return np.stack([cy, cx, sy, sx], axis=1).astype(np.float32)


def layout_codes(moments: torch.Tensor, side: int) -> torch.Tensor:
    """Layout moments (B, 4) in px of a side x side image -> the network's layout codes (B, 4) float32."""
    centre = torch.as_tensor(LAYOUT_CENTRE * [side - 1, side - 1, side, side], dtype=torch.float32)
    unit = torch.as_tensor(LAYOUT_UNIT * side, dtype=torch.float32)
    return (moments.float().cpu() - centre) / unit


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


def per_image(value: Optional[float | Sequence[float] | np.ndarray], count: int, name: str) -> np.ndarray:
    """float (count,): one value repeated, one per image, or NaN (= draw one) for None."""
    if value is None:
        return np.full(count, np.nan)
    values = np.asarray(value, dtype=float).reshape(-1)
    values = np.full(count, values[0]) if values.size == 1 else values
    if len(values) != count:
        raise ValueError(f"{name}: {len(values)} values for {count} images")
    return values


@dataclass(frozen=True)
class PenStyle:
    """What a style-conditioned model saw in training: see the module docstring."""

    median_width_px: float
    stroke_range: tuple[float, float]  # multipliers of median_width_px
    slant_range: tuple[float, float]  # degrees, relative to the class median
    pool: tuple[tuple[float, ...], ...]  # (class, stroke multiplier, relative slant degrees[, 4 layout moments px])
    class_slant: tuple[float, ...]  # each class's median slant in degrees (what relative slant 0 means)

    @property
    def has_layout(self) -> bool:
        """Whether the pool carries layout moments (a model trained with model.layout_conditioning)."""
        return bool(self.pool) and len(self.pool[0]) == 3 + LAYOUT_CODES

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
                   tuple((int(p[0]), *map(float, p[1:])) for p in raw["pool"]),
                   tuple(map(float, raw["class_slant"])))

    def check(self, stroke: Optional[float], slant: Optional[float]) -> None:
        """DevagenError (one line, naming the range) unless the asked values lie in the trained ranges."""
        for name, value, (lo, hi), unit in (("--stroke", stroke, self.stroke_range, "x the median width"),
                                             ("--slant", slant, self.slant_range, " degrees from the character's typical slant")):
            if value is not None and not (np.isfinite(value) and lo <= value <= hi):
                raise DevagenError(f"{name} {value:g} is outside the range this model was trained on: "
                                   f"{lo:.2f} to {hi:.2f}{unit}")

    def draw(self, labels: Optional[Sequence[int]], generator: torch.Generator) -> tuple[float, ...]:
        """(stroke, slant) of a random training image, of the class labels[0] if given (else any), clipped to the
        trained ranges; followed by its 4 layout moments where the pool has them (has_layout)."""
        pool = [p for p in self.pool if labels is None or p[0] == int(labels[0])] or list(self.pool)
        _, stroke, slant, *layout = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        # the pool holds real images' values, a few beyond the 0.5-99.5 % ranges: clip, so a drawn pen passes check()
        return (float(np.clip(stroke, *self.stroke_range)), float(np.clip(slant, *self.slant_range)), *layout)

    def draw_each(self, labels: Sequence[Optional[int]], stroke: np.ndarray, slant: np.ndarray,
                  generators: Sequence[torch.Generator], layout: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """Per image i: stroke[i] and slant[i] where given (not NaN), the rest drawn (draw) from the pool of class
        labels[i] (None: any) with generators[i]; with `layout`, also each image's drawn layout moments (B, 4),
        so every image draws (else only those missing a value). Returns new arrays."""
        stroke, slant = np.array(stroke, dtype=np.float64), np.array(slant, dtype=np.float64)
        moments = np.zeros((len(labels), LAYOUT_CODES), np.float32) if layout else None
        for i, label in enumerate(labels):
            if np.isnan(stroke[i]) or np.isnan(slant[i]) or layout:
                drawn = self.draw(None if label is None else [label], generators[i])
                stroke[i] = drawn[0] if np.isnan(stroke[i]) else stroke[i]
                slant[i] = drawn[1] if np.isnan(slant[i]) else slant[i]
                if moments is not None:
                    moments[i] = drawn[2:]
        return stroke, slant, moments


def class_medians(values: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float (num_classes,): the median of values (N,) per class (0 for a class without images)."""
    return np.array([np.median(values[labels == c]) if (labels == c).any() else 0.0 for c in range(num_classes)])


def relative_slant(pen: np.ndarray, labels: np.ndarray, class_slant: Sequence[float]) -> np.ndarray:
    """Measured slants pen[:, 1] (degrees) minus their class's median: what --slant asks for."""
    return pen[:, 1] - np.asarray(class_slant, dtype=float)[np.asarray(labels)]


def pen_style(pen: np.ndarray, labels: np.ndarray, seed: int = 0, per_class: int = POOL_PER_CLASS) -> PenStyle:
    """PenStyle of training images with measures pen float (N, 2) (measure_pen), or (N, 6) with their layout
    moments after them (with_layout), and labels (N,) in [0, 46)."""
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
            pool.append((int(c), round(float(stroke[i]), 4), round(float(slant[i]), 3),
                         *(round(float(v), 3) for v in pen[i, PEN_CODES:])))
    return PenStyle(round(median, 4), (round(float(lo), 3), round(float(hi), 3)),
                    (round(float(slo), 2), round(float(shi), 2)), tuple(pool), tuple(float(x) for x in class_slant))


def codes(stroke: torch.Tensor, slant: torch.Tensor, layout: Optional[torch.Tensor] = None,
          side: int = 0) -> torch.Tensor:
    """Stroke multipliers (B,) and slants in degrees (B,) -> the network's codes (B, 2) float32; with layout
    moments (B, 4) in px of side x side images, their layout_codes after them (B, 6)."""
    pen = torch.stack([torch.log2(stroke.float().clamp_min(1e-3)), slant.float() / SLANT_SCALE], dim=1)
    return pen if layout is None else torch.cat([pen, layout_codes(layout, side).to(pen.device)], dim=1)


def with_layout(pen: np.ndarray, images: np.ndarray) -> np.ndarray:
    """measure_pen output (N, 2) and the images (N, S, S) it measured -> (N, 6): their layout moments appended."""
    return np.concatenate([pen[:, :PEN_CODES], layout_moments(images)], axis=1).astype(np.float32)


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


def training_codes(pen: np.ndarray, labels: np.ndarray, reference: Optional[PenReference] = None,
                   side: int = 0) -> np.ndarray:
    """measure_pen output (N, 2) in px and degrees, labels (N,) -> codes float32 (N, 2): stroke relative to the
    median width, slant relative to the median of the image's class, both of `reference` (default: of these
    images, as pen_style records them). A pen (N, 6) of with_layout: (N, 6), its layout codes (side: the images')."""
    reference = PenReference.of(pen, labels) if reference is None else reference
    stroke = torch.from_numpy(pen[:, 0] / reference.median_width_px)
    layout = torch.from_numpy(pen[:, PEN_CODES:]) if pen.shape[1] > PEN_CODES else None
    return codes(stroke, torch.from_numpy(relative_slant(pen, labels, reference.class_slant)), layout, side).numpy()
