"""Is an image a character at all? A Mahalanobis out-of-distribution test in the OCR judge's features.

A softmax is confident about almost anything: on 46 noise images from a barely trained model the
judge read every one as some class with probability >= 0.7. So an image is legible only if the
judge is confident AND its penultimate features lie where real characters' do: one Gaussian per
class with a shared covariance (Lee et al. 2018, "A simple unified framework for detecting
out-of-distribution samples and adversarial attacks"), fitted on real train images when the judge
is trained; the score is the Mahalanobis distance to the mean of the class the image is read as.
The threshold is a quantile of the same distance on real train images held out of the fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.classes import NUM_CLASSES
from ..core.errors import DevagenError
from . import metrics
from .ocr import Judge, predict_features

OOD_FILE = "ood.safetensors"
OOD_FORMAT = "1"
# Ridge added to the shared covariance, as a share of its mean variance: a numerical guard only
# (the judge's ReLU features can have units that are ~never active on real images).
SHRINKAGE = 1e-6
RERUN = "re-run `dvc repro -f train_ocr` to write them"


@dataclass(frozen=True)
class OodStats:
    """Class Gaussians of real judge features and the distances of held-out real images."""

    means: np.ndarray  # (46, D) float64 class means; NaN rows for classes absent from the fit
    precision: np.ndarray  # (D, D) float64 inverse of the shared within-class covariance
    calibration: np.ndarray  # (M,) float64 sorted distances of held-out real train images

    def threshold(self, quantile: float) -> float:
        """The distance that `quantile` (in (0, 1]) of held-out real images do not exceed."""
        return float(np.quantile(self.calibration, quantile))


def holdout_mask(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """bool (N,): a seeded `share` of each class, at least one image and never all of a class."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        mask[idx[:min(math.ceil(share * len(idx)), len(idx) - 1)]] = True
    return mask


def fit_gaussians(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features (N, D), labels (N,) in [0, 46) → (class means (46, D), shared precision (D, D)), float64."""
    feats = np.asarray(features, dtype=np.float64)
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    sums = np.zeros((NUM_CLASSES, feats.shape[1]))
    np.add.at(sums, labels, feats)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]  # NaN rows: class absent
    dof = len(feats) - int((counts > 0).sum())
    if dof < 1:
        raise DevagenError(f"out-of-distribution statistics need more images than classes, got {len(feats)}")
    centred = feats - means[labels]
    cov = centred.T @ centred / dof
    cov += SHRINKAGE * max(np.trace(cov) / len(cov), 1e-12) * np.eye(len(cov))
    precision = np.linalg.inv(cov)
    return means, (precision + precision.T) / 2


def mahalanobis(features: np.ndarray, classes: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """features (N, D) → (N,) float64 distance to means[classes] under `precision`; inf for an absent class."""
    diff = np.asarray(features, dtype=np.float64) - means[classes]
    d2 = np.einsum("nd,de,ne->n", diff, precision, diff)
    return np.where(np.isnan(d2), np.inf, np.sqrt(np.maximum(d2, 0.0)))


def fit_ood(features: np.ndarray, labels: np.ndarray, predicted: np.ndarray, holdout: float, seed: int) -> OodStats:
    """Real train features (N, D), true labels and judge reads (N,) → Gaussians fitted on all but a held-out share."""
    held = holdout_mask(labels, holdout, seed)
    if not held.any():
        raise DevagenError("params.yaml: train_ocr.ood_holdout: no class has two train images to hold one out")
    means, precision = fit_gaussians(features[~held], labels[~held])
    calibration = np.sort(mahalanobis(features[held], predicted[held], means, precision))
    return OodStats(means, precision, calibration)


def in_distribution(features: np.ndarray, probs: np.ndarray, stats: OodStats, quantile: float) -> np.ndarray:
    """bool (N,): features (N, D) within the `quantile` threshold of the class each image is read as (probs (N, 46))."""
    if features.shape[1] != stats.means.shape[1]:
        raise DevagenError(f"the OCR judge's out-of-distribution statistics have {stats.means.shape[1]} features, "
                           f"the judge {features.shape[1]}; {RERUN}")
    return mahalanobis(features, probs.argmax(1), stats.means, stats.precision) <= stats.threshold(quantile)


def fit_judge_ood(judge: Judge, images: np.ndarray, labels: np.ndarray, holdout: float, seed: int) -> OodStats:
    """OodStats of a trained judge on real uint8 (N, S, S) train images and their labels (N,)."""
    feats, probs = predict_features(judge, images)
    return fit_ood(feats, labels, probs.argmax(1), holdout, seed)


def judge_legibility(judge: Judge, stats: OodStats, images: np.ndarray, confidence: float, quantile: float,
                     batch_size: int = 512) -> dict:
    """metrics.legibility of uint8 (N, S, S) images: legible = confident AND in distribution."""
    feats, probs = predict_features(judge, images, batch_size)
    return metrics.legibility(probs, confidence, in_distribution(feats, probs, stats, quantile))


def save_ood(stats: OodStats, directory: Path) -> None:
    """Write ood.safetensors beside the judge."""
    from safetensors.numpy import save_file

    Path(directory).mkdir(parents=True, exist_ok=True)
    save_file({"means": stats.means, "precision": stats.precision, "calibration": stats.calibration},
              str(Path(directory) / OOD_FILE), metadata={"format": OOD_FORMAT})


def load_ood(directory: Path) -> OodStats:
    """Read ood.safetensors; a judge trained without it (or a corrupt file) says to retrain the judge."""
    from safetensors.numpy import load_file

    path = Path(directory) / OOD_FILE
    if not path.is_file():
        raise DevagenError(f"{directory}: this OCR judge has no {OOD_FILE} (the real-feature statistics legibility "
                           f"needs to tell characters from noise); {RERUN}")
    try:
        arrays = load_file(str(path))
        stats = OodStats(arrays["means"], arrays["precision"], arrays["calibration"])
    except Exception as exc:  # safetensors' own error type, KeyError
        raise DevagenError(f"{path}: unreadable ({type(exc).__name__}: {exc}); {RERUN}") from None
    d = stats.means.shape[1] if stats.means.ndim == 2 else -1
    if stats.means.shape != (NUM_CLASSES, d) or stats.precision.shape != (d, d) or stats.calibration.ndim != 1:
        raise DevagenError(f"{path}: arrays of unexpected shapes; {RERUN}")
    return stats
