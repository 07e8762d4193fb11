"""Sampling a self-conditioned model (model.self_conditioning): every sampler and guidance feeds each step the
clean image the step before implied, the first step zeros, and the folder loads as any other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixture import make_model_dir

from devagen.diffusion.guidance import predicted_x0
from devagen.diffusion.self_condition import denoised_channels, is_self_conditioned
from devagen.sampling.generate import image_generators
from devagen.sampling.pipeline import load_pipeline

pytestmark = pytest.mark.usefixtures("cpu_one_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("selfcond") / "diffusion", self_conditioning=True)


def _inputs(pipe) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    pipe.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    return seen


@pytest.mark.parametrize("sampler", ("ddpm", "ddim", "dpmpp", "sde-dpmpp"))
def test_each_step_reads_the_estimate_the_step_before_implied(model_dir: Path, sampler: str) -> None:
    pipe = load_pipeline(model_dir, sampler, device="cpu")
    assert is_self_conditioned(pipe.unet) and denoised_channels(pipe.unet) == 1
    seen = _inputs(pipe)
    outputs: list[torch.Tensor] = []
    pipe.unet.register_forward_hook(lambda module, args, out: outputs.append(out.sample.detach().clone()))
    images = pipe(labels=[0, 5], guidance_scale=2.0, num_inference_steps=3, generator=image_generators(0, 0, 2))
    assert images.shape == (2, 16, 16) and images.dtype == np.uint8
    assert len(seen) == 3 and all(x.shape == (4, 2, 16, 16) for x in seen)  # CFG: one batched pass of 2 x 2
    assert (seen[0][:, 1:] == 0).all()
    timesteps = pipe.scheduler.timesteps
    for i in (1, 2):
        good, worse = outputs[i - 1].chunk(2)
        guided = worse + 2.0 * (good - worse)
        x = pipe.scheduler.scale_model_input(seen[i - 1][:2, :1], timesteps[i - 1])
        expected = predicted_x0(pipe.scheduler, guided, x, timesteps[i - 1]).clamp(-1, 1)
        assert torch.allclose(seen[i][:2, 1:], expected, atol=1e-5)
        assert torch.equal(seen[i][:2, 1:], seen[i][2:, 1:])  # both CFG halves read the guided estimate


def test_the_estimate_channels_change_what_is_drawn(model_dir: Path) -> None:
    pipe = load_pipeline(model_dir, "dpmpp", device="cpu")
    draw = lambda: pipe(labels=[3], num_inference_steps=4, generator=image_generators(0, 0, 1), black_point=0)  # noqa: E731
    before = draw()
    with torch.no_grad():
        pipe.unet.conv_in.weight[:, 1:] *= 50.0
    first = _inputs(pipe)
    assert not np.array_equal(before, draw()) and (first[0][:, 1:] == 0).all()
