"""What gives the samples away: the ones the CNN C2ST finds most generated, beside their nearest real images.

The C2ST (devagen.judges.c2st) scores every sample it held out with its probability of being generated. The
SHOWN samples it is surest of are paired with the nearest real test image of the same class in the OCR judge's
features (which see the letter's shape, not its pen width), and each pen and pixel measure of the pair is compared:
the median paired difference in units of the measure's spread over all samples and their neighbours. The measure
that separates the surest samples from their neighbours far more than all samples from theirs is what the
classifier reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ..pen import measures as pen
from ..report import figures, plots

SHOWN = 48  # samples the report shows, surest first
PAIRS_PER_ROW = 4
CHUNK = 256  # generated rows per distance block
FAINT = (1, 8)  # real DHCD's faint halo beside strokes: grey levels in this range
# (key, pixel share) measured beside the pen measures: exact white, the faint halo, exact black
PIXEL_MEASURES = {"white_share": lambda x: (x == 255).mean((1, 2)),
                  "faint_share": lambda x: ((x >= FAINT[0]) & (x <= FAINT[1])).mean((1, 2)),
                  "black_share": lambda x: (x == 0).mean((1, 2))}
COMPARED = ("stroke_width", "ink_mass", "ink_coverage", "ink_intensity", "edge_softness", "glyph_width",
            "glyph_height", "background", "slant", *PIXEL_MEASURES)


def nearest_real(gen_feats: np.ndarray, intended: np.ndarray, real_feats: np.ndarray,
                 real_labels: np.ndarray) -> np.ndarray:
    """int64 (N,): for each generated feature row (N, D) the index of the nearest real row (M, D) (Euclidean) of its
    intended class; intended -1 (unconditional) searches every real row."""
    out = np.zeros(len(gen_feats), dtype=np.int64)
    for c in np.unique(intended):
        gen_rows = np.flatnonzero(intended == c)
        pool = np.flatnonzero(real_labels == c) if c >= 0 else np.arange(len(real_feats))
        if len(pool) == 0:
            pool = np.arange(len(real_feats))
        candidates = real_feats[pool].astype(np.float64)
        norms = (candidates ** 2).sum(1)
        for start in range(0, len(gen_rows), CHUNK):  # (chunk, M) distances at a time: 2,300 x 13,800 would be GBs
            rows = gen_rows[start:start + CHUNK]
            out[rows] = pool[(norms[None, :] - 2 * gen_feats[rows].astype(np.float64) @ candidates.T).argmin(1)]
    return out


def image_measures(images: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 (N, S, S) -> {measure: float (N,)} for COMPARED: pen measures (NaN without ink) and pixel shares."""
    got = pen.measure(images)
    got.update({key: fn(images).astype(np.float64) for key, fn in PIXEL_MEASURES.items()})
    return {key: np.asarray(got[key], dtype=np.float64) for key in COMPARED}


def _spread(values: np.ndarray) -> float:
    """A robust spread of float values (NaN dropped): IQR / 1.349, else the std, else 1 (all equal)."""
    v = values[np.isfinite(values)]
    if len(v) < 2:
        return 1.0
    q1, q3 = np.percentile(v, [25, 75])
    return float((q3 - q1) / 1.349) or float(v.std()) or 1.0


def _median(values: np.ndarray) -> float | None:
    """Median of the finite values, None if there are none (JSON has no NaN)."""
    v = values[np.isfinite(values)]
    return float(np.median(v)) if len(v) else None


def separation(gen: dict[str, np.ndarray], real: dict[str, np.ndarray], top: np.ndarray,
               compared: tuple[str, ...] = COMPARED) -> list[dict[str, Any]]:
    """Per measure: medians of the `top` samples and of their neighbours, and the median paired difference (sample -
    its neighbour) in spreads for the top ones (`effect`) and for all (`all_effect`); largest |effect| first.
    gen, real: {measure: (N,)}, real[m][i] measured on sample i's neighbour."""
    rows = []
    for key in compared:
        diff = gen[key] - real[key]
        spread = _spread(np.concatenate([gen[key], real[key]]))
        effect, all_effect = _median(diff[top]), _median(diff)
        rows.append({"measure": key, "generated": _median(gen[key][top]), "real": _median(real[key][top]),
                     "effect": None if effect is None else effect / spread,
                     "all_effect": None if all_effect is None else all_effect / spread})
    return sorted(rows, key=lambda r: -abs(r["effect"] or 0.0))


def telltale(scores: np.ndarray, gen_feats: np.ndarray, intended: np.ndarray, samples: np.ndarray,
             real_feats: np.ndarray, real_labels: np.ndarray, real: np.ndarray, count: int = SHOWN) -> dict[str, Any]:
    """The `count` samples with the highest C2ST scores (N,) (NaN: never held out), their nearest real images and
    what separates them (separation) as JSON: samples, neighbours (indices into real), scores, measures."""
    ranked = np.argsort(-np.nan_to_num(scores, nan=-1.0), kind="stable")
    top = ranked[:min(count, int(np.isfinite(scores).sum()))]
    neighbours = nearest_real(gen_feats, intended, real_feats, real_labels)
    rows = separation(image_measures(samples), image_measures(real[neighbours]), top)
    return {"count": len(top), "samples": top.tolist(), "neighbours": neighbours[top].tolist(),
            "scores": [float(scores[i]) for i in top], "measures": rows}


def telltale_figure(samples: np.ndarray, real: np.ndarray, block: dict[str, Any]) -> Image.Image:
    """The block's samples at 4x, surest first, each beside its nearest real image (sample | real, pairs apart)."""
    blank = np.full((1, *samples.shape[1:]), 255, np.uint8)
    pairs = [np.concatenate([samples[i:i + 1], real[j:j + 1], blank]) for i, j in zip(block["samples"], block["neighbours"])]
    rows = []
    for start in range(0, len(pairs), PAIRS_PER_ROW):
        chunk = pairs[start:start + PAIRS_PER_ROW]
        rows.append((f"{start + 1}", np.concatenate(chunk)[:-1]))  # the rank of the row's first sample
    grid = figures.labelled_rows(rows or [("", blank)], scale=4)
    title = (f"The {block['count']} samples the C2ST finds most generated, surest first, at 4x: each generated glyph "
             "beside its nearest real test image of the same class (judge features)")
    return plots.stack_vertical([plots.text_banner(title, grid.width), grid], gap=0)
