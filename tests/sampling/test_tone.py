"""The tone map: fitted from reference levels onto a target histogram, stored in the model folder, applied by the
pipeline, generate and diffusers alike; switched off, the black point applies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from devagen.core.config import SampleConfig
from devagen.core.errors import DevagenError
from devagen.data.prepared import grey_histogram
from devagen.sampling.folder import TONE_FILE, read_meta, read_tone, write_tone
from devagen.sampling.generate import TONE_STREAM, fit_tone, generate, image_generators
from devagen.sampling.pipeline import load_pipeline, to_pixels
from devagen.sampling.tone import ToneMap, fit_tone_map


def dhcd_like(n: int, seed: int, side: int = 16) -> np.ndarray:
    """uint8 (n, side, side) with a DHCD-like grey-level histogram: 60 % black, 11 % exactly 255, a faint 1-8 halo, the
    rest spread over the middle."""
    rng = np.random.default_rng(seed)
    levels = rng.choice(4, size=(n, side, side), p=[0.6, 0.11, 0.05, 0.24])
    mid = rng.integers(9, 255, size=levels.shape)
    faint = rng.integers(1, 9, size=levels.shape)
    return np.select([levels == 0, levels == 1, levels == 2], [0, 255, faint], mid).astype(np.uint8)


def test_the_map_moves_any_levels_onto_the_target_histogram() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(60, 80, size=(400, 8, 8))  # the network's levels: continuous, past both ends
    target = grey_histogram(dhcd_like(400, seed=1))
    fresh = torch.as_tensor(rng.normal(60, 80, size=(400, 8, 8)))  # other draws of the same network
    exact = grey_histogram(fit_tone_map(reference, target, smoothing=0).apply(fresh).numpy())
    assert np.abs(exact - target).max() < 0.004 and abs(exact[1:9].sum() - target[1:9].sum()) < 0.003
    smoothed = grey_histogram(fit_tone_map(reference, target).apply(fresh).numpy())
    assert np.abs(smoothed - target).max() < 0.01  # smoothing blurs this target's sharp step from halo to middle
    assert abs(smoothed[0] - target[0]) < 0.005 and abs(smoothed[255] - target[255]) < 0.005  # the ends stay exact


def test_the_map_is_monotone_and_per_pixel() -> None:
    tone = fit_tone_map(np.random.default_rng(2).uniform(0, 255, size=(50, 8, 8)), grey_histogram(dhcd_like(50, 3)))
    levels = torch.linspace(-300, 600, 2001)
    out = tone.apply(levels)
    assert (out.int().diff() >= 0).all() and out[0] == 0 and out[-1] == 255
    batch = torch.as_tensor(np.random.default_rng(4).uniform(0, 255, size=(3, 8, 8)))
    assert torch.equal(tone.apply(batch)[1], tone.apply(batch[1:2])[0])  # no image changes another's pixels


def test_a_tone_map_checks_its_thresholds_and_round_trips_through_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="255 finite non-decreasing"):
        ToneMap(tuple(range(254)))
    with pytest.raises(ValueError, match="non-decreasing"):
        ToneMap(tuple(float(255 - t) for t in range(255)))
    tone = ToneMap(tuple(float(t) for t in range(255)), {"images": 4})
    assert ToneMap.from_json(json.loads(json.dumps(tone.to_json()))) == tone
    write_tone(tmp_path, tone)
    assert read_tone(tmp_path) == tone
    write_tone(tmp_path, None)
    assert json.loads((tmp_path / TONE_FILE).read_text()) == {"tone": None} and read_tone(tmp_path) is None
    assert read_tone(tmp_path / "elsewhere") is None  # a folder the sample stage has not tone-mapped
    (tmp_path / TONE_FILE).write_text('{"tone": {"thresholds": [1, 2]}}')
    with pytest.raises(DevagenError, match=r"tone\.json: damaged or unreadable .*dvc repro -f -s sample"):
        read_tone(tmp_path)


@pytest.fixture()
def toned_dir(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny conditional model with a tone map fitted on its own levels onto a DHCD-like histogram."""
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "diffusion"))
    pipe = load_pipeline(folder, device="cpu")
    cfg = SampleConfig(steps=2, batch_size=8, tone_reference=8)
    write_tone(folder, fit_tone(pipe, read_meta(folder), cfg, dhcd_like(40, seed=5)))
    return folder


def test_pipeline_and_generate_apply_the_folders_tone_map(toned_dir: Path) -> None:
    pipe = load_pipeline(toned_dir, device="cpu")
    assert pipe.tone == read_tone(toned_dir) and pipe.tone.fitted_with["images"] == 8
    run = lambda **kw: pipe(labels=[0, 1], num_inference_steps=2, generator=image_generators(0, 0, 2), **kw)  # noqa: E731
    levels, toned, plain = run(output_type="levels"), run(), run(tone_map=False)
    assert levels.dtype == np.float32 and np.array_equal(toned, pipe.tone.apply(torch.as_tensor(levels)).numpy())
    assert np.array_equal(plain, to_pixels(torch.as_tensor(levels).unsqueeze(1) / 127.5 - 1, 8).numpy())
    assert not np.array_equal(toned, plain)
    cfg = SampleConfig(steps=2, batch_size=2, guidance_scale=1.0)
    assert np.array_equal(generate(pipe, np.array([0, 1]), 2, cfg, progress=False), toned)
    off = SampleConfig(steps=2, batch_size=2, guidance_scale=1.0, tone_map=False)
    assert np.array_equal(generate(pipe, np.array([0, 1]), 2, off, progress=False), plain)


def test_the_fit_is_deterministic_and_draws_apart_from_the_samples(tiny_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_model_dir, device="cpu")
    cfg = SampleConfig(steps=2, batch_size=8, tone_reference=6)
    real = dhcd_like(40, seed=6)
    first, again = (fit_tone(pipe, read_meta(tiny_model_dir), cfg, real) for _ in range(2))
    assert first == again and first.fitted_with["sampler"] == cfg.sampler
    shown = generate(pipe, np.arange(6), 6, cfg, progress=False, output_type="levels")
    reference = generate(pipe, np.arange(6), 6, cfg, progress=False, start=TONE_STREAM, output_type="levels")
    assert not np.allclose(shown, reference)  # the reference never repeats a sample's noise
    assert first == fit_tone_map(reference, grey_histogram(real), first.fitted_with)


def test_tone_settings_are_checked() -> None:
    with pytest.raises(DevagenError, match="sample.tone_reference"):
        SampleConfig(tone_reference=0)
