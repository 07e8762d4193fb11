"""Sampling a learned-variance model (diffusion.learned_variance): DDPM reads the variance half, the other samplers
only the prediction half, CFG guides the prediction half, and the folder loads with diffusers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, DiffusionPipeline
from model_fixture import make_model_dir

from devagen.core.config import DiffusionConfig
from devagen.core.errors import DevagenError
from devagen.diffusion.unet import NULL_LABEL, build_noise_scheduler
from devagen.diffusion.variance import LEARNED_RANGE
from devagen.sampling.generate import image_generators
from devagen.sampling.pipeline import DevagenPipeline, load_pipeline

pytestmark = pytest.mark.usefixtures("cpu_one_thread")
SAMPLERS = ("ddpm", "ddim", "dpmpp", "sde-dpmpp")


@pytest.fixture(scope="module")
def learned_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("learned") / "diffusion", learned_variance=True)


def _draw(pipe: DevagenPipeline, **options) -> np.ndarray:
    return pipe(labels=[0, 5], guidance_scale=2.0, num_inference_steps=3, generator=image_generators(0, 0, 2),
                black_point=0, **options)


def _louder(pipe: DevagenPipeline) -> DevagenPipeline:
    """The same pipeline with the variance half pushed to the top of its range (v ≈ +3 everywhere)."""
    with torch.no_grad():
        pipe.unet.conv_out.bias[1:] += 3.0
    return pipe


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_only_ddpm_reads_the_variance_half(learned_dir: Path, sampler: str) -> None:
    pipe = load_pipeline(learned_dir, sampler, device="cpu")
    ddpm = sampler == "ddpm"
    assert isinstance(pipe.scheduler, DDPMScheduler) == ddpm
    assert (getattr(pipe.scheduler.config, "variance_type", None) == LEARNED_RANGE) == ddpm
    before = _draw(pipe)
    assert before.shape == (2, 16, 16) and before.dtype == np.uint8
    after = _draw(_louder(pipe))
    assert (before != after).any() == ddpm


def test_cfg_guides_the_prediction_half_and_keeps_the_conditional_variance(learned_dir: Path) -> None:
    pipe = load_pipeline(learned_dir, "ddpm", device="cpu")
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    t, labels, g = torch.tensor(700), torch.tensor([0, 7, 40]), 3.0
    with torch.no_grad():
        cond = pipe.unet(x, t, class_labels=labels).sample
        uncond = pipe.unet(x, t, class_labels=torch.full_like(labels, NULL_LABEL)).sample
        guided = pipe.model_output(x, t, labels, guidance_scale=g)
        projected = pipe.model_output(x, t, labels, guidance_scale=g, parallel=0.5)
    assert guided.shape == (3, 2, 16, 16) and (cond[:, 1:] - uncond[:, 1:]).abs().max() > 1e-3
    torch.testing.assert_close(guided[:, :1], uncond[:, :1] + g * (cond[:, :1] - uncond[:, :1]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(guided[:, 1:], cond[:, 1:])
    torch.testing.assert_close(projected[:, 1:], cond[:, 1:])


def test_autoguidance_and_patches_sample_with_a_learned_variance(learned_dir: Path, tmp_path: Path) -> None:
    pipe = load_pipeline(learned_dir, "ddpm", device="cpu", with_guide=True)
    assert _draw(pipe, guidance="autoguidance").shape == (2, 16, 16)
    patched = make_model_dir(tmp_path / "patched", preset="tiny_patch", learned_variance=True)
    for sampler in SAMPLERS:
        pipe = load_pipeline(patched, sampler, device="cpu")
        assert pipe.unet.config.out_channels == 8 and _draw(pipe).shape == (2, 16, 16)


def test_diffusers_loads_the_folder_with_its_learned_range(learned_dir: Path, tmp_path: Path) -> None:
    """The folder's scheduler/ says learned_range, so diffusers' own DDPM step reads the variance half: DDPMPipeline
    for an unconditional model, DevagenPipeline (DiffusionPipeline with the folder's file) for a conditional one."""
    uncond = make_model_dir(tmp_path / "uncond", conditional=False, learned_variance=True)
    ddpm = DDPMPipeline.from_pretrained(uncond)
    assert ddpm.scheduler.config.variance_type == LEARNED_RANGE
    images = ddpm(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=3,
                  output_type="np").images
    assert images.shape == (2, 16, 16, 1) and np.isfinite(images).all()
    pipe = DiffusionPipeline.from_pretrained(learned_dir, trust_remote_code=True)
    assert isinstance(pipe, DevagenPipeline) and pipe.scheduler.config.variance_type == LEARNED_RANGE
    assert pipe(labels=[1, 2], guidance_scale=2.0, num_inference_steps=3).shape == (2, 16, 16)


def test_a_folder_whose_scheduler_and_unet_disagree_is_refused(learned_dir: Path, tmp_path: Path) -> None:
    broken = Path(shutil.copytree(learned_dir, tmp_path / "diffusion"))
    build_noise_scheduler(DiffusionConfig()).save_pretrained(broken / "scheduler")
    with pytest.raises(DevagenError, match="variance_type fixed_small but the UNet has variance half"):
        load_pipeline(broken)
