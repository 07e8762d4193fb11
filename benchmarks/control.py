"""How faithfully a style-conditioned model follows the pen it is asked for, and how consistent one word's
characters are. Pure numpy on values measured with devagen.pen.conditions.measure_pen (the style measures' definitions).
"""

from __future__ import annotations

import numpy as np


def faithfulness(asked: np.ndarray, measured: np.ndarray, relative: bool = False) -> dict[str, float]:
    """Asked vs measured values (N,) each: Pearson correlation over images and over the medians per asked
    value, and the median error (measured - asked; relative = as a fraction of the asked value)."""
    asked, measured = np.asarray(asked, float), np.asarray(measured, float)
    keep = np.isfinite(asked) & np.isfinite(measured)
    asked, measured = asked[keep], measured[keep]
    levels = np.unique(asked)
    medians = np.array([np.median(measured[asked == v]) for v in levels])
    error = (measured - asked) / asked if relative else measured - asked
    corr = lambda a, b: float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 and a.std() > 0 and b.std() > 0 else float("nan")  # noqa: E731
    return {"n": int(len(asked)), "r_images": corr(asked, measured), "r_medians": corr(levels, medians),
            "median_error": float(np.median(error)), "median_abs_error": float(np.median(np.abs(error))),
            "levels": levels.tolist(), "measured_medians": medians.tolist()}


def pooled_spread(values: np.ndarray, groups: np.ndarray) -> float:
    """Standard deviation of values (N,) around their own group's mean, pooled over groups (N,) of >= 2."""
    values, groups = np.asarray(values, float), np.asarray(groups)
    squares, dof = 0.0, 0
    for g in np.unique(groups):
        members = values[groups == g]
        if len(members) >= 2:
            squares += float(((members - members.mean()) ** 2).sum())
            dof += len(members) - 1
    return float(np.sqrt(squares / dof)) if dof else float("nan")
