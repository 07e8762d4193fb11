"""Classification accuracy score: the matched real draw, the small-set config, and known answers on a tiny judge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devagen.core.classes import NUM_CLASSES
from devagen.core.config import AugmentConfig, OcrConfig
from devagen.core.errors import DevagenError
from devagen.data.prepared import Split
from devagen.judges.cas import cas_config, cas_metrics, matched_real

TINY = OcrConfig(seed=0, batch_size=32, lr=0.2, width=8, label_smoothing=0.0, augment=False)


def synthetic(per_class: int, seed: int) -> Split:
    """uint8 (46·per_class, 16, 16): one fixed random blob pattern per class with 3 % of pixels flipped."""
    templates = np.random.default_rng(123).random((NUM_CLASSES, 16, 16)) < 0.3
    labels = np.repeat(np.arange(NUM_CLASSES), per_class)
    noisy = templates[labels] ^ (np.random.default_rng(seed).random((len(labels), 16, 16)) < 0.03)
    return Split((noisy * 255).astype(np.uint8), labels.astype(np.int64))


def test_matched_real_draws_the_same_count_per_class() -> None:
    train = np.repeat(np.arange(3), 10)
    wanted = np.array([0, 0, 2, 2, 2])
    idx = matched_real(train, wanted, seed=1)
    assert np.bincount(train[idx], minlength=3).tolist() == [2, 0, 3]
    assert len(set(idx.tolist())) == 5
    np.testing.assert_array_equal(idx, matched_real(train, wanted, seed=1))
    with pytest.raises(DevagenError, match="evaluate.cas"):
        matched_real(train, np.full(11, 1), seed=1)


def test_cas_config_fits_the_batch_and_scales_lr() -> None:
    cfg = cas_config(OcrConfig(batch_size=256, lr=0.4, hard_share=0.15, random_share=0.05), n_images=920, epochs=20,
                     batch_size=64)
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (20, 64, pytest.approx(0.1))
    assert (cfg.hard_share, cfg.random_share) == (1.0, 0.0)  # every sample in every epoch
    assert cas_config(OcrConfig(), n_images=40, epochs=3, batch_size=64).batch_size == 40


def test_unconditional_samples_are_skipped_with_a_reason() -> None:
    split = synthetic(1, seed=0)
    out = cas_metrics(TINY, AugmentConfig(), split.images, np.full(len(split.images), -1), split, split, 1, 32, 0)
    assert set(out) == {"cas_status"} and "unconditional" in out["cas_status"]


def test_real_like_samples_score_like_real_and_mislabelled_ones_near_chance() -> None:
    torch.set_num_threads(1)
    train, test, samples = synthetic(8, seed=1), synthetic(3, seed=2), synthetic(4, seed=3)
    good = cas_metrics(TINY, AugmentConfig(), samples.images, samples.labels, train, test, epochs=12, batch_size=32,
                       seed=0)
    assert good["cas_status"] == "computed" and good["cas_real_accuracy"] >= 0.9
    assert good["cas_ratio"] == pytest.approx(1.0, abs=0.1)
    wrong = np.random.default_rng(0).permutation(samples.labels)  # the samples do not show the class asked for
    bad = cas_metrics(TINY, AugmentConfig(), samples.images, wrong, train, test, epochs=12, batch_size=32, seed=0)
    assert bad["cas_accuracy"] <= 0.15 and bad["cas_ratio"] <= 0.2
    assert bad["cas_real_accuracy"] == pytest.approx(good["cas_real_accuracy"])  # same draw, same training
