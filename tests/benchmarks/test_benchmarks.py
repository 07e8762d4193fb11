"""benchmarks/train_throughput.py: both loops run a step on a few synthetic images and report sane numbers."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import click
import numpy as np
import pytest

from devagen.core.classes import CLASS_NAMES
from devagen.core.params import Params

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"


def _load_script(name: str):  # type: ignore[no-untyped-def]
    """benchmarks/<name>.py imported as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPT.parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def throughput():
    """benchmarks/train_throughput.py as a module."""
    yield _load_script("train_throughput")
    del sys.modules["train_throughput"]


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
    sampler_quality = _load_script("sampler_quality")
    from devagen.core.config import OcrConfig
    from devagen.judges.ocr import build_judge

    judge = build_judge(OcrConfig(width=4), 16).eval()
    labels = np.arange(46, dtype=np.int64)
    real = np.random.default_rng(0).integers(0, 256, (60, 16, 16), dtype=np.uint8)
    row = sampler_quality.measure(tiny_model_dir, judge, "dpmpp", 2, 2.0, labels, real)
    assert row["images"] == 46 and row["images_per_s"] > 0 and 0 <= row["ocr_accuracy"] <= 1
    assert row["fid"] >= 0 and "| dpmpp | 2 |" in sampler_quality.table([row])


def test_recipe_probe_measures_each_setting_on_the_same_labels(tiny_model_dir: Path) -> None:
    recipe_probe = _load_script("recipe_probe")
    from devagen.core.config import OcrConfig
    from devagen.data.prepared import Split
    from devagen.judges.ocr import build_judge

    judge = build_judge(OcrConfig(width=4), 16).eval()
    rng = np.random.default_rng(0)
    test = Split(rng.integers(0, 256, (46 * 4, 16, 16), dtype=np.uint8), np.repeat(np.arange(46), 4))
    setting = recipe_probe.parse_setting("steps=2,guidance_scale=3,guidance_t_min=150")
    assert setting == {"steps": 2, "guidance_scale": 3, "guidance_t_min": 150}
    row = recipe_probe.measure(tiny_model_dir, setting, Params(), judge, test, per_class=2)
    assert row["images"] == 92 and row["seconds"] > 0 and 0 <= row["ocr_accuracy"] <= 1 and row["fid"] >= 0
    assert row["stroke_width_ratio"] > 0 and row["ink_mass_ratio"] > 0
    assert "| steps=2, guidance_scale=3, guidance_t_min=150 |" in recipe_probe.table([row])
    with pytest.raises(Exception, match="KEY=VALUE"):
        recipe_probe.parse_setting("guidance_scale")


def test_judge_probe_trains_each_setting_per_seed_and_refuses_unknown_fields() -> None:
    judge_probe = _load_script("judge_probe")
    from devagen.core.config import AugmentConfig, OcrConfig
    from devagen.data.prepared import Split

    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (46 * 4, 16, 16), dtype=np.uint8), np.repeat(np.arange(46), 4))
    base = OcrConfig(epochs=1, batch_size=32, width=4, augment=False)
    setting = judge_probe.parse_setting("epochs=3,hard_share=0.25,random_share=0.25", "train_ocr")
    assert setting == {"epochs": 3, "hard_share": 0.25, "random_share": 0.25}
    row = judge_probe.run(base, AugmentConfig(), setting, 2, split, split)
    assert row["seed"] == 2 and 0 <= row["test_accuracy"] <= 1 and row["train_seconds"] >= 0  # rounded to 0.1 s: a tiny run can read 0.0
    assert row["images_trained"] == (184 // 32 + 2 * (92 // 32)) * 32  # epoch 1 all, then half of the images
    assert "| epochs=3, hard_share=0.25, random_share=0.25 | 2 |" in judge_probe.table([row])
    with pytest.raises(Exception, match="no widht"):
        judge_probe.run(base, AugmentConfig(), {"widht": 8}, 0, split, split)
    with pytest.raises(Exception, match="KEY=VALUE.* of the train_ocr section"):
        judge_probe.parse_setting("epochs", "train_ocr")


def _readme_overrides(experiment: str) -> dict:
    """The -S key=value pairs of README's `dvc exp run -n <experiment>` line, values parsed as YAML."""
    import yaml

    readme = (SCRIPT.parents[1] / "README.md").read_text(encoding="utf-8")
    [line] = [ln for ln in readme.splitlines() if ln.startswith(f"dvc exp run -n {experiment} ")]
    pairs = [tok.split("=", 1) for tok in line.split(" -S ")[1:]]
    return {key: yaml.safe_load(value) for key, value in pairs}


@pytest.mark.parametrize("experiment, config", [("seed-gpu", "seed"), ("gpu-recommended", "recommended")])
def test_gpu_runs_measure_the_readme_commands(experiment: str, config: str) -> None:
    """benchmarks/gpu_runs.py measured what README tells GPU users to run (sample.count only sizes the FID set)."""
    import yaml

    from devagen.core.params import params_from_dict

    gpu_runs = _load_script("gpu_runs")
    measured = gpu_runs.CONFIGS[config]
    readme = _readme_overrides(experiment)
    assert set(readme) == set(measured) - {"sample.count", "sample.per_class"}
    base = yaml.safe_load((SCRIPT.parents[1] / "params.yaml").read_text(encoding="utf-8"))
    sizes = {k: v for k, v in measured.items() if k in ("sample.count", "sample.per_class")}
    # values cast as `dvc exp run -S` strings are: README's "1e-4" is the script's 1e-4
    assert params_from_dict(gpu_runs.apply(base, {**readme, **sizes})) == params_from_dict(gpu_runs.apply(base, measured))
    params = params_from_dict(gpu_runs.apply(base, {**measured, **gpu_runs.COMMON}))
    assert params.model.preset == "seed" and params.model.conditional == (config == "recommended")
    assert not params.tracking.enabled


def test_gpu_runs_row_and_table() -> None:
    """Share of peak = FLOP per image × img/s ÷ measured peak; the table shows OCR as a percentage."""
    import yaml

    from devagen.core.params import params_from_dict

    gpu_runs = _load_script("gpu_runs")
    base = yaml.safe_load((SCRIPT.parents[1] / "params.yaml").read_text(encoding="utf-8"))
    params = params_from_dict(gpu_runs.apply(base, gpu_runs.RECOMMENDED))
    result = {"config": "recommended", "train_wall_s": 70.0,
              "train": {"img_per_s": 2000.0, "steps": 1222, "epochs": 2.0, "wall_s": 60.0},
              "sample": {"images_per_s": 250.0},
              "eval": {"n_generated": 920, "ocr_accuracy": 0.9, "legible_share": 0.8, "fid": 1.5, "floor_fid": 0.75}}
    row = gpu_runs.row(result, params, flop=10e9, peaks={"bf16": 800.0, "fp16": 750.0})
    assert row["train_tflop_per_s"] == pytest.approx(20.0) and row["peak_pct"] == pytest.approx(2.5)
    assert row["train_min"] == pytest.approx(1.0) and row["mixed_precision"] == "bf16"
    table = gpu_runs.markdown([row], "note")
    assert "| 90.0 % |" in table and "20.0 (2.5 %)" in table and "1.50 [0.75]" in table
    with pytest.raises(Exception, match="SECTION.KEY=VALUE"):
        gpu_runs.parse_set(("lr=1",))


def test_style_control_benchmark_runs_and_an_untrained_model_fails_its_targets(tiny_style_model_dir: Path,
                                                                               tmp_path: Path) -> None:
    from click.testing import CliRunner

    params = tmp_path / "params.yaml"
    params.write_text("sample:\n  steps: 1\n  sampler: dpmpp\n", encoding="utf-8")
    bench = _load_script("style_control")
    try:
        result = CliRunner().invoke(bench.main, ["--model", str(tiny_style_model_dir), "--out", str(tmp_path / "o"),
                                                 "--per-value", "1", "--words", "2", "--seeds", "1",
                                                 "--classes", "क,ख", "--params", str(params)])
    finally:
        del sys.modules["style_control"]
    assert result.exit_code == 0, result.output
    out = __import__("json").loads((tmp_path / "o" / "style_control.json").read_text(encoding="utf-8"))
    assert out["stroke_sweep"]["n"] == 2 * 6 and out["slant_sweep"]["n"] == 2 * 5  # the values inside 0.5-1.8, -20..30
    assert not out["stroke_sweep"]["r_images"] >= 0.9  # random weights do not follow the asked pen
    assert out["slant_network_sweep"]["n"] == out["slant_sweep"]["n"]  # the same images, before and after the shear
    assert set(out["consistency"]["slant_deg"]) >= {"within_word_one_pen", "within_word_one_pen_no_shear"}
    for name in ("stroke_sweep.png", "slant_sweep.png", "slant_sweep_network.png", "word.png", "style_control.md"):
        assert (tmp_path / "o" / name).is_file()


def test_cpu_profile_times_old_and_new_paths() -> None:
    import dataclasses

    from devagen.core.config import OcrConfig, PrepareConfig, SampleConfig, TrainConfig
    from devagen.core.shape import ModelConfig

    profile = _load_script("cpu_profile")
    params = dataclasses.replace(Params(), prepare=PrepareConfig(image_size=16), model=ModelConfig(preset="tiny"),
                                 train=TrainConfig(batch_size=2), sample=SampleConfig(batch_size=2),
                                 train_ocr=OcrConfig(batch_size=4, width=4))
    report = profile.profile_report(params, steps=1, rounds=1, echo=lambda line: None)
    rows = [line for line in report.splitlines() if line.startswith("| ") and " img/s " not in line
            and "---" not in line and not line.startswith("| op") and not line.startswith("| `")]
    assert [r.split(" | ")[0] for r in rows] == ["| train step (batch 2)", "| sampler pass (CFG batch) (batch 4)",
                                                "| judge step (batch 4)", "| judge layout (batch 4)"]
    for row in rows:
        ratio = float(row.rstrip(" |").rsplit(" | ", 1)[1])
        assert math.isfinite(ratio) and ratio > 0
    assert report.count("## ") == 8 and "native bf16:" in report
    only = profile.profile_report(params, steps=1, rounds=1, echo=lambda line: None, only=("judge layout",))
    assert "| judge layout (batch 4)" in only and "| judge step (batch 4)" not in only and only.count("## ") == 2
    with pytest.raises(click.BadParameter, match="no workload judge steps"):
        profile.profile_report(params, steps=1, rounds=1, echo=lambda line: None, only=("judge steps",))
    del sys.modules["cpu_profile"]


@pytest.fixture(scope="module")
def fast_path():
    """benchmarks/gpu_fast_path.py as a module (it imports its siblings gpu_runs and train_throughput by path)."""
    path, siblings = list(sys.path), {n: sys.modules.get(n) for n in ("gpu_runs", "train_throughput")}
    yield _load_script("gpu_fast_path")
    del sys.modules["gpu_fast_path"]
    sys.path[:] = path
    for name, module in siblings.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


def _fast_path_params() -> Params:
    from devagen.core.params import params_from_dict

    return params_from_dict({
        "prepare": {"image_size": 16}, "model": {"preset": "tiny", "conditional": True, "style_conditioning": False},
        "train": {"batch_size": 8, "max_steps": 8, "warmup_steps": 2, "mixed_precision": "no", "compile": "off"},
        "sample": {"per_class": 2, "steps": 2, "batch_size": 92}, "tracking": {"enabled": False}})


@pytest.fixture(scope="module")
def fast_path_run(fast_path, tmp_path_factory: pytest.TempPathFactory):
    """One timed 8-step run of the tiny UNet on a random DHCD-shaped split, logged every 2 steps, snapshotted every 4."""
    from devagen.data.prepared import Split

    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (46 * 4, 16, 16), dtype=np.uint8), np.repeat(np.arange(46), 4))
    trained = fast_path.timed_train(_fast_path_params(), split, tmp_path_factory.mktemp("fast-path"),
                                    log_every=2, snapshot_every=4)
    return trained, split


def test_fast_path_timed_train_stamps_and_snapshots_each_log_line(fast_path_run) -> None:
    import torch

    from devagen.sampling.pipeline import load_pipeline

    trained, _ = fast_path_run
    stamps = [trained.stamps[s] for s in (2, 4, 6, 8)]
    assert sorted(trained.stamps) == [2, 4, 6, 8] and stamps == sorted(stamps) and len(set(stamps)) == 4
    assert sorted(trained.snapshots) == [4, 8] and trained.batch == 8 and trained.result["steps"] == 8
    assert trained.img_per_s() > 0 and trained.train_s(8) > trained.train_s(4) > trained.train_s(2)
    assert trained.train_s(2) == pytest.approx(trained.stamps[2] - trained.warmup_s())
    saved = list(load_pipeline(trained.model_dir, device="cpu").unet.parameters())  # the EMA weights at the end
    assert len(saved) == len(trained.snapshots[4]) == len(trained.snapshots[8])
    assert all(torch.equal(a, b) for a, b in zip(trained.snapshots[8], saved))
    # copies taken at step 4, not views of the weights that training went on to change
    assert not all(torch.equal(a, b) for a, b in zip(trained.snapshots[4], trained.snapshots[8]))


def test_fast_path_judges_a_snapshot_like_the_evaluate_stage(fast_path, fast_path_run,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from PIL import Image

    from devagen.core.config import OcrConfig
    from devagen.data.prepared import Split
    from devagen.judges.legibility import fit_judge_ood
    from devagen.judges.ocr import build_judge

    trained, train = fast_path_run
    judge = build_judge(OcrConfig(width=4), 16).eval()
    ood = fit_judge_ood(judge, train.images, train.labels, 0.25, 0)
    rng = np.random.default_rng(1)
    test = Split(rng.integers(0, 256, (46 * 2, 16, 16), dtype=np.uint8), np.repeat(np.arange(46), 2))
    sampled_with = []

    def spy(pipe, labels, count, cfg, **kwargs):  # type: ignore[no-untyped-def]
        sampled_with.append([p.detach().clone() for p in pipe.unet.parameters()])
        return real_generate(pipe, labels, count, cfg, **kwargs)

    real_generate = fast_path.generate
    monkeypatch.setattr(fast_path, "generate", spy)
    row, figure = fast_path.judge_snapshot(trained, 4, _fast_path_params(), judge, ood, train, test)
    assert row["step"] == 4 and row["images_seen"] == 32 and row["train_s"] == round(trained.train_s(4), 2)
    assert 0 <= row["ocr_accuracy"] <= 1 and row["fid"] >= 0 and row["floor_fid"] >= 0 and row["sample_s"] > 0
    assert 0 <= row["legible_share"] <= 1 and 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
    assert row["stroke_width_ratio"] > 0 and row["ink_mass_ratio"] > 0
    assert row["meets_bar"] is False  # random weights after 6 steps read as noise
    assert isinstance(figure, Image.Image)
    [weights] = sampled_with  # the step-4 snapshot, not the saved (final) weights
    assert all(torch.equal(a, b) for a, b in zip(weights, trained.snapshots[4], strict=True))


def test_fast_path_markdown_tables(fast_path) -> None:
    snapshot = {"step": 60, "images_seen": 30720, "train_s": 12.5, "ocr_accuracy": 0.985, "fid": 1.25,
                "floor_fid": 0.5, "legible_share": 0.9, "precision": 0.8, "recall": 0.7, "stroke_width_ratio": 1.1,
                "ink_mass_ratio": 0.95, "meets_bar": True}
    results = {"machine": "2025-01-01; a GPU",
               "throughput": [{"run": "recommended UNet, compile off", "batch": 512, "precision": "bf16",
                               "img_per_s": 4000.0, "tflop_per_s": 40.0, "peak_pct": 5.0, "warmup_s": 3.0}],
               "source_doc": [{"run": "plain loop", "img_per_s": 1000.0},
                              {"run": "ours, compile off", "img_per_s": 2500.0}],
               "time_to_quality": [{"recipe": "ttq: train.batch_size=512", "img_per_s": 4000.0, "warmup_s": 3.0,
                                    "snapshots": [snapshot]}],
               "skipped": ["compiled sweep"], "failed": []}
    md = fast_path.markdown(results)
    assert md.startswith("2025-01-01; a GPU\n")
    assert "| recommended UNet, compile off | 512 | bf16 | 4000.0 | 40.0 | 5.0 | 3.0 |" in md
    assert "| plain loop | 1000.0 | 1.00x |" in md and "| ours, compile off | 2500.0 | 2.50x |" in md
    assert "Time to quality: ttq: train.batch_size=512; 4000.0 img/s steady" in md and "OCR >= 98%" in md
    assert "| 60 | 30720 | 12.5 | 98.5 % | 1.25 [0.50] | 90.0 % | 0.80 / 0.70 | 1.10x | 0.95x | met |" in md
    assert "- skipped: compiled sweep" in md and "- failed" not in md


def test_fast_path_cli_wants_snapshots_at_log_lines(fast_path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    dummy = tmp_path / "not-an.npz"
    dummy.write_text("not read", encoding="utf-8")
    result = CliRunner().invoke(fast_path.main, ["--out", str(tmp_path / "o"), "--snapshot-every", "25",
                                                 "--log-every", "10", "--train", str(dummy), "--test", str(dummy),
                                                 "--judge", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "--snapshot-every" in result.output and "multiple of --log-every 10" in result.output
    assert not (tmp_path / "o").exists()  # refused before any work


def test_readme_gpu_fast_command_is_the_measured_recipe(fast_path) -> None:  # type: ignore[no-untyped-def]
    """README's `gpu-fast` line trains what gpu_fast_path.py timed: the recommended configuration plus TTQ."""
    import yaml

    from devagen.core.params import params_from_dict

    gpu_runs = sys.modules["gpu_runs"]
    measured = {**gpu_runs.RECOMMENDED, **fast_path.TTQ}
    readme = _readme_overrides("gpu-fast")
    assert set(readme) == set(measured) - {"sample.per_class"}
    base = yaml.safe_load((SCRIPT.parents[1] / "params.yaml").read_text(encoding="utf-8"))
    assert params_from_dict(gpu_runs.apply(base, readme)) == params_from_dict(gpu_runs.apply(base, measured))


def test_side_by_side_draws_one_panel_per_set_and_refuses_a_bad_spec(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from PIL import Image

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(46), 3)
    for name in ("real", "a", "b"):
        np.savez(tmp_path / f"{name}.npz", images=rng.integers(0, 256, (len(labels), 32, 32), dtype=np.uint8),
                 labels=labels)
    bench = _load_script("side_by_side")
    try:
        runner = CliRunner()
        common = ["--real", str(tmp_path / "real.npz"), "--classes", "क,ख", "--per-class", "2"]
        one = runner.invoke(bench.main, [*common, "--samples", f"a={tmp_path / 'a.npz'}", "--out", str(tmp_path / "1.png")])
        two = runner.invoke(bench.main, [*common, "--samples", f"a={tmp_path / 'a.npz'}",
                                         "--samples", f"b={tmp_path / 'b.npz'}", "--out", str(tmp_path / "2.png")])
        bad = runner.invoke(bench.main, [*common, "--samples", str(tmp_path / "a.npz"), "--out", str(tmp_path / "3.png")])
        np.savez(tmp_path / "big.npz", images=rng.integers(0, 256, (len(labels), 64, 64), dtype=np.uint8), labels=labels)
        big = runner.invoke(bench.main, [*common, "--samples", f"a={tmp_path / 'a.npz'}",
                                         "--samples", f"big={tmp_path / 'big.npz'}", "--out", str(tmp_path / "4.png")])
    finally:
        del sys.modules["side_by_side"]
    assert one.exit_code == 0 and two.exit_code == 0 and big.exit_code == 0, one.output + two.output + big.output
    w1, w2 = Image.open(tmp_path / "1.png").width, Image.open(tmp_path / "2.png").width
    assert w2 > w1 * 1.4  # real + 2 panels against real + 1
    assert Image.open(tmp_path / "4.png").size == Image.open(tmp_path / "2.png").size  # 64x64 at 2x, 32x32 at 4x
    assert bad.exit_code != 0 and "expected NAME=PATH" in bad.output and not (tmp_path / "3.png").exists()


def test_distill_curve_counts_guided_passes_and_writes_its_table_and_plots(tiny_model_dir: Path, tmp_path: Path) -> None:
    from devagen.core.config import SampleConfig
    from devagen.sampling.pipeline import load_pipeline

    curve = _load_script("distill_curve")
    pipeline = load_pipeline(tiny_model_dir, "sde-dpmpp", device="cpu")
    cfg = SampleConfig(steps=10, guidance_scale=3.0, guidance_t_min=300)
    assert curve.nfe(pipeline, cfg) == 10 + 7  # trailing 10 steps: 999 ... 99, seven of them at t >= 300
    assert curve.nfe(pipeline, SampleConfig(steps=10, guidance_scale=1.0)) == 10
    rows = [{"row": name, "nfe": n, "ms_per_char": 10.0 / i, "ocr_accuracy": 0.9 - 0.01 * i, "legible_share": 0.7,
             "fid": 1.0 + i, "precision": 0.6, "recall": 0.7, "stroke_width_ratio": 1.0, "ink_mass_ratio": 1.0}
            for i, (name, n) in enumerate([("teacher sde-dpmpp 10", 17), ("teacher ddim 16 (distillation target)", 28),
                                           ("student 4", 4), ("student 1", 1)], start=1)]
    images = np.zeros((2, 16, 16), np.uint8)
    curve.write_results(rows, [("real", images), ("student 4", images)], "# header", tmp_path)
    table = (tmp_path / "curve.md").read_text().splitlines()
    assert table[0] == "# header" and len([line for line in table if line.startswith("| student")]) == 2
    assert "| teacher ddim 16 (distillation target) | 28 | 5.0 | 88.0% |" in "\n".join(table)
    assert (tmp_path / "curve.csv").read_text().count("\n") == 5
    assert all((tmp_path / name).stat().st_size > 1000 for name in ("curve.png", "samples.png"))


def test_patch_probe_trains_a_patch_preset_of_the_asked_widths_and_draws_full_size_images(tmp_path: Path,
                                                                                         cpu_one_thread) -> None:
    import dataclasses

    from devagen.core.config import SampleConfig
    from devagen.core.presets import patch_size
    from devagen.sampling.generate import generate
    from devagen.sampling.pipeline import load_pipeline
    from devagen.training.loop import train_diffusion

    probe = _load_script("patch_probe")
    params = Params()
    preset = probe.register_preset((16, 32))
    assert patch_size(preset) == 2
    model_cfg = dataclasses.replace(params.model, preset=preset)
    train_cfg = dataclasses.replace(params.train, max_steps=2, batch_size=4, warmup_steps=1, checkpoint_every=100,
                                    log_every=1, mixed_precision="no")
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8, 32, 32), dtype=np.uint8), rng.integers(0, 46, 8)
    pen = np.stack([rng.uniform(2, 4, 8), rng.uniform(-10, 10, 8)], axis=1)
    result = train_diffusion(train_cfg, model_cfg, params.diffusion, params.augment, images, labels,
                             tmp_path / "model", tmp_path / "ckpt", progress=False, pen=pen)
    assert result["steps"] == 2 and math.isfinite(result["final_loss"])
    pipe = load_pipeline(tmp_path / "model", "dpmpp", True)
    assert pipe.sample_shape == (16, 16) and pipe.unet.config.in_channels == 4
    assert pipe.unet.config.block_out_channels == [16, 32]
    drawn = generate(pipe, np.array([0, 5]), 2, dataclasses.replace(SampleConfig(), steps=2, precision="fp32"),
                     progress=False)
    assert drawn.shape == (2, 32, 32) and drawn.dtype == np.uint8


def test_quality_tone_reads_settings_and_tabulates_rows_with_their_floors() -> None:
    study = _load_script("quality_tone")
    try:
        name, cfg = study.parse_config("CFG 3, off:guidance_scale=3,tone_map=false,steps=15", Params().sample)
        assert name == "CFG 3, off" and cfg.guidance_scale == 3.0 and cfg.tone_map is False and cfg.steps == 15
        assert study.parse_config("as is:", Params().sample)[1] == Params().sample
        with pytest.raises(click.BadParameter, match="'lr' is not a sample key"):
            study.parse_config("x:lr=1", Params().sample)
        rows = [{"name": "a", "c2st": 0.7612, "floor_c2st": 0.5, "tone_c2st": 0.95, "floor_tone_c2st": 0.51,
                 "minutes": 1.5}, {"name": "b", "c2st": 0.65, "floor_c2st": None, "tone_c2st": 0.55}]
        text = study.table(rows)
        assert "| a | 0.761 | 0.950 | — |" in text and "| b | 0.650 | 0.550 |" in text
        assert "| real vs real (floor) | 0.500 | 0.510 |" in text
    finally:
        del sys.modules["quality_tone"]


def test_specks_counts_faint_pixels_with_no_brighter_neighbour() -> None:
    study = _load_script("specks")
    try:
        images = np.zeros((4, 6, 6), dtype=np.uint8)
        images[0, 0, 0] = 5                         # a speck on the background
        images[1, 3, 3], images[1, 2, 2] = 200, 8   # halo beside a stroke: not a speck
        images[2, 0, 5] = 9                         # above the halo: not a speck
        images[3, 5, 5], images[3, 3, 5] = 3, 100   # two pixels from ink: a speck
        per_mille, share = study.specks(images)
        assert share == 0.5 and per_mille == pytest.approx(2 / images.size * 1e3)
    finally:
        del sys.modules["specks"]


def test_pen_bins_counts_each_width_bin_of_a_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Glyphs of known pen widths land in their bins; each bin's legible, OCR and in-pieces shares are its images' own."""
    images = np.zeros((6, 32, 32), np.uint8)
    for i, width in enumerate((1, 1, 3, 3, 3, 6)):  # an L of this pen width per image
        images[i, 6:26, 8:8 + width] = 255
        images[i, 26 - width:26, 8:24] = 255
    images[1, 15, 8] = 0  # the second 1 px L broken in two
    legible = np.array([False, True, True, True, False, True])
    read = np.array([True, True, True, False, True, True])
    bench = _load_script("pen_bins")
    try:
        monkeypatch.setattr(bench, "scored", lambda *args: (legible, read))
        lines = bench.rows("s", images, np.zeros(6, int), np.array([0.5, 2.0, 4.0, 8.0]), None, None, 0.7, 0.99)
    finally:
        del sys.modules["pen_bins"]
    assert lines == ["| s | 0.50–2.00 | 33.3% | 50.0% | 100.0% | 50.0% |",   # the two 1 px pens: one legible, one broken
                     "| s | 2.00–4.00 | 50.0% | 66.7% | 66.7% | 0.0% |",    # the three 3 px pens
                     "| s | 4.00–8.00 | 16.7% | 100.0% | 100.0% | 0.0% |",  # the 6 px pen
                     "| s, all | | 100% | 66.7% | 83.3% | 16.7% |"]
    written = tmp_path / "t.md"
    bench.emit_table(["| a |", "|---|"], written)
    assert written.read_text(encoding="utf-8") == "| a |\n|---|\n"
    diagonal = np.zeros((2, 32, 32), np.uint8)
    diagonal[:, np.arange(5, 15), np.arange(5, 15)] = 255  # a 1 px diagonal: one 8-connected piece
    diagonal[1, 20, 20] = bench.INK - 1  # a pixel below the ink level is no piece
    assert not bench.in_pieces(diagonal).any()


def test_thin_pens_real_share_weights_each_class_in_the_band_equally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real images within ±15 % of the asked width count; each class with enough of them weighs the same."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # thin_pens imports its siblings pen_bins and quality_tone
    bench = _load_script("thin_pens")
    try:
        labels = np.array([0] * 5 + [1] * 10 + [2] * 4 + [3] * 5)
        widths = np.array([2.0] * 5 + [2.2] * 10 + [2.0] * 4 + [3.0] * 5)  # class 2 too few, class 3 too wide
        pieces = np.array([True] * 5 + [True] * 2 + [False] * 8 + [True] * 4 + [True] * 5)
        share, classes = bench.real_share(None, labels, widths, pieces, 2.0)
        empty, none = bench.real_share(None, labels, widths, pieces, 9.0)
        real, drawn = np.full((24, 32, 32), 255, np.uint8), np.zeros((24, 32, 32), np.uint8)
        picture = bench.figure(real, drawn)
    finally:
        for name in ("thin_pens", "pen_bins", "quality_tone"):
            sys.modules.pop(name, None)
    assert classes == 2 and share == pytest.approx((1.0 + 0.2) / 2)  # class 0 all in pieces, class 1 a fifth
    assert none == 0 and np.isnan(empty)
    assert picture.shape == ((2 * 34 + 4 + 2 * 34) * 4, 12 * 34 * 4)  # 2 rows of 12 framed glyphs per set, a band, 4x
    assert picture[4 * 5, 4 * 5] == 255 and picture[-4 * 5, 4 * 5] == 0  # real on top, samples below

def test_layout_measures_a_known_box_and_the_views_keep_what_they_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filled box's ink, centroid, spread and extent; the views binarize, blur and average as documented; a set as
    varied as real reads 1.00, a set of one glyph repeated 0."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # layout imports its sibling pen_bins
    bench = _load_script("layout")
    try:
        images = np.zeros((4, 32, 32), np.uint8)
        for i in range(4):
            images[i, 5 + i:25 + 2 * i, 10 - i:20] = 255  # 20 + i rows high, 10 + i wide
        images[0, 0, 0] = bench.INK - 1  # below the ink level: no part of the box
        found = bench.layout(images)
        labels = np.zeros(4, int)
        ratios = bench.spread_ratios(images, labels, images, labels)
        same = bench.spread_ratios(np.repeat(images[1:2], 4, axis=0), labels, images, labels)
        views = {name: view(images) for name, view in bench.VIEWS.items()}
    finally:
        for name in ("layout", "pen_bins"):
            sys.modules.pop(name, None)
    assert found["height"].tolist() == [20, 21, 22, 23] and found["width"].tolist() == [10, 11, 12, 13]
    assert found["centroid y"][1] == pytest.approx(16) and found["centroid x"][1] == pytest.approx(14)
    assert found["spread x"][1] == pytest.approx(np.sqrt(10))  # 11 columns alike: variance (11² - 1) / 12
    assert found["ink"][1] == pytest.approx(21 * 11)
    assert all(r == pytest.approx(1.0) for r in ratios.values())
    assert same["centroid y"] == 0 and same["height"] == 0
    assert set(np.unique(views["binarized"])) == {0, 255} and views["binarized"][0, 0, 0] == 0
    assert views["8x8 blocks"].shape == images.shape and views["8x8 blocks"][1].sum() == pytest.approx(
        images[1].astype(float).sum(), rel=0.01)  # block means keep the ink, only its placement blurs
    assert views["blurred"][1, 15, 15] == 255 and 0 < views["blurred"][1, 15, 9] < 255  # edges soften, cores stay
    assert bench.seed_spread([0.6, 0.7, 0.8]) == "0.700 | 0.700 | 0.082 | 0.600 | 0.800"  # median mean sd min max
