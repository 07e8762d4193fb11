"""benchmarks/train_throughput.py: both loops run a step on a few synthetic images and report sane numbers."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from devagen.classes import CLASS_NAMES
from devagen.config import Params

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"


@pytest.fixture(scope="module")
def throughput():
    """The benchmark script imported as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_both_loops_report_throughput_and_profile(throughput) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 16, 16), dtype=np.uint8)
    labels = rng.integers(0, 46, 8)
    bench = throughput.Bench(preset="tiny", batch=4, warmup=1, steps=1)
    results = throughput.benchmark(bench, images, labels, Params())
    assert [r["loop"] for r in results] == ["plain (PNG DataLoader)", "ours (train_diffusion)"]
    for r in results:
        assert math.isfinite(r["img_per_s"]) and r["img_per_s"] > 0
        assert all(r[f"{name}_pct"] > 0 for name in throughput.PHASES), r  # every phase was seen and timed
        assert sum(r[f"{name}_pct"] for name in throughput.PHASES) == pytest.approx(100.0)
    table = throughput.throughput_table(results)
    assert "| plain (PNG DataLoader) |" in table and "1.00x" in table


def test_png_layout_round_trips(throughput, tmp_path: Path) -> None:
    images = np.arange(2 * 16 * 16, dtype=np.uint8).reshape(2, 16, 16)
    labels = np.array([3, 45])
    train = throughput.write_pngs(images, labels, tmp_path)
    files = sorted(train.glob("*/*.png"))
    assert [f.parent.name for f in files] == [CLASS_NAMES[3], CLASS_NAMES[45]]
    loader = throughput.plain_dataloader(train, throughput.Bench(batch=2))
    x0, y = next(iter(loader))
    assert x0.shape == (2, 1, 16, 16) and float(x0.min()) >= -1 and float(x0.max()) <= 1
    assert sorted(y.tolist()) == [3, 45]  # devagen's class indices, not ImageFolder's folder order


def test_sampler_quality_measures_one_setting(tiny_model_dir: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from sampler_quality import measure, table

    from devagen.config import OcrConfig
    from devagen.ocr import build_judge

    judge = build_judge(OcrConfig(width=4), 16).eval()
    labels = np.arange(46, dtype=np.int64)
    real = np.random.default_rng(0).integers(0, 256, (60, 16, 16), dtype=np.uint8)
    row = measure(tiny_model_dir, judge, "dpmpp", 2, 2.0, labels, real)
    assert row["images"] == 46 and row["images_per_s"] > 0 and 0 <= row["ocr_accuracy"] <= 1
    assert row["fid"] >= 0 and "| dpmpp | 2 |" in table([row])
