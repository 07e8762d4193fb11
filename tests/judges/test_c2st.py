"""Classifier two-sample test on hand-made distributions: same process ~ 50 %, clearly different >> 50 %."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from devagen.core.config import C2stConfig
from devagen.core.errors import DevagenError
from devagen.judges import c2st

SIZE = 16
CFG = C2stConfig(epochs=6, width=4, batch_size=16, lr=0.05)


def blobs(n: int, seed: int, radius: float = 3.0) -> np.ndarray:
    """uint8 (n, 16, 16): one filled disc of `radius` px at a random place, soft-edged, white on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    centres = rng.uniform(5, SIZE - 5, (n, 2))
    dist = np.hypot(yy[None] - centres[:, 0, None, None], xx[None] - centres[:, 1, None, None])
    return (255 * np.clip(radius + 0.5 - dist, 0, 1)).astype(np.uint8)


def test_same_process_is_near_chance_and_different_sets_are_told_apart() -> None:
    groups = np.zeros(200, dtype=np.int64)
    same = c2st.two_sample_accuracy(blobs(200, seed=1), blobs(200, seed=2), groups, CFG)
    bold = c2st.two_sample_accuracy(blobs(200, seed=1), blobs(200, seed=2, radius=4.5), groups, CFG)
    assert same["n_train"] == 200 and same["n_heldout"] == 200  # half of each set, both sets together
    assert abs(same["accuracy"] - 0.5) < 0.1  # 200 held out: chance scatters it by ~0.035
    assert bold["accuracy"] > 0.9


def test_identical_sets_cannot_be_told_apart() -> None:
    images = blobs(100, seed=3)
    result = c2st.two_sample_accuracy(images, images.copy(), np.zeros(100, dtype=np.int64), CFG)
    assert result["accuracy"] == pytest.approx(0.5)  # every held-out image appears once with each label


def test_halves_split_every_group_and_are_seeded() -> None:
    groups = np.repeat(np.arange(3), [4, 5, 1])
    mask = c2st._halves(groups, seed=0)
    assert [int(mask[groups == g].sum()) for g in range(3)] == [2, 2, 0]
    assert np.array_equal(mask, c2st._halves(groups, seed=0))
    assert not np.array_equal(c2st._halves(np.zeros(40), seed=0), c2st._halves(np.zeros(40), seed=1))


def test_per_class_draws_match_the_scarcest_set() -> None:
    generated, real = np.array([0, 0, 0, 2]), np.array([0, 0, 1, 1, 2, 2, 2])
    counts = c2st.matched_counts(generated, real)
    assert counts == {0: 2, 2: 1}  # class 1 was never asked for
    rows = c2st.draw_per_class(real, counts, np.random.default_rng(0))
    assert real[rows].tolist() == [0, 0, 2] and len(set(rows.tolist())) == 3


def test_c2st_metrics_balances_classes_and_reports_its_floor() -> None:
    rng = np.random.default_rng(0)
    real_labels = np.repeat(np.arange(4), 30)
    generated, intended = blobs(60, seed=4, radius=4.5), np.repeat(np.arange(4), 15)
    cfg = replace(CFG, batch_size=8)  # 28 training images a set: small batches give enough steps to learn
    out = c2st.c2st_metrics(generated, intended, blobs(120, seed=5), rng.permutation(real_labels),
                            blobs(120, seed=6), real_labels, cfg)
    assert out["n_heldout"] == 2 * 4 * 8  # 15 a class from each set: 7 train, 8 held out (the odd one)
    assert out["accuracy"] > 0.85 and abs(out["floor_accuracy"] - 0.5) < 0.2
    scores = out["generated_scores"]  # each sample's held-out P(generated): the bolder discs read as generated
    assert scores.shape == (60,) and np.isfinite(scores).sum() >= 32 and np.nanmedian(scores) > 0.7
    assert ((scores[np.isfinite(scores)] >= 0) & (scores[np.isfinite(scores)] <= 1)).all()


def test_the_median_over_seeds_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """One CNN that fails to train (0.55 here) must not make the samples look real: the median is reported."""
    by_seed = {10: 0.55, 11: 0.95, 12: 0.90}
    seen: list[int] = []

    def fake(real, other, groups, cfg):  # type: ignore[no-untyped-def]
        seen.append(cfg.seed)
        return {"accuracy": by_seed[cfg.seed], "n_train": 2, "n_heldout": 2,
                "second_scores": np.full(len(other), np.nan)}
    monkeypatch.setattr(c2st, "two_sample_accuracy", fake)
    out = c2st.c2st_metrics(blobs(8, seed=1), np.zeros(8, dtype=np.int64), blobs(8, seed=2), np.zeros(8, dtype=np.int64),
                            blobs(8, seed=3), np.zeros(8, dtype=np.int64), replace(CFG, seed=10, repeats=3))
    assert sorted(set(seen)) == [10, 11, 12]  # each seed trains both tests
    assert out["accuracy"] == 0.90 and out["accuracies"] == [0.55, 0.95, 0.90] and out["floor_accuracy"] == 0.90


def test_unconditional_samples_are_one_pool() -> None:
    out = c2st.c2st_metrics(blobs(40, seed=7), np.full(40, c2st.UNLABELLED), blobs(50, seed=8),
                            np.arange(50) % 46, blobs(60, seed=9), np.arange(60) % 46, CFG)
    assert out["n_heldout"] == 40


def test_too_few_images_is_a_user_error() -> None:
    with pytest.raises(DevagenError, match="sample.per_class"):
        c2st.two_sample_accuracy(blobs(1, seed=0), blobs(1, seed=1), np.zeros(1, dtype=np.int64), CFG)
