"""The tone map: the network's continuous grey levels onto DHCD's own pixel-value distribution.

DHCD's pixels are not the network's: 10.8 % of the train split's pixels are exactly 255 (the network's stroke cores
sit at 246-254), 5.1 % are a faint 1-8 halo beside the strokes, 60 % are exactly 0. A classifier reading nothing
but each image's 256-bin histogram tells raw samples from real ones almost every time
(benchmarks/results/quality_tone/README.md). The tone map is monotone, so it moves grey levels only, never shapes:
level `v` is given to the network's output levels in [t[v-1], t[v]) where `t` are 255 thresholds, the quantiles of
the network's own levels (a reference set it drew) at the train split's cumulative shares. A value lands on 255
exactly as often as in DHCD, the halo comes back, and a pixel's value depends on that pixel alone (no batch, no
dither), so a seed draws the same image in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

LEVELS = 256  # uint8 grey levels
# The thresholds are smoothed over this many levels either side (fewer at the ends): the empirical quantiles of a
# few hundred reference images scatter each mid-grey level's share by ~6 %, which a histogram classifier reads
# (460 reference images: tone C2ST 0.58 unsmoothed, 0.51 smoothed; benchmarks/results/quality_tone/README.md).
SMOOTHING = 4


def _smoothed(thresholds: np.ndarray, half_width: int) -> np.ndarray:
    """float (K,) non-decreasing -> the same, each the mean of its neighbours within half_width (fewer near the ends)."""
    cumulative = np.concatenate([[0.0], np.cumsum(thresholds)])
    k = np.arange(len(thresholds))
    h = np.minimum(half_width, np.minimum(k, len(thresholds) - 1 - k))
    return (cumulative[k + h + 1] - cumulative[k - h]) / (2 * h + 1)


@dataclass(frozen=True)
class ToneMap:
    """255 non-decreasing thresholds on the network's grey-level scale (0-255, unclamped); output level v for
    inputs in (t[v-1], t[v]]. `fitted_with` says what drew the reference levels (sampler, steps, guidance, images)."""

    thresholds: tuple[float, ...]
    fitted_with: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = np.asarray(self.thresholds, dtype=np.float64)
        if t.shape != (LEVELS - 1,) or not np.isfinite(t).all() or (np.diff(t) < 0).any():
            raise ValueError(f"a tone map needs {LEVELS - 1} finite non-decreasing thresholds, got shape {t.shape}")

    def apply(self, levels: torch.Tensor) -> torch.Tensor:
        """float (...) grey levels (0-255 scale, any range) -> uint8 (...) in DHCD's distribution."""
        bounds = torch.as_tensor(self.thresholds, dtype=torch.float32, device=levels.device)
        return torch.bucketize(levels.float().contiguous(), bounds).to(torch.uint8)

    def to_json(self) -> dict[str, Any]:
        """The map as plain JSON (tone.json's `tone`; devagen.sampling.folder writes it)."""
        return {"thresholds": [round(float(t), 4) for t in self.thresholds], "fitted_with": dict(self.fitted_with)}

    @staticmethod
    def from_json(raw: Optional[dict]) -> Optional["ToneMap"]:
        """to_json's output -> ToneMap; None stays None (a folder without a tone map)."""
        if raw is None:
            return None
        return ToneMap(tuple(float(t) for t in raw["thresholds"]), dict(raw.get("fitted_with") or {}))


def fit_tone_map(levels: np.ndarray, target: np.ndarray, fitted_with: Optional[dict[str, Any]] = None,
                 smoothing: int = SMOOTHING) -> ToneMap:
    """Reference levels float (N, H, W) the network drew (0-255 scale) and the target histogram (256,) of real pixels
    (devagen.data.prepared.grey_histogram) -> the ToneMap under which the reference's pixels follow the target."""
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (LEVELS,) or target.sum() <= 0:
        raise ValueError(f"the target must be a ({LEVELS},) histogram, got shape {target.shape}")
    shares = np.cumsum(target / target.sum())[:-1]
    thresholds = np.quantile(np.asarray(levels, dtype=np.float64).reshape(-1), np.clip(shares, 0.0, 1.0))
    thresholds = np.maximum.accumulate(_smoothed(thresholds, smoothing))  # the mean keeps order; accumulate: rounding
    return ToneMap(tuple(float(t) for t in thresholds), dict(fitted_with or {}))
