"""Sampling with sample.guidance: classifier: every sampler, conditional and unconditional models, the interval, and
records that say so only when it is on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from devagen.core.config import DiffusionConfig, NoisyClassifierConfig, SampleConfig
from devagen.core.errors import DevagenError
from devagen.diffusion.noisy_classifier import NoisyClassifier, save_classifier, schedule_of
from devagen.sampling.folder import read_meta
from devagen.sampling.generate import generate, sample_set
from devagen.sampling.pipeline import load_pipeline

pytestmark = pytest.mark.usefixtures("cpu_one_thread")
CFG = SampleConfig(steps=3, per_class=1, batch_size=64, guidance_scale=2.0, guidance="classifier",
                   classifier_scale=30.0, tone_map=False)
LABELS = np.array([0, 5, 9], dtype=np.int64)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight noisy classifier at the tiny fixtures' side (16) and schedule (the default cosine)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("classifier") / "noisy_classifier"
    save_classifier(NoisyClassifier(4, 16).eval(), folder, NoisyClassifierConfig(width=4),
                    schedule_of(DiffusionConfig()))
    return folder


@pytest.mark.parametrize("sampler", ("ddpm", "ddim", "dpmpp", "sde-dpmpp"))
def test_every_sampler_is_moved_by_the_classifier_inside_the_interval_only(tiny_model_dir: Path, classifier_dir: Path,
                                                                           sampler: str) -> None:
    pipeline = load_pipeline(tiny_model_dir, sampler, device="cpu", classifier=classifier_dir)
    plain = generate(pipeline, LABELS, 3, replace(CFG, guidance="cfg"), progress=False)
    guided = generate(pipeline, LABELS, 3, CFG, progress=False)
    assert guided.shape == (3, 16, 16) and guided.dtype == np.uint8
    assert not np.array_equal(guided, plain)
    assert np.array_equal(generate(pipeline, LABELS, 3, replace(CFG, classifier_scale=0.0), progress=False), plain)
    outside = replace(CFG, guidance_t_min=0, guidance_t_max=0)  # no sampled timestep: neither CFG nor classifier
    assert np.array_equal(generate(pipeline, LABELS, 3, outside, progress=False),
                          generate(pipeline, LABELS, 3, replace(outside, guidance="cfg"), progress=False))
    assert pipeline.passes_per_step(CFG.guidance_scale, CFG.guidance) == 2  # the classifier adds no UNet pass


def test_an_unconditional_model_draws_asked_classes_only_with_the_classifier(tiny_uncond_model_dir: Path,
                                                                             classifier_dir: Path) -> None:
    pipeline = load_pipeline(tiny_uncond_model_dir, "dpmpp", device="cpu", classifier=classifier_dir)
    guided = generate(pipeline, LABELS, 3, CFG, progress=False)
    assert guided.shape == (3, 16, 16) and pipeline.passes_per_step(CFG.guidance_scale, CFG.guidance) == 1
    unguided = generate(pipeline, None, 3, replace(CFG, guidance="cfg"), progress=False)
    assert not np.array_equal(guided, unguided)
    with pytest.raises(DevagenError, match="cannot be told which character.*sample.guidance: classifier"):
        generate(pipeline, LABELS, 3, replace(CFG, guidance="cfg"), progress=False)
    images, labels, stats = sample_set(pipeline, read_meta(tiny_uncond_model_dir), replace(CFG, per_class=1),
                                       progress=False)
    assert labels.tolist() == list(range(46)) and images.shape == (46, 16, 16)
    assert stats["classifier_scale"] == CFG.classifier_scale and stats["guidance"] == "classifier"
    assert stats["guidance_scale"] == 1.0 and stats["nfe"] == CFG.steps


def test_without_the_classifier_loaded_classifier_guidance_is_refused(tiny_model_dir: Path) -> None:
    pipeline = load_pipeline(tiny_model_dir, "dpmpp", device="cpu")
    with pytest.raises(DevagenError, match="sample.guidance: classifier: no noisy classifier"):
        generate(pipeline, LABELS, 3, CFG, progress=False)


def test_records_name_the_classifier_scale_only_when_it_guides(tiny_model_dir: Path) -> None:
    """The default (cfg) records stay as they were: the same keys, the same bytes."""
    pipeline = load_pipeline(tiny_model_dir, "dpmpp", device="cpu")
    cfg = replace(CFG, guidance="cfg", per_class=1, steps=1)
    _, _, stats = sample_set(pipeline, read_meta(tiny_model_dir), cfg, progress=False)
    assert "classifier_scale" not in stats and stats["guidance_scale"] == 2.0


def test_a_classifier_for_another_side_or_schedule_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    save_classifier(NoisyClassifier(4, 32), tmp_path / "wide", NoisyClassifierConfig(), schedule_of(DiffusionConfig()))
    with pytest.raises(DevagenError, match="reads 32x32 pixels, the model draws 16x16"):
        load_pipeline(tiny_model_dir, "dpmpp", device="cpu", classifier=tmp_path / "wide")
    save_classifier(NoisyClassifier(4, 16), tmp_path / "linear", NoisyClassifierConfig(),
                    schedule_of(DiffusionConfig(beta_schedule="linear")))
    with pytest.raises(DevagenError, match="another noise schedule"):
        load_pipeline(tiny_model_dir, "dpmpp", device="cpu", classifier=tmp_path / "linear")
