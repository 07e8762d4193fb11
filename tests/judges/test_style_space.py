"""The style space: trained on tiny synthetic glyphs, every stage scaled, saved and loaded, sees bolder strokes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dhcd_fixture import glyph_image

from devagen.core.classes import NUM_CLASSES
from devagen.core.config import C2stConfig, EvaluateConfig, StyleNetConfig
from devagen.core.errors import DevagenError
from devagen.data.prepared import Split, to_model_range
from devagen.judges import metrics, style_space
from devagen.judges.evaluation import style_space_metrics, two_sample_tests

TINY = StyleNetConfig(epochs=2, train_images=0, width=4, batch_size=32, lr=0.2)
EVAL = EvaluateConfig(kid_subsets=5, kid_subset_size=50)


def glyphs(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (46·per_class, 32, 32) fixture glyphs (jittered font size and place) and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(NUM_CLASSES), per_class)
    return np.stack([glyph_image(int(c), rng) for c in labels]), labels


def bolder(images: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S) -> strokes about one pixel a side thicker (3x3 grey dilation)."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    s = images.shape[1]
    return np.max([padded[:, dy:dy + s, dx:dx + s] for dy in range(3) for dx in range(3)], axis=0)


@pytest.fixture(scope="module")
def trained() -> tuple[style_space.StyleSpace, dict, np.ndarray]:
    """(space, metrics, train images) of TINY trained on 46 x 4 fixture glyphs."""
    x, y = glyphs(4, seed=0)
    xt, yt = glyphs(1, seed=1)
    space, result = style_space.train_style_space(TINY, x, y, xt, yt, progress=False)
    return space, result, x


def test_training_reports_and_reads_every_stage(trained) -> None:
    space, result, x = trained
    assert result["train_images"] == len(x) and result["epochs"] == TINY.epochs
    assert 0.0 <= result["test_accuracy"] <= 1.0 and len(result["stage_scales"]) == 5
    assert not space.training and next(space.parameters()).device.type == "cpu"
    with torch.no_grad():
        feats = space.features(to_model_range(torch.from_numpy(x)))
        means = space.stage_means(to_model_range(torch.from_numpy(x)))
    assert feats.shape == (len(x), 13 * TINY.width)  # 1 + 2 + 2 + 4 + 4 times the width
    assert torch.allclose(means[-1], space.net.features(to_model_range(torch.from_numpy(x))), atol=1e-5)
    # each stage is scaled to unit total variance over the real train images it was fitted on
    for mean, scale in zip(means, space.scales):
        assert (mean.double() * scale).var(0).sum().item() == pytest.approx(1.0, rel=1e-3)


def test_style_space_fid_sees_bolder_strokes(trained) -> None:
    space = trained[0]
    a, _ = glyphs(2, seed=2)
    b, _ = glyphs(2, seed=3)
    same = metrics.judge_feature_metrics(space, b, a, EVAL)["fid"]
    bold = metrics.judge_feature_metrics(space, bolder(b), a, EVAL)["fid"]
    assert bold > 5 * same


def test_subset_and_batch_checks() -> None:
    x, y = glyphs(2, seed=0)
    cfg = StyleNetConfig(epochs=1, train_images=40, width=4, batch_size=16)
    assert style_space.train_style_space(cfg, x, y, x, y, progress=False)[1]["train_images"] == 40
    with pytest.raises(DevagenError, match="style_net.batch_size"):
        style_space.train_style_space(StyleNetConfig(train_images=40, batch_size=64), x, y, x, y, progress=False)


def test_save_load_round_trip_and_errors(trained, tmp_path: Path) -> None:
    space = trained[0]
    style_space.save_style_space(space, tmp_path / "style", TINY, 32)
    loaded = style_space.load_style_space(tmp_path / "style")
    x = to_model_range(torch.from_numpy(glyphs(1, seed=5)[0]))
    with torch.no_grad():
        assert torch.equal(loaded.features(x), space.features(x))
    with pytest.raises(DevagenError, match="dvc repro style_net"):
        style_space.load_style_space(tmp_path / "nowhere")
    (tmp_path / "style" / style_space.SCALES_FILE).write_text("{}")
    with pytest.raises(DevagenError, match="dvc repro style_net"):
        style_space.load_style_space(tmp_path / "style")


def test_evaluation_adds_style_space_and_both_c2st_keys(trained) -> None:
    space = trained[0]
    train, test = Split(*glyphs(3, seed=6)), Split(*glyphs(3, seed=7))
    samples, intended = glyphs(2, seed=8)
    out = style_space_metrics(space, bolder(samples), intended, train, test, EVAL)
    for key in ("fid", "kid", "kid_std", "precision", "recall"):
        assert np.isfinite(out[f"space_{key}"]) and np.isfinite(out[f"floor_space_{key}"]), key
    assert out["space_fid"] > 5 * out["floor_space_fid"]
    tests = two_sample_tests(bolder(samples), intended, train, test, C2stConfig(epochs=8, width=4, batch_size=16))
    out = tests.metrics
    assert 0 <= out["floor_c2st_accuracy"] <= 1 and out["c2st_accuracy"] > 0.6 and out["c2st_heldout"] == 92 * 2 // 2
    assert out["tone_c2st_accuracy"] > 0.6 and 0 <= out["floor_tone_c2st_accuracy"] <= 1  # bolder: more white
    assert tests.scores.shape == (len(samples),)
