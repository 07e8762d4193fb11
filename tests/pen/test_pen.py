"""Style conditioning: pen measures, the StyleUNet2DModel, training with styles, the pipeline's stroke/slant
options and their one-line refusals, one pen per word, and diffusers-native loading of such a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from devagen.cli import cli
from devagen.core.config import DiffusionConfig, SampleConfig, TrainConfig
from devagen.core.shape import ModelConfig
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict
from devagen.diffusion.objective import diffusion_loss
from devagen.diffusion.unet import (
    NULL_LABEL,
    StyleUNet2DModel,
    build_noise_scheduler,
    build_unet,
    condition,
    with_null_class,
)
from devagen.pen import measures as style
from devagen.pen.conditions import (
    PenStyle,
    codes,
    measure_pen,
    pen_style,
    training_codes,
)
from devagen.sampling.generate import image_generators
from devagen.sampling.pipeline import load_pipeline
from devagen.sampling.text import generate_text, parse_text, word_pens

REPO = Path(__file__).resolve().parents[2]


def _bars(widths: list[int], size: int = 32) -> np.ndarray:
    """uint8 (N, S, S): one vertical white bar of each width, 20 px tall."""
    out = np.zeros((len(widths), size, size), np.uint8)
    for i, w in enumerate(widths):
        out[i, 6:26, 10:10 + w] = 255
    return out


def test_measure_pen_is_the_style_measures_and_fills_blank_images() -> None:
    images = np.concatenate([_bars([2, 4, 6]), np.zeros((1, 32, 32), np.uint8)])
    pen = measure_pen(images, chunk=2)
    ref = style.measure(images[:3])
    assert pen.dtype == np.float32 and pen.shape == (4, 2)
    np.testing.assert_allclose(pen[:3, 0], ref["stroke_width"], rtol=1e-5)
    np.testing.assert_allclose(pen[:3, 1], ref["slant"], atol=1e-4)
    assert pen[0, 0] < pen[1, 0] < pen[2, 0]
    assert pen[3, 0] == pytest.approx(np.median(pen[:3, 0]))  # no ink: the median, never NaN


def test_pen_style_ranges_pool_and_json_round_trip() -> None:
    rng = np.random.default_rng(0)
    pen = np.stack([rng.uniform(1.5, 4.5, 1000), rng.uniform(-20, 30, 1000)], 1).astype(np.float32)
    labels = np.repeat(np.arange(10), 100)
    summary = pen_style(pen, labels, seed=0, per_class=8)
    assert summary.median_width_px == pytest.approx(np.median(pen[:, 0]), rel=1e-3)
    lo, hi = summary.stroke_range
    assert 1.5 / summary.median_width_px <= lo < 1 < hi <= 4.5 / summary.median_width_px
    assert len(summary.pool) == 80 and {c for c, _, _ in summary.pool} == set(range(10))
    for c in range(10):  # slants are kept relative to their class's median
        assert summary.class_slant[c] == pytest.approx(np.median(pen[labels == c, 1]), abs=1e-3)
        assert abs(np.median([a for k, _, a in summary.pool if k == c])) < 20
    assert PenStyle.from_json(json.loads(json.dumps(summary.to_json()))) == summary
    assert PenStyle.from_json(None) is None


def test_pen_check_refuses_out_of_range_in_one_line() -> None:
    pen = PenStyle(2.6, (0.5, 1.8), (-20.0, 30.0), ((0, 1.0, 0.0),), (0.0,) * 46)
    pen.check(0.5, -20.0)
    pen.check(None, None)
    for stroke, slant, name in ((0.4, None, "--stroke"), (None, 31.0, "--slant"), (float("nan"), None, "--stroke")):
        with pytest.raises(DevagenError) as err:
            pen.check(stroke, slant)
        assert str(err.value).startswith(name) and "\n" not in str(err.value)
    assert "0.50 to 1.80" in str(pytest.raises(DevagenError, pen.check, 2.0, None).value)


def test_pen_draw_takes_the_class_pool_and_is_seeded() -> None:
    pen = PenStyle(2.6, (0.5, 1.8), (-20.0, 30.0), ((0, 0.7, -5.0), (1, 1.3, 12.0), (1, 1.2, 10.0)), (0.0,) * 46)
    assert pen.draw([0], torch.Generator().manual_seed(3)) == (0.7, -5.0)
    draws = {pen.draw([1], torch.Generator().manual_seed(s)) for s in range(20)}
    assert draws == {(1.3, 12.0), (1.2, 10.0)}
    assert pen.draw(None, torch.Generator().manual_seed(5)) == pen.draw(None, torch.Generator().manual_seed(5))
    wide = PenStyle(2.6, (0.5, 1.8), (-20.0, 30.0), ((0, 2.5, 40.0),), (0.0,) * 46)
    drawn = wide.draw([0], torch.Generator().manual_seed(0))
    assert drawn == (1.8, 30.0)
    wide.check(*drawn)  # a drawn pen is always one the pipeline accepts


def test_codes_are_log2_stroke_and_scaled_slant() -> None:
    out = codes(torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.0, 30.0, -15.0]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, -0.5]]))
    pen = np.array([[2.0, 10.0], [4.0, 40.0], [1.0, -5.0], [2.0, -1.0]], np.float32)
    train = training_codes(pen, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(train[:, 0], [0.0, 1.0, -1.0, 0.0], atol=1e-6)
    # slant relative to the class median: class 0 median 25, class 1 median -3
    np.testing.assert_allclose(train[:, 1], np.array([-15.0, 15.0, -2.0, 2.0]) / 30.0, atol=1e-6)


def test_style_unet_reads_style_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny", style_conditioning=True), 16).eval()
    assert isinstance(unet, StyleUNet2DModel)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([500, 500])
    labels = torch.tensor([3, 3])
    thin = condition(labels, codes(torch.tensor([0.6, 0.6]), torch.zeros(2)))
    bold = condition(labels, codes(torch.tensor([1.6, 1.6]), torch.zeros(2)))
    none = condition(labels, None)
    with torch.no_grad():
        outs = [unet(x, t, class_labels=c).sample for c in (thin, bold, none)]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])
    unet.save_pretrained(tmp_path / "unet")
    assert json.loads((tmp_path / "unet" / "config.json").read_text())["_class_name"] == "StyleUNet2DModel"
    again = StyleUNet2DModel.from_pretrained(tmp_path / "unet").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x, t, class_labels=thin).sample, outs[0])


def test_condition_layout_and_null_class_keeps_the_style() -> None:
    c = condition(torch.tensor([5, 7]), torch.tensor([[0.5, -0.2], [0.1, 0.3]]), torch.tensor([True, False]))
    torch.testing.assert_close(c, torch.tensor([[5.0, 0.5, -0.2, 1.0], [7.0, 0.1, 0.3, 0.0]]))
    null = with_null_class(c, NULL_LABEL)
    assert null[:, 0].tolist() == [NULL_LABEL] * 2 and torch.equal(null[:, 1:], c[:, 1:])
    assert with_null_class(torch.tensor([1, 2]), NULL_LABEL).tolist() == [NULL_LABEL] * 2


def test_style_loss_is_finite_and_style_dropout_is_seeded() -> None:
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny", style_conditioning=True), 16)
    scheduler = build_noise_scheduler(DiffusionConfig())
    x0, labels = torch.rand(8, 1, 16, 16) * 2 - 1, torch.arange(8)
    styles = torch.randn(8, 2)
    losses = [diffusion_loss(unet, scheduler, x0, labels, DiffusionConfig(), 0.1, torch.Generator().manual_seed(1),
                             styles, p).item() for p in (0.0, 0.5, 0.5)]
    assert all(np.isfinite(losses)) and losses[1] == losses[2] and losses[0] != losses[1]


@pytest.mark.parametrize("raw,key", [
    ({"model": {"conditional": False, "style_conditioning": True}}, "model.style_conditioning"),
    ({"train": {"style_drop_prob": 1.0}}, "train.style_drop_prob"),
])
def test_config_refuses_style_settings_that_cannot_work(raw: dict, key: str) -> None:
    with pytest.raises(DevagenError, match=key.replace(".", r"\.")):
        params_from_dict(raw)


def test_training_with_styles_saves_the_pen(tmp_path: Path, cpu_one_thread) -> None:
    from devagen.core.config import AugmentConfig
    from devagen.training.loop import train_diffusion

    rng = np.random.default_rng(0)
    images = _bars(list(rng.integers(1, 7, 92)), 16)
    labels = np.repeat(np.arange(46), 2)
    pen = measure_pen(images)
    cfg = TrainConfig(batch_size=8, max_steps=2, warmup_steps=0, augment=False, checkpoint_every=5, ema_decay=0.9)
    model_cfg = ModelConfig(preset="tiny", style_conditioning=True)
    with pytest.raises(DevagenError, match="re-run `dvc repro prepare`"):
        train_diffusion(cfg, model_cfg, DiffusionConfig(), AugmentConfig(), images, labels, tmp_path / "m",
                        tmp_path / "c", progress=False)
    train_diffusion(cfg, model_cfg, DiffusionConfig(), AugmentConfig(), images, labels, tmp_path / "m",
                    tmp_path / "c", progress=False, pen=pen)
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["unet"] == ["unet_devagen", "StyleUNet2DModel"] and "pen" not in index
    saved = PenStyle.from_json(json.loads((tmp_path / "m" / "pen.json").read_text())["pen"])
    assert saved.median_width_px == pytest.approx(np.median(pen[:, 0]), rel=1e-3)
    assert "pen.json" in json.loads((tmp_path / "m" / "checksums.json").read_text())["files"]
    pipeline = load_pipeline(tmp_path / "m", "dpmpp", device="cpu")
    assert pipeline.style_conditioned and pipeline.pen == saved


def test_pipeline_stroke_changes_images_and_drawn_pens_are_seeded(tiny_style_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_style_model_dir, "dpmpp", device="cpu")
    run = lambda **kw: pipe(labels=[0, 1], num_inference_steps=2, guidance_scale=2.0,  # noqa: E731
                            generator=image_generators(0, 0, 2), **kw)
    assert np.array_equal(run(), run())  # drawn pens come from each image's generator
    assert np.array_equal(run(stroke=0.7), run(stroke=[0.7, 0.7]))
    assert not np.array_equal(run(stroke=0.7), run(stroke=1.7))
    with pytest.raises(DevagenError, match="--stroke 1.9 is outside"):
        run(stroke=1.9)
    with pytest.raises(ValueError, match="3 values for 2"):
        run(slant=[0.0, 1.0, 2.0])


def test_plain_model_refuses_pen_options(tiny_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_model_dir, "dpmpp", device="cpu")
    with pytest.raises(DevagenError, match="not style-conditioned"):
        pipe(labels=[0], num_inference_steps=1, stroke=1.0)
    with pytest.raises(DevagenError, match="not style-conditioned"):
        generate_text(pipe, "क", SampleConfig(steps=1), stroke=1.0)


def test_one_pen_per_word(tiny_style_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_style_model_dir, "dpmpp", device="cpu")
    slots = parse_text("कखग घङ  चछ")
    pens = word_pens(pipe, slots, seed=0)
    assert len(pens["stroke"]) == 7
    words = [(0, 3), (3, 5), (5, 7)]
    for lo, hi in words:
        assert len(set(pens["stroke"][lo:hi])) == 1 and len(set(pens["slant"][lo:hi])) == 1
    assert len({(pens["stroke"][lo], pens["slant"][lo]) for lo, _ in words}) > 1
    fixed = word_pens(pipe, slots, seed=0, stroke=1.2)
    assert set(fixed["stroke"]) == {1.2} and np.array_equal(fixed["slant"], pens["slant"])
    image = generate_text(pipe, "कख ग", SampleConfig(steps=1), stroke=0.8)
    assert image.size[0] > image.size[1]


def test_generate_cli_refuses_a_stroke_out_of_range_in_one_line(tiny_style_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.png"
    result = CliRunner().invoke(cli, ["generate", "--text", "क", "--stroke", "3", "--out", str(out),
                                      "--model", str(tiny_style_model_dir), "--steps", "1",
                                      "--params", str(REPO / "params.yaml")])
    assert result.exit_code != 0 and not out.exists()
    assert "--stroke 3 is outside the range this model was trained on: 0.50 to 1.80" in result.output
    ok = CliRunner().invoke(cli, ["generate", "--class", "क", "-n", "2", "--stroke", "1.5", "--slant", "10",
                                  "--out", str(out), "--model", str(tiny_style_model_dir), "--steps", "1",
                                  "--params", str(REPO / "params.yaml")])
    assert ok.exit_code == 0, ok.output
    assert out.is_file()


LOAD = '''
import sys, torch
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
print("RESULT", type(pipe).__name__, type(pipe.unet).__name__, pipe.pen.stroke_range,
      pipe(labels=[0], num_inference_steps=1, stroke=1.0).shape)
'''


def test_diffusers_loads_a_style_conditioned_folder(tiny_style_model_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", LOAD, str(tiny_style_model_dir)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("RESULT ", 1)[1].split() == ["DevagenPipeline", "StyleUNet2DModel", "(0.5,", "1.8)",
                                                          "(1,", "16,", "16)"]
