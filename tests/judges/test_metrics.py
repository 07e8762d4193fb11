"""Evaluation maths on hand-made inputs with known answers (tiny stand-in judge, few samples)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from devagen.core.classes import CLASS_NAMES, NUM_CLASSES, glyphs
from devagen.core.config import EvaluateConfig
from devagen.core.errors import DevagenError
from devagen.judges import metrics

CFG = EvaluateConfig(kid_subsets=5, batch_size=64)


class StandInJudge(nn.Module):
    """Same interface as devagen.judges.ocr.Judge: features = 4x4 average pool (16 dims) times `scale`."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Linear(16, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 4).flatten(1) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (120, 32, 32), dtype=np.uint8)


def brighter(images: np.ndarray, by: int) -> np.ndarray:
    return np.clip(images.astype(np.int16) + by, 0, 255).astype(np.uint8)


def test_identical_sets_give_zero_fid_and_full_precision_recall(real):
    out = metrics.judge_feature_metrics(StandInJudge(), real, real.copy(), CFG)
    shifted = metrics.judge_feature_metrics(StandInJudge(), brighter(real, 40), real, CFG)
    assert set(out) >= {"fid", "kid_mean", "kid_std", "precision", "recall"}
    assert abs(out["fid"]) < 1e-6 * shifted["fid"]
    assert out["precision"] == 1.0 and out["recall"] == 1.0
    assert abs(out["kid_mean"]) < 0.01 * shifted["kid_mean"]


def test_fid_grows_with_the_shift(real):
    small = metrics.judge_feature_metrics(StandInJudge(), brighter(real, 10), real, CFG)["fid"]
    large = metrics.judge_feature_metrics(StandInJudge(), brighter(real, 60), real, CFG)["fid"]
    assert 0 < small < large


def test_each_call_uses_its_own_judge_and_leaves_it_untouched(real):
    gen = brighter(real, 30)
    judge = StandInJudge().train()
    base = metrics.judge_feature_metrics(judge, gen, real, CFG)["fid"]
    scaled = metrics.judge_feature_metrics(StandInJudge(scale=10.0), gen, real, CFG)["fid"]
    assert scaled == pytest.approx(100 * base, rel=1e-6)  # FID is quadratic in the feature scale
    assert judge.training and judge.head.weight.requires_grad  # the adapter works on a copy


def test_unequal_sets_are_cut_to_the_smaller_and_kid_subset_capped(real):
    cfg = EvaluateConfig(kid_subset_size=1000, kid_subsets=3)
    out = metrics.judge_feature_metrics(StandInJudge(), real[:7], real, cfg)
    assert out["n"] == 7 and math.isfinite(out["kid_mean"])
    assert metrics.judge_feature_metrics(StandInJudge(), real, real[:9], cfg)["n"] == 9


def test_too_few_images_is_a_user_error(real):
    with pytest.raises(DevagenError, match="sample.count"):
        metrics.judge_feature_metrics(StandInJudge(), real[:3], real, CFG)


def test_real_floor_uses_n_images_per_set(real):
    out = metrics.real_floor(StandInJudge(), brighter(real, 1), real, CFG, n=50)
    assert out["n"] == 50 and out["fid"] >= 0
    same = metrics.real_floor(StandInJudge(), real, real, CFG)  # different draws of the same pool
    assert 0 < same["fid"] < metrics.judge_feature_metrics(StandInJudge(), brighter(real, 40), real, CFG)["fid"]


def test_inception_fid_skips_without_weights_and_rejects_bad_paths(real, tmp_path):
    assert metrics.inception_fid(real, real, None, CFG) is None
    with pytest.raises(DevagenError, match="evaluate.inception_weights"):
        metrics.inception_fid(real, real, str(tmp_path / "missing.pth"), CFG)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DevagenError, match="evaluate.inception_weights"):
        metrics.inception_fid(real, real, str(junk), CFG)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(DevagenError, match="evaluate.inception_weights"):
        metrics.inception_fid(real, real, str(wrong), CFG)


def one_hot(classes: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES)[classes]


def test_judge_perfect_set_reads_fully():
    intended = np.repeat(np.arange(NUM_CLASSES), 3)
    out = metrics.ocr_accuracy(one_hot(intended), intended)
    assert out["accuracy"] == 1.0 and out["intended_confidence"] == 1.0
    assert all(v == 1.0 for v in out["per_class"].values())
    assert np.array_equal(out["confusion"], 3 * np.eye(NUM_CLASSES, dtype=np.int64))


def test_shuffled_labels_read_at_chance():
    rng = np.random.default_rng(1)
    n, p = 46_000, 1 / NUM_CLASSES
    intended = rng.integers(0, NUM_CLASSES, n)
    acc = metrics.ocr_accuracy(one_hot(rng.permutation(intended)), intended)["accuracy"]
    assert abs(acc - p) < 4 * math.sqrt(p * (1 - p) / n)  # 4 binomial standard deviations


def test_per_class_accuracy_confusion_and_rows():
    intended = np.array([0, 0, 1, 2])
    probs = np.full((4, NUM_CLASSES), 0.0)
    probs[[0, 1, 2, 3], [0, 5, 1, 1]] = 0.6  # read as 0, 5, 1, 1
    probs[:, 45] += 0.4  # the rest of each row on class 45
    out = metrics.ocr_accuracy(probs, intended)
    assert out["accuracy"] == 0.5
    assert out["intended_confidence"] == pytest.approx((0.6 + 0.0 + 0.6 + 0.0) / 4)
    per = out["per_class"]
    assert len(per) == NUM_CLASSES and list(per) == list(CLASS_NAMES)
    assert (per[CLASS_NAMES[0]], per[CLASS_NAMES[1]], per[CLASS_NAMES[2]]) == (0.5, 1.0, 0.0)
    assert per[CLASS_NAMES[3]] is None
    assert out["confusion"][0, 5] == 1 and out["confusion"][2, 1] == 1 and out["confusion"].sum() == 4
    rows = metrics.per_class_rows(per)
    expected = [(0, 0.5), (1, 1.0), (2, 0.0)]
    assert rows == [{"class": CLASS_NAMES[c], "glyph": glyphs()[c], "accuracy": a} for c, a in expected]


def test_ocr_accuracy_rejects_logits_and_bad_labels():
    with pytest.raises(ValueError, match="probabilities"):
        metrics.ocr_accuracy(np.full((2, NUM_CLASSES), 3.0), np.array([0, 1]))
    with pytest.raises(ValueError, match="class indices"):
        metrics.ocr_accuracy(one_hot(np.array([0, 1])), np.array([0, 46]))


def test_legibility_on_hand_made_probs():
    probs = np.full((5, NUM_CLASSES), 0.0)
    probs[0, 3] = probs[1, 3] = probs[2, 7] = probs[4, 8] = 0.95  # four confident reads: 3, 3, 7, 8
    probs[3, 9] = 0.5  # one unsure read
    probs[:, 0] += 1 - probs.sum(1)
    inside = np.array([True, True, True, True, False])  # the confident read of 8 is not a character
    out = metrics.legibility(probs, confidence=0.9, in_distribution=inside)
    assert out["legible_share"] == 0.6 and out["class_coverage"] == 2
    assert out["confident_share"] == 0.8 and out["in_distribution_share"] == 0.8
    expected = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert out["class_entropy_nats"] == pytest.approx(expected)
    assert out["class_entropy_norm"] == pytest.approx(expected / math.log(NUM_CLASSES))


def test_legibility_entropy_of_uniform_reads_is_log_46_and_none_when_illegible():
    probs = one_hot(np.tile(np.arange(NUM_CLASSES), 2))
    out = metrics.legibility(probs, confidence=0.9, in_distribution=np.ones(len(probs), bool))
    assert out["class_coverage"] == NUM_CLASSES
    assert out["class_entropy_nats"] == pytest.approx(math.log(NUM_CLASSES))
    assert out["class_entropy_norm"] == pytest.approx(1.0)
    flat = metrics.legibility(np.full((5, NUM_CLASSES), 1 / NUM_CLASSES), 0.9, np.ones(5, bool))
    assert flat["legible_share"] == 0.0 and flat["class_coverage"] == 0 and flat["class_entropy_nats"] is None
    noise = metrics.legibility(probs, confidence=0.9, in_distribution=np.zeros(len(probs), bool))
    assert noise["confident_share"] == 1.0 and noise["legible_share"] == 0.0 and noise["class_entropy_nats"] is None


def test_legibility_rejects_a_mask_of_the_wrong_kind():
    with pytest.raises(ValueError, match="in_distribution"):
        metrics.legibility(one_hot(np.array([0, 1])), 0.9, np.array([1, 0]))


def test_confusion_figure_shades_the_diagonal():
    confusion = 4 * np.eye(NUM_CLASSES, dtype=np.int64)
    img = metrics.confusion_figure(confusion, glyphs(), cell=10)
    assert img.mode == "RGB" and img.width > NUM_CLASSES * 10 and img.height > NUM_CLASSES * 10
    full = np.all(np.asarray(img) == (8, 48, 107), axis=-1)  # the colour of a row share of 1
    assert full.sum() == NUM_CLASSES * 10 * 10  # exactly the 46 diagonal cells


def test_unconditional_reads_runner_up_and_rows():
    probs = np.full((4, NUM_CLASSES), 0.0)
    probs[0, 3], probs[0, 8] = 0.95, 0.05  # read 3, then 8
    probs[1, 3], probs[1, 8] = 0.92, 0.08  # read 3, then 8
    probs[2, 7], probs[2, 1] = 0.91, 0.09  # read 7, then 1
    probs[3, 9], probs[3, 3] = 0.5, 0.5  # a tie: unsure, the lower index first
    counts = metrics.read_counts(probs, confidence=0.9)
    assert counts.shape == (NUM_CLASSES,) and counts[3] == 2 and counts[7] == 1 and counts.sum() == 3
    pairs = metrics.runner_up_matrix(probs)
    assert pairs[3, 8] == 2 and pairs[7, 1] == 1 and pairs[3, 9] == 1 and pairs.sum() == 4
    rows = metrics.read_share_rows(counts)
    assert len(rows) == NUM_CLASSES and rows[3] == {"class": CLASS_NAMES[3], "glyph": glyphs()[3],
                                                    "accuracy": None, "read_share": pytest.approx(2 / 3)}
    assert sum(r["read_share"] for r in rows) == pytest.approx(1.0)
    assert all(r["read_share"] == 0 for r in metrics.read_share_rows(np.zeros(NUM_CLASSES, int)))
    img = metrics.confusion_figure(pairs, glyphs(), cell=10, axes=metrics.RUNNER_UP_AXES)
    assert img.width > NUM_CLASSES * 10


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    """No network (every connect and name lookup fails) and an empty torch hub cache under tmp_path."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_inception_download_offline_fails_in_one_line_naming_the_key_and_the_local_file(real, offline):
    with pytest.raises(DevagenError) as info:
        metrics.inception_fid(real, real, metrics.INCEPTION_DOWNLOAD, CFG)
    message = str(info.value)
    assert "\n" not in message and message.startswith("params.yaml: evaluate.inception_weights: download ")
    assert "local path" in message and "weights-inception-2015-12-05" in message
    assert not list(offline.glob("*.pth"))  # nothing half-written left in the cache


def test_inception_download_uses_the_cached_file_without_network(offline):
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    offline.mkdir(parents=True)
    cached = offline / URL_INCEPTION_V3.rsplit("/", 1)[1]
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, cached)  # torch-fidelity's file as a first run left it
    assert metrics.inception_weights_file(metrics.INCEPTION_DOWNLOAD) == cached
    assert metrics.inception_weights_file(None) is None


def test_evaluate_stage_refuses_an_offline_download_before_any_work(offline, tmp_path, monkeypatch):
    import yaml
    from click.testing import CliRunner

    from devagen.cli import cli

    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    params["evaluate"]["inception_weights"] = "download"
    params["tracking"]["enabled"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)  # no samples, no judge: any work at all would fail on those first
    result = CliRunner().invoke(cli, ["evaluate"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "evaluate.inception_weights: download could not fetch" in lines[0], result.output
