"""The OCR judge: shapes, learning a separable synthetic set, probabilities, save/load."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from devagen.core.classes import CLASS_NAMES, NUM_CLASSES
from devagen.core.config import AugmentConfig, OcrConfig
from devagen.core.errors import DevagenError
from devagen.data.prepared import to_model_range
from devagen.judges.ocr import (
    build_judge,
    load_judge,
    predict_proba,
    recalibrate_batchnorm,
    save_judge,
    train_judge,
)

SIZE = 16
TINY = OcrConfig(seed=0, epochs=4, batch_size=32, lr=0.2, width=8, label_smoothing=0.0, augment=False)


def synthetic(per_class: int, seed: int, classes: int = NUM_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (classes·per_class, 16, 16): one fixed random blob pattern per class, 3 % of pixels flipped."""
    templates = np.random.default_rng(123).random((classes, SIZE, SIZE)) < 0.3
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    noisy = templates[labels] ^ (rng.random((len(labels), SIZE, SIZE)) < 0.03)
    return (noisy * 255).astype(np.uint8), labels.astype(np.int64)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: a second OpenMP thread only adds sync cost (40 s instead of 7 on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained() -> tuple:
    """(judge, metrics, logged rows) of TINY trained on 46 x 16 synthetic images."""
    x, y = synthetic(16, seed=1)
    xt, yt = synthetic(4, seed=2)
    rows: list[tuple[dict, int]] = []
    judge, metrics = train_judge(TINY, AugmentConfig(), x, y, xt, yt, log_fn=lambda m, s: rows.append((m, s)),
                                 progress=False)
    return judge, metrics, rows


def test_build_shapes() -> None:
    judge = build_judge(OcrConfig(width=8), 32)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert judge(x).shape == (3, NUM_CLASSES)
    assert judge.features(x).shape == (3, 32)  # 4 x width


def test_pool_first_pools_before_batchnorm_and_computes_the_same_function() -> None:
    """pool_first only moves each max-pool ahead of its BatchNorm + ReLU: same parameters, and the same outputs
    while every BN scale is positive (max-pool commutes with an increasing per-channel map)."""
    torch.manual_seed(0)
    before, after = build_judge(OcrConfig(width=8), 32).eval(), build_judge(OcrConfig(width=8, pool_first=True), 32).eval()
    kinds = [type(m).__name__ for m in after.body[:4]]
    assert kinds == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    assert [type(m).__name__ for m in before.body[:4]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert sum(p.numel() for p in before.parameters()) == sum(p.numel() for p in after.parameters())
    kept = (torch.nn.Conv2d, torch.nn.BatchNorm2d)
    layers = list(zip([m for m in before.modules() if isinstance(m, kept)], [m for m in after.modules() if isinstance(m, kept)]))
    with torch.no_grad():
        for a, b in layers:
            if isinstance(a, torch.nn.BatchNorm2d):  # positive scales, arbitrary shifts and statistics
                a.weight.uniform_(0.5, 2), a.bias.normal_(), a.running_mean.normal_(), a.running_var.uniform_(0.5, 2)
            b.load_state_dict(a.state_dict())
        after.head.load_state_dict(before.head.state_dict())
        x = torch.rand(5, 1, 32, 32) * 2 - 1
        assert torch.allclose(after(x), before(x), atol=1e-5)
        for norm in (before.body[1], after.body[2]):  # a negative scale, shifted to stay above ReLU's zero:
            norm.weight[0], norm.bias[0] = -1.0, 5.0  # max-pool then no longer commutes with the map
        first_before, first_after = before.body[:4](x), after.body[:4](x)
        assert torch.allclose(first_after[:, 1:], first_before[:, 1:], atol=1e-5)
        assert not torch.allclose(first_after[:, 0], first_before[:, 0], atol=1e-3)


def test_pool_first_survives_save_and_load_and_old_judges_normalise_first(tmp_path) -> None:
    import json

    from devagen.core.integrity import write_manifest

    torch.manual_seed(0)
    judge = build_judge(OcrConfig(width=4, pool_first=True), SIZE).eval()
    save_judge(judge, tmp_path / "new", OcrConfig(width=4, pool_first=True), SIZE)
    loaded = load_judge(tmp_path / "new")
    x = to_model_range(torch.from_numpy(synthetic(1, seed=7)[0]))
    with torch.no_grad():
        assert loaded.pool_first and torch.allclose(loaded(x), judge(x), atol=1e-6)  # loaded: channels-last
    old = build_judge(OcrConfig(width=4), SIZE).eval()
    save_judge(old, tmp_path / "old", OcrConfig(width=4), SIZE)
    meta = json.loads((tmp_path / "old" / "judge.json").read_text(encoding="utf-8"))
    del meta["architecture"]["pool_first"]  # a judge.json written before the option existed
    (tmp_path / "old" / "judge.json").write_text(json.dumps(meta), encoding="utf-8")
    write_manifest(tmp_path / "old")
    assert not load_judge(tmp_path / "old").pool_first


def test_build_rejects_tiny_images() -> None:
    with pytest.raises(DevagenError, match="image_size"):
        build_judge(OcrConfig(), 4)


def test_learns_separable_set(trained: tuple) -> None:
    judge, metrics, rows = trained
    assert metrics["test_accuracy"] >= 0.9
    assert set(metrics["per_class_accuracy"]) == set(CLASS_NAMES)
    assert metrics["epochs"] == TINY.epochs and metrics["device"] in ("cpu", "cuda")
    assert metrics["params"] == sum(p.numel() for p in judge.parameters())
    assert metrics["train_seconds"] > 0
    assert [s for _, s in rows] == list(range(1, TINY.epochs + 1))
    assert rows[-1][0]["train_loss"] < rows[0][0]["train_loss"]
    assert "test_accuracy" not in rows[0][0] and rows[-1][0]["test_accuracy"] == metrics["test_accuracy"]  # tested once
    assert not judge.training and next(judge.parameters()).device.type == "cpu"


def test_absent_test_class_has_no_accuracy() -> None:
    x, y = synthetic(4, seed=1)
    xt, yt = synthetic(2, seed=2, classes=3)
    cfg = OcrConfig(epochs=1, batch_size=32, width=4, augment=False)
    _, metrics = train_judge(cfg, AugmentConfig(), x, y, xt, yt, progress=False)
    assert metrics["per_class_accuracy"][CLASS_NAMES[45]] is None
    assert metrics["per_class_accuracy"][CLASS_NAMES[0]] is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="bitwise repeatability is promised on CPU only (cuDNN varies)")
def test_same_seed_same_weights_with_augmentation() -> None:
    x, y = synthetic(2, seed=1)
    cfg = OcrConfig(seed=3, epochs=1, batch_size=16, width=4, augment=True)
    runs = [train_judge(cfg, AugmentConfig(), x, y, x, y, progress=False)[0] for _ in range(2)]
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        assert torch.equal(a, b)


def test_later_epochs_train_on_the_hardest_images_and_a_random_share_of_the_rest() -> None:
    from devagen.judges.ocr import _epoch_order, _epoch_size

    cfg = OcrConfig(batch_size=8, hard_share=0.3, random_share=0.1)
    hardness = torch.arange(100, dtype=torch.float32).flip(0)  # image 0 is the hardest
    gen = torch.Generator().manual_seed(0)
    first = _epoch_order(100, cfg, 1, hardness, gen)
    assert sorted(first.tolist()) == list(range(100)) and first.tolist() != list(range(100))  # all, shuffled
    later = _epoch_order(100, cfg, 2, hardness, gen).tolist()
    assert len(later) == len(set(later)) == 40 == _epoch_size(100, cfg, 2)
    assert set(range(30)) <= set(later) and later[:30] != list(range(30))  # the 30 hardest, shuffled in
    again = _epoch_order(100, cfg, 2, hardness, gen).tolist()
    assert set(again) - set(range(30)) != set(later) - set(range(30))  # the random 10 are drawn afresh
    assert _epoch_size(100, OcrConfig(), 2) == 100 and _epoch_size(100, OcrConfig(hard_share=0.9, random_share=0.1), 2) == 100
    small = OcrConfig(batch_size=32, hard_share=0.1, random_share=0.05)  # 15 of 100 is less than a batch: one batch
    tiny_epoch = _epoch_order(100, small, 2, hardness, gen).tolist()
    assert len(set(tiny_epoch)) == 32 == _epoch_size(100, small, 2) and set(range(27)) <= set(tiny_epoch)
    with pytest.raises(DevagenError, match="train_ocr.hard_share"):
        OcrConfig(hard_share=0.0)
    with pytest.raises(DevagenError, match="train_ocr.random_share"):
        OcrConfig(random_share=-0.1)


def test_hard_image_epochs_learn_and_count_the_images_trained() -> None:
    x, y = synthetic(16, seed=1)
    xt, yt = synthetic(4, seed=2)
    cfg = dataclasses.replace(TINY, epochs=5, hard_share=0.25, random_share=0.25)
    rows: list[dict] = []
    judge, metrics = train_judge(cfg, AugmentConfig(), x, y, xt, yt, log_fn=lambda m, s: rows.append(m), progress=False)
    n = len(x)
    assert [r["images"] for r in rows] == [n] + [n // 4 + n // 4] * 4
    assert metrics["images_trained"] == (n // 32 + 4 * ((n // 2) // 32)) * 32
    assert metrics["test_accuracy"] >= 0.9


def test_predict_proba_rows_sum_to_one(trained: tuple) -> None:
    judge = trained[0]
    x, y = synthetic(2, seed=5)
    probs = predict_proba(judge, x, batch_size=7)  # a ragged last batch
    assert probs.shape == (len(x), NUM_CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == y).mean() >= 0.9


def test_predict_proba_rejects_wrong_size(trained: tuple) -> None:
    with pytest.raises(DevagenError, match="image_size"):
        predict_proba(trained[0], np.zeros((2, 32, 32), np.uint8))


def test_save_load_round_trip(trained: tuple, tmp_path) -> None:
    judge = trained[0]
    save_judge(judge, tmp_path / "ocr", TINY, SIZE)
    loaded = load_judge(tmp_path / "ocr")
    x = to_model_range(torch.from_numpy(synthetic(1, seed=7)[0]))
    with torch.no_grad():
        assert torch.equal(loaded(x), judge(x))
        assert torch.equal(loaded.features(x), judge.features(x))
    assert not loaded.training


def test_load_missing_dir_names_it(tmp_path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DevagenError, match="dvc repro train_ocr") as err:
        load_judge(missing)
    assert str(missing) in str(err.value)


def test_load_corrupt_weights(trained: tuple, tmp_path) -> None:
    save_judge(trained[0], tmp_path, TINY, SIZE)
    (tmp_path / "judge.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DevagenError, match="unreadable") as err:
        load_judge(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_recalibrate_batchnorm_sets_plain_averages(trained: tuple) -> None:
    judge = copy.deepcopy(trained[0])
    x, _ = synthetic(4, seed=3)
    recalibrate_batchnorm(judge, x, batch_size=len(x))  # one batch: the running mean is that batch's mean
    conv, norm = judge.body[0], judge.body[1]
    with torch.no_grad():
        first = conv(to_model_range(torch.from_numpy(x)))
    # 1e-4: the channels-last BatchNorm sums in another order than this mean (1.6e-5 apart measured)
    assert torch.allclose(norm.running_mean, first.mean((0, 2, 3)), atol=1e-4)
    assert not torch.allclose(norm.running_mean, trained[0].body[1].running_mean, atol=1e-3)
    assert not judge.training and norm.momentum == 0.1  # the training momentum is put back
