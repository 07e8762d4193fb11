"""Judge generated samples against real data: the metrics of the evaluate stage.

evaluate_samples gathers the OCR judge's (whose features are blind to pen width by design);
style_space_metrics adds the style space's and the classifier two-sample test, which see pen style.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import c2st, metrics
from .config import C2stConfig, EvaluateConfig
from .data import Split
from .ocr import Judge, predict_proba
from .style_space import StyleSpace


@dataclass(frozen=True)
class Evaluation:
    """Flat metrics for eval.json, the confusion matrix (conditional only) and per-class plot rows."""

    metrics: dict[str, Any]
    confusion: np.ndarray | None
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
    confusion, rows = None, []
    if conditional:
        ocr = metrics.ocr_accuracy(probs, intended)
        out.update(ocr_accuracy=ocr["accuracy"], ocr_intended_confidence=ocr["intended_confidence"],
                   per_class_accuracy=ocr["per_class"])
        confusion, rows = ocr["confusion"], metrics.per_class_rows(ocr["per_class"])
    say("FID / KID / precision / recall in judge features")
    out.update(_prefixed(metrics.judge_feature_metrics(judge, samples, test_real, cfg), ""))
    say("real-data floor (train subset vs test subset)")
    out.update(_prefixed(metrics.real_floor(judge, train_real, test_real, cfg, n=len(samples)), "floor_"))
    inception = metrics.inception_fid(samples, test_real, cfg.inception_weights, cfg)
    out.update(_prefixed(inception, "inception_") if inception else {"inception_fid": None})
    out["inception_status"] = "computed" if inception else "no local Inception weights (evaluate.inception_weights is null)"
    return Evaluation(out, confusion, rows)


def style_space_metrics(space: StyleSpace, samples: np.ndarray, intended: np.ndarray, train: Split, test: Split,
                        cfg: EvaluateConfig, c2st_cfg: C2stConfig,
                        say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """space_fid/kid/precision/recall (+ floor_space_*) in the style space; c2st_accuracy and floor_c2st_accuracy."""
    say("FID / KID / precision / recall in the style space (sees pen width)")
    out = _prefixed(metrics.judge_feature_metrics(space, samples, test.images, cfg), "space_")
    out.update(_prefixed(metrics.real_floor(space, train.images, test.images, cfg, n=len(samples)), "floor_space_"))
    say("classifier two-sample test: generated vs real test, and real train vs real test")
    test_result = c2st.c2st_metrics(samples, intended, train.images, train.labels, test.images, test.labels, c2st_cfg)
    out.update(c2st_accuracy=test_result["accuracy"], floor_c2st_accuracy=test_result["floor_accuracy"],
               c2st_heldout=test_result["n_heldout"])
    return out
