"""Legibility's out-of-distribution test: Mahalanobis maths on hand-made features, then a small judge on junk."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from dhcd_fixture import glyph_image
from junk_fixture import junk_sets, scrambled

from devagen.core.classes import NUM_CLASSES
from devagen.core.config import AugmentConfig, OcrConfig
from devagen.core.errors import DevagenError
from devagen.judges import legibility
from devagen.judges.ocr import train_judge

# two classes in 2-D: class 0 around (0, 0), class 1 around (10, 0); spread 1 along x, 2 along y
FEATS = np.array([[1, 0], [-1, 0], [0, 2], [0, -2], [11, 0], [9, 0], [10, 2], [10, -2]], dtype=np.float64)
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def test_fit_gaussians_known_answer() -> None:
    means, precision = legibility.fit_gaussians(FEATS, LABELS)
    np.testing.assert_allclose(means[:2], [[0, 0], [10, 0]])
    assert np.isnan(means[2:]).all()  # classes without images
    # within-class scatter diag(4, 16) over 8 - 2 degrees of freedom → covariance diag(2/3, 8/3)
    np.testing.assert_allclose(precision, np.diag([1.5, 0.375]), rtol=1e-5)


def test_mahalanobis_known_answer_and_absent_class() -> None:
    means, precision = legibility.fit_gaussians(FEATS, LABELS)
    d = legibility.mahalanobis(np.array([[3.0, 0], [10, 4], [0, 0]]), np.array([0, 1, 5]), means, precision)
    assert d[0] == pytest.approx(math.sqrt(9 * 1.5), rel=1e-5)  # 3 units along x, where variance is 2/3
    assert d[1] == pytest.approx(math.sqrt(16 * 0.375), rel=1e-5)  # 4 units along y, where variance is 8/3
    assert d[2] == np.inf


def test_holdout_takes_a_share_of_each_class_never_all() -> None:
    labels = np.repeat(np.arange(4), [20, 10, 2, 1])
    mask = legibility.holdout_mask(labels, 0.1, seed=3)
    assert [int(mask[labels == c].sum()) for c in range(4)] == [2, 1, 1, 0]
    np.testing.assert_array_equal(mask, legibility.holdout_mask(labels, 0.1, seed=3))
    assert not np.array_equal(mask, legibility.holdout_mask(labels, 0.1, seed=4))


def test_threshold_is_a_quantile_of_held_out_distances() -> None:
    stats = legibility.OodStats(np.zeros((NUM_CLASSES, 2)), np.eye(2), np.arange(1.0, 101.0))
    assert stats.threshold(0.99) == pytest.approx(99.01)
    assert stats.threshold(1.0) == 100.0


def test_in_distribution_by_read_class() -> None:
    means = np.full((NUM_CLASSES, 2), np.nan)
    means[0], means[1] = (0, 0), (10, 0)
    stats = legibility.OodStats(means, np.eye(2), np.array([1.0, 2.0, 3.0]))
    feats = np.array([[0.5, 0], [10, 2.9], [10, 3.1], [5, 0]])
    probs = np.zeros((4, NUM_CLASSES))
    probs[[0, 1, 2, 3], [0, 1, 1, 0]] = 1.0
    np.testing.assert_array_equal(legibility.in_distribution(feats, probs, stats, 1.0), [True, True, False, False])
    with pytest.raises(DevagenError, match="dvc repro -f train_ocr"):
        legibility.in_distribution(np.zeros((4, 3)), probs, stats, 1.0)


def test_fit_ood_calibrates_on_held_out_images_only() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(NUM_CLASSES), 20)
    feats = rng.normal(size=(len(labels), 3)) + labels[:, None] * 5.0
    stats = legibility.fit_ood(feats, labels, labels, holdout=0.1, seed=0)
    assert len(stats.calibration) == 2 * NUM_CLASSES and np.all(np.diff(stats.calibration) >= 0)
    assert 0 < stats.threshold(0.99) < 6  # held-out draws of the same Gaussians: a few standard deviations


def test_save_load_round_trip_and_missing_file(tmp_path: Path) -> None:
    means, precision = legibility.fit_gaussians(FEATS, LABELS)
    stats = legibility.OodStats(means, precision, np.array([0.5, 1.5]))
    legibility.save_ood(stats, tmp_path)
    loaded = legibility.load_ood(tmp_path)
    for a, b in ((loaded.means, means), (loaded.precision, precision), (loaded.calibration, stats.calibration)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(DevagenError, match=r"no ood\.safetensors.*dvc repro -f train_ocr"):
        legibility.load_ood(tmp_path / "old-judge")
    (tmp_path / legibility.OOD_FILE).write_bytes(b"not safetensors")
    with pytest.raises(DevagenError, match="unreadable"):
        legibility.load_ood(tmp_path)


def test_scrambled_moves_whole_tiles() -> None:
    tile_ids = np.arange(16, dtype=np.uint8).reshape(4, 4)
    glyphs = np.stack([np.kron(tile_ids, np.ones((8, 8), np.uint8))] * 2)  # each 8x8 tile one value
    out = scrambled(glyphs, 8, seed=0)
    tiles = out.reshape(2, 4, 8, 4, 8).transpose(0, 1, 3, 2, 4).reshape(2, 16, 64)
    assert (tiles == tiles[..., :1]).all()  # tiles stay whole
    for image in tiles[..., 0]:
        assert sorted(image.tolist()) == list(range(16)) and image.tolist() != list(range(16))


def _glyphs(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (46·per_class, 32, 32) fixture glyphs (a font, jittered) and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(NUM_CLASSES), per_class)
    return np.stack([glyph_image(int(c), rng) for c in labels]), labels.astype(np.int64)


@pytest.fixture(scope="module")
def judge_and_stats() -> tuple:
    """A width-8 judge trained on 10 fixture glyphs per class at 32x32 (~97 % test) and its OodStats."""
    torch.set_num_threads(1)
    x, y = _glyphs(10, seed=1)
    test = _glyphs(4, seed=2)
    cfg = OcrConfig(seed=0, epochs=12, batch_size=32, lr=0.4, width=8, label_smoothing=0.0, augment=False)
    judge, _ = train_judge(cfg, AugmentConfig(), x, y, *test, progress=False)
    return judge, legibility.fit_judge_ood(judge, x, y, holdout=0.25, seed=0), test


def test_small_judge_rejects_non_characters(judge_and_stats: tuple, tmp_path: Path) -> None:
    judge, stats, (test_images, _) = judge_and_stats
    real = legibility.judge_legibility(judge, stats, test_images, confidence=0.7, quantile=0.99)
    assert real["in_distribution_share"] >= 0.9 and real["legible_share"] >= 0.7
    confident_junk = 0.0
    for name, images in junk_sets(test_images, tmp_path, n=46).items():
        out = legibility.judge_legibility(judge, stats, images, confidence=0.7, quantile=0.99)
        # legible (the reported share) at most 2 of 46; a tiny judge's feature Gaussians let a few more
        # scrambles sit in distribution (3 of 46 after a change of memory layout alone), so that bound is looser
        assert out["legible_share"] <= 0.05 and out["in_distribution_share"] <= 0.1, (name, out)
        confident_junk = max(confident_junk, out["confident_share"])
    assert confident_junk >= 0.5  # the softmax alone would have called some junk legible
