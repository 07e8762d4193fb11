"""Classifier two-sample test (C2ST): can a small CNN tell generated characters from real ones?

Both sets are drawn with the same number of images per class (for a conditional model: per class
asked for), each class is split in half by a seeded draw, and a fresh judge-architecture CNN with two
outputs is trained on one half of each set (label 0 = first set, 1 = second) with no augmentation.
Its accuracy on the held-out halves is the statistic: 0.5 means the sets cannot be told apart; with
n held-out images, chance alone scatters it by about 0.5 / sqrt(n). Training reuses ocr.train_judge;
the BatchNorm averages are re-estimated on the training half before the held-out half is read.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.config import AugmentConfig, C2stConfig, OcrConfig
from ..core.errors import DevagenError
from .ocr import predict_proba, recalibrate_batchnorm, train_judge

UNLABELLED = -1  # intended label of an unconditional model's samples


def draw_per_class(labels: np.ndarray, counts: dict[int, int], rng: np.random.Generator) -> np.ndarray:
    """Indices of counts[c] rows of each class c (ascending c), drawn without replacement."""
    picked = [rng.choice(np.flatnonzero(labels == c), k, replace=False) for c, k in sorted(counts.items())]
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def matched_counts(*label_sets: np.ndarray) -> dict[int, int]:
    """{class: the fewest rows any of the label arrays has of it}, over the classes of the first array."""
    classes, _ = np.unique(label_sets[0], return_counts=True)
    counts = {int(c): min(int((labels == c).sum()) for labels in label_sets) for c in classes}
    return {c: k for c, k in counts.items() if k > 0}


def matched_draws(intended: np.ndarray, train_labels: np.ndarray, test_labels: np.ndarray,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows (generated, real test, real train) drawn with the same count per class (one pool when any intended label
    is UNLABELLED), and the class (or pool) of each drawn row: what a two-sample test compares, row by row."""
    conditional = bool((intended != UNLABELLED).all())
    pool = (lambda labels: labels) if conditional else (lambda labels: np.zeros(len(labels), dtype=np.int64))
    gen_groups, test_groups, train_groups = pool(intended), pool(test_labels), pool(train_labels)
    counts = matched_counts(gen_groups, test_groups, train_groups)
    rng = np.random.default_rng(seed)
    rows = [draw_per_class(groups, counts, rng) for groups in (gen_groups, test_groups, train_groups)]
    return rows[0], rows[1], rows[2], np.repeat(np.array(sorted(counts)), [counts[c] for c in sorted(counts)])


def _halves(groups: np.ndarray, seed: int) -> np.ndarray:
    """Bool mask (N,): a seeded half of each group's rows (the odd one out goes to the held-out side)."""
    rng, mask = np.random.default_rng(seed), np.zeros(len(groups), dtype=bool)
    for g in np.unique(groups):
        rows = rng.permutation(np.flatnonzero(groups == g))
        mask[rows[:len(rows) // 2]] = True
    return mask


def _net_config(cfg: C2stConfig, n_train: int) -> OcrConfig:
    """The judge's recipe for two classes: no label smoothing, batch capped at the training set."""
    return OcrConfig(seed=cfg.seed, epochs=cfg.epochs, batch_size=min(cfg.batch_size, n_train), lr=cfg.lr,
                     width=cfg.width, label_smoothing=0.0, augment=False)


def two_sample_accuracy(first: np.ndarray, second: np.ndarray, groups: np.ndarray,
                        cfg: C2stConfig) -> dict[str, float | int]:
    """Held-out accuracy in [0, 1] telling uint8 (N, S, S) `first` from `second`; row i of both is in groups[i].

    Returns accuracy, n_train and n_heldout (images of both sets together), and second_scores float (N,): the CNN's
    probability that each held-out row of `second` is from `second` (NaN for the rows it trained on).
    """
    if first.shape != second.shape or len(groups) != len(first):
        raise ValueError(f"c2st: sets must match row by row, got {first.shape}, {second.shape}, {len(groups)} groups")
    train = _halves(groups, cfg.seed)
    if train.sum() < 1 or (~train).sum() < 1:
        raise DevagenError(f"c2st: needs at least 2 images per set to split in halves, got {len(first)}; "
                           "raise sample.per_class / sample.count")
    x_train, x_held = (np.concatenate([first[m], second[m]]) for m in (train, ~train))
    y_train, y_held = (np.repeat(np.array([0, 1]), int(m.sum())) for m in (train, ~train))
    net, _ = train_judge(_net_config(cfg, len(x_train)), AugmentConfig(enabled=False), x_train, y_train,
                         x_held, y_held, progress=False, num_classes=2)
    recalibrate_batchnorm(net, x_train)  # else a lagging BatchNorm average can read every image as one set
    probs = predict_proba(net, x_held)
    second_scores = np.full(len(second), np.nan)
    second_scores[~train] = probs[y_held == 1, 1]
    return {"accuracy": float((probs.argmax(1) == y_held).mean()), "n_train": len(x_train), "n_heldout": len(x_held),
            "second_scores": second_scores}


def c2st_metrics(generated: np.ndarray, intended: np.ndarray, train_images: np.ndarray, train_labels: np.ndarray,
                 test_images: np.ndarray, test_labels: np.ndarray, cfg: C2stConfig, floor: bool = True) -> dict:
    """C2ST of generated vs real test images, and its floor: real train vs real test, same per-class counts.

    generated uint8 (N, S, S) with intended (N,) labels (-1 for an unconditional model, then one pool);
    returns accuracy and floor_accuracy (medians over cfg.repeats seeds: one CNN that fails to train
    reads near 0.5 and would call the samples real), the per-seed lists, n_heldout (per test), and generated_scores
    float (N,): each sample's mean held-out probability of being generated (NaN where no seed held it out).
    floor=False skips the floor (None): it depends only on the real sets and the per-class counts, so a sweep
    over samplers of one model measures it once.
    """
    runs = [_one_seed(generated, intended, train_images, train_labels, test_images, test_labels,
                      dataclasses.replace(cfg, seed=cfg.seed + i), floor) for i in range(cfg.repeats)]
    accuracies, floors = [r["accuracy"] for r in runs], [r["floor_accuracy"] for r in runs]
    scores = np.stack([r["generated_scores"] for r in runs])
    held = np.isfinite(scores)
    mean_scores = np.where(held.any(0), np.where(held, scores, 0).sum(0) / np.maximum(held.sum(0), 1), np.nan)
    return {"accuracy": float(np.median(accuracies)), "floor_accuracy": float(np.median(floors)) if floor else None,
            "accuracies": accuracies, "floor_accuracies": floors, "n_heldout": runs[0]["n_heldout"],
            "generated_scores": mean_scores}


def _one_seed(generated: np.ndarray, intended: np.ndarray, train_images: np.ndarray, train_labels: np.ndarray,
              test_images: np.ndarray, test_labels: np.ndarray, cfg: C2stConfig, floor: bool = True) -> dict:
    """One C2ST and its floor (None unless `floor`) with cfg.seed: which images are drawn, the halves, the CNN's
    initial weights."""
    gen_rows, test_rows, train_rows, groups = matched_draws(intended, train_labels, test_labels, cfg.seed)
    real = test_images[test_rows]
    main = two_sample_accuracy(real, generated[gen_rows], groups, cfg)
    floor_accuracy = two_sample_accuracy(real, train_images[train_rows], groups, cfg)["accuracy"] if floor else None
    scores = np.full(len(generated), np.nan)
    scores[gen_rows] = main["second_scores"]
    return {"accuracy": main["accuracy"], "floor_accuracy": floor_accuracy, "n_heldout": main["n_heldout"],
            "generated_scores": scores}
