"""Classification accuracy score (CAS, Ravuri & Vinyals 2019): train the judge's architecture on
generated images only and test it on real test images, beside the same training on as many real
train images per class. The ratio says how much of what a classifier needs the samples carry:
~1 when they could stand in for real data, far below when they are uniform or off-class.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from ..core.config import AugmentConfig, OcrConfig
from ..core.errors import DevagenError
from ..data.prepared import Split
from .metrics import ocr_accuracy
from .ocr import predict_proba, train_judge

MONITOR = 460  # real test images train_judge reports on after its last epoch; the score uses the whole split


def matched_real(train_labels: np.ndarray, wanted: np.ndarray, seed: int) -> np.ndarray:
    """Indices into train_labels (N,): as many images of each class as `wanted` (M,) holds, drawn seeded."""
    rng = np.random.default_rng(seed)
    picked = []
    for c, n in enumerate(np.bincount(wanted)):
        pool = np.flatnonzero(train_labels == c)
        if n > len(pool):
            raise DevagenError(f"evaluate.cas: {n} samples of class {c} but only {len(pool)} real train images")
        picked.append(rng.choice(pool, n, replace=False))
    return np.sort(np.concatenate(picked))


def cas_config(judge_cfg: OcrConfig, n_images: int, epochs: int, batch_size: int) -> OcrConfig:
    """The judge's training config for a small set: `epochs` over every image (not the judge's hard-image
    epochs, made for 78k images and a few epochs), a batch that fits, lr scaled with the batch."""
    batch = min(batch_size, n_images)
    lr = judge_cfg.lr * batch / judge_cfg.batch_size  # the linear scaling rule
    return dataclasses.replace(judge_cfg, epochs=epochs, batch_size=batch, lr=lr, hard_share=1.0, random_share=0.0)


def train_and_test(cfg: OcrConfig, augment: AugmentConfig, images: np.ndarray, labels: np.ndarray,
                   test: Split, seed: int) -> float:
    """Accuracy on all of `test` of a judge trained (ocr.train_judge) on uint8 (N, S, S) images, labels (N,)."""
    monitor = np.random.default_rng(seed).choice(len(test.images), min(MONITOR, len(test.images)), replace=False)
    judge, _ = train_judge(cfg, augment, images, labels, test.images[monitor], test.labels[monitor], progress=False)
    return ocr_accuracy(predict_proba(judge, test.images), test.labels)["accuracy"]


def cas_metrics(judge_cfg: OcrConfig, augment: AugmentConfig, samples: np.ndarray, intended: np.ndarray,
                train: Split, test: Split, epochs: int, batch_size: int, seed: int,
                say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """cas_accuracy (trained on uint8 (N, S, S) samples with intended (N,)), cas_real_accuracy, cas_ratio.

    Unconditional samples (intended -1) carry no labels to train on: only cas_status says so.
    """
    if (intended < 0).any():
        return {"cas_status": "skipped: unconditional samples have no labels to train a classifier on"}
    cfg = cas_config(judge_cfg, len(samples), epochs, batch_size)
    say(f"CAS: the judge's architecture trained on {len(samples)} generated images")
    generated = train_and_test(cfg, augment, samples, intended.astype(np.int64), test, seed)
    say(f"CAS: the same on {len(samples)} real train images")
    real = matched_real(train.labels, intended, seed)
    baseline = train_and_test(cfg, augment, train.images[real], train.labels[real], test, seed)
    return {"cas_accuracy": generated, "cas_real_accuracy": baseline,
            "cas_ratio": generated / baseline if baseline > 0 else None, "cas_status": "computed"}
