"""Judge generated samples against real data: one call that gathers every metric of the evaluate stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import metrics
from .config import EvaluateConfig
from .ocr import Judge, predict_proba


@dataclass(frozen=True)
class Evaluation:
    """Flat metrics for eval.json, a (46, 46) count matrix for the confusion figure and per-class plot rows.

    Conditional models: the confusion matrix (rows intended, columns read as) and per-class accuracy.
    Unconditional ones: first vs second choice of the judge, and the share of legible samples read as each class.
    """

    metrics: dict[str, Any]
    confusion: np.ndarray
    confusion_axes: str
    per_class_rows: list[dict[str, Any]]


def _prefixed(values: dict[str, Any] | None, prefix: str) -> dict[str, Any]:
    """{'fid':…, 'kid_mean':…} -> {'<prefix>fid':…, '<prefix>kid':…}; n is dropped (reported once)."""
    rename = {"kid_mean": "kid"}
    return {prefix + rename.get(k, k): v for k, v in (values or {}).items() if k != "n"}


def evaluate_samples(judge: Judge, samples: np.ndarray, intended: np.ndarray, train_real: np.ndarray,
                     test_real: np.ndarray, cfg: EvaluateConfig,
                     say: Callable[[str], None] = lambda _: None) -> Evaluation:
    """samples uint8 (N, S, S) with intended labels (N,) (-1 for an unconditional model) vs real uint8 sets."""
    conditional = bool((intended >= 0).all())
    say("judge reads the samples")
    probs = predict_proba(judge, samples, cfg.batch_size)
    out: dict[str, Any] = {"conditional": conditional, "n_generated": int(len(samples))}
    out.update(metrics.legibility(probs, cfg.confidence))
    if conditional:
        ocr = metrics.ocr_accuracy(probs, intended)
        out.update(ocr_accuracy=ocr["accuracy"], ocr_intended_confidence=ocr["intended_confidence"],
                   per_class_accuracy=ocr["per_class"])
        confusion, axes, rows = ocr["confusion"], metrics.CONFUSION_AXES, metrics.per_class_rows(ocr["per_class"])
    else:
        rows = metrics.read_share_rows(metrics.read_counts(probs, cfg.confidence))
        out["per_class_read_share"] = {row["class"]: row["read_share"] for row in rows}
        confusion, axes = metrics.runner_up_matrix(probs), metrics.RUNNER_UP_AXES
    say("FID / KID / precision / recall in judge features")
    out.update(_prefixed(metrics.judge_feature_metrics(judge, samples, test_real, cfg), ""))
    say("real-data floor (train subset vs test subset)")
    out.update(_prefixed(metrics.real_floor(judge, train_real, test_real, cfg, n=len(samples)), "floor_"))
    inception = metrics.inception_fid(samples, test_real, cfg.inception_weights, cfg)
    out.update(_prefixed(inception, "inception_") if inception else {"inception_fid": None})
    out["inception_status"] = "computed" if inception else "no local Inception weights (evaluate.inception_weights is null)"
    return Evaluation(out, confusion, axes, rows)
