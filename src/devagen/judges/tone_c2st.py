"""The tone C2ST: can a linear classifier tell generated characters from real ones by their grey levels alone?

Each image becomes its 256-bin grey-level histogram (the share of its pixels at each level): no shape survives. A
ridge logistic regression on the standardised histograms is cross-validated over the same class-matched draws the
CNN C2ST compares (devagen.judges.c2st.matched_draws); 0.5 means the tones are alike. Its floor is real train against
real test. Where the CNN C2ST is high and this one near its floor, the giveaway is in the shapes, not the tone.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ..core.config import C2stConfig
from ..data.prepared import grey_histogram
from .c2st import matched_draws


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Features float (N, D), labels {0, 1} (N,) -> weights (D + 1,) (bias last) minimising mean log loss +
    l2·|w|² (the bias unpenalised), by L-BFGS."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.r_[np.ones(x.shape[1]), 0.0] * l2

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = xb @ w
        p = 1.0 / (1.0 + np.exp(-z))
        value = np.mean(np.logaddexp(0.0, z) - y * z) + np.sum(penalty * w * w)
        return float(value), xb.T @ (p - y) / len(y) + 2 * penalty * w

    return minimize(loss, np.zeros(xb.shape[1]), jac=True, method="L-BFGS-B").x


def cross_validated_accuracy(x: np.ndarray, y: np.ndarray, folds: int, l2: float, seed: int) -> float:
    """Accuracy in [0, 1] of fit_logistic on features (N, D) and labels (N,), each row predicted by the model fitted
    on the other folds (seeded, label-stratified); features standardised by the training folds."""
    rng, fold = np.random.default_rng(seed), np.zeros(len(y), dtype=np.int64)
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        fold[rows] = np.arange(len(rows)) % folds
    hits = 0
    for k in range(folds):
        train, held = fold != k, fold == k
        mean, std = x[train].mean(0), x[train].std(0) + 1e-9
        w = fit_logistic((x[train] - mean) / std, y[train], l2)
        z = ((x[held] - mean) / std) @ w[:-1] + w[-1]
        hits += int(((z > 0) == (y[held] == 1)).sum())
    return hits / len(y)


def tone_two_sample_accuracy(first: np.ndarray, second: np.ndarray, cfg: C2stConfig, seed: int) -> float:
    """Cross-validated accuracy in [0, 1] telling uint8 (N, S, S) `first` from `second` by grey-level histograms."""
    x = np.concatenate([grey_histogram(first, per_image=True), grey_histogram(second, per_image=True)])
    y = np.repeat(np.array([0.0, 1.0]), [len(first), len(second)])
    return cross_validated_accuracy(x, y, cfg.tone_folds, cfg.tone_l2, seed)


def tone_c2st_metrics(generated: np.ndarray, intended: np.ndarray, train_images: np.ndarray, train_labels: np.ndarray,
                      test_images: np.ndarray, test_labels: np.ndarray, cfg: C2stConfig, floor: bool = True) -> dict:
    """Tone C2ST of generated uint8 (N, S, S) (intended (N,), -1 = unconditional) vs real test images and its floor
    (real train vs real test; None unless `floor`), class-matched as the CNN C2ST's: accuracy and floor_accuracy,
    medians over cfg.repeats seeds, and the per-seed lists."""
    runs = []
    for seed in range(cfg.seed, cfg.seed + cfg.repeats):
        gen_rows, test_rows, train_rows, _ = matched_draws(intended, train_labels, test_labels, seed)
        real = test_images[test_rows]
        runs.append((tone_two_sample_accuracy(real, generated[gen_rows], cfg, seed),
                     tone_two_sample_accuracy(real, train_images[train_rows], cfg, seed) if floor else None))
    accuracies, floors = [a for a, _ in runs], [f for _, f in runs]
    return {"accuracy": float(np.median(accuracies)), "floor_accuracy": float(np.median(floors)) if floor else None,
            "accuracies": accuracies, "floor_accuracies": floors}
