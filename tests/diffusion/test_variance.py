"""Learned variance (devagen.diffusion.variance): the doubled output, the variational bound term, the hybrid loss and
the refusals."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from devagen.core.config import DiffusionConfig
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict
from devagen.core.shape import ModelConfig
from devagen.diffusion.objective import diffusion_loss
from devagen.diffusion.patches import from_patches, to_patches
from devagen.diffusion.unet import build_noise_scheduler, build_unet
from devagen.diffusion.variance import (
    LEARNED_RANGE,
    _per_step,
    join_output,
    learns_variance,
    log_variance,
    mean_half,
    mean_only,
    split_output,
    vlb_term,
)

pytestmark = pytest.mark.usefixtures("cpu_one_thread")


@pytest.mark.parametrize("preset, channels, side, inputs", [
    ("tiny", 1, 16, 1),  # pixels
    ("cpu_patch", 1, 32, 4),  # 2x2 pixel patches: 4 channels, so 8 out
    ("tiny_patch", 4, 8, 16),  # patches of 4-channel latents
])
def test_the_output_doubles_and_each_half_unpacks_to_the_samples_shape(preset: str, channels: int, side: int,
                                                                      inputs: int) -> None:
    cfg = ModelConfig(preset=preset, conditional=False)
    plain, learned = build_unet(cfg, side, channels), build_unet(cfg, side, channels, learned_variance=True)
    assert plain.config.out_channels == inputs and not learns_variance(plain)
    assert learned.config.in_channels == inputs and learned.config.out_channels == 2 * inputs and learns_variance(learned)
    patch = 2 if "patch" in preset else 1
    images = torch.rand(2, channels, side, side) * 2 - 1
    with torch.no_grad():
        out = learned(to_patches(images, patch), torch.tensor([10, 500])).sample
    prediction, variance = split_output(out, inputs)
    assert prediction.shape == variance.shape == to_patches(images, patch).shape
    assert from_patches(prediction, patch).shape == from_patches(variance, patch).shape == images.shape
    assert torch.equal(join_output(prediction, variance), out)
    assert mean_half(prediction, inputs) is prediction and join_output(prediction, None) is prediction


def test_an_output_of_neither_width_is_refused() -> None:
    with pytest.raises(ValueError, match="3 channels"):
        split_output(torch.zeros(1, 3, 4, 4), 2)


def test_the_saved_scheduler_says_learned_range_only_when_learned() -> None:
    assert build_noise_scheduler(DiffusionConfig()).config.variance_type == "fixed_small"
    assert build_noise_scheduler(DiffusionConfig(learned_variance=True)).config.variance_type == LEARNED_RANGE
    sigmoid = build_noise_scheduler(DiffusionConfig(beta_schedule="sigmoid", learned_variance=True))
    assert sigmoid.config.variance_type == LEARNED_RANGE and sigmoid.config.trained_betas is not None


def test_the_log_variance_is_the_one_diffusers_ddpm_samples_with() -> None:
    """log_variance on the training grid equals DDPMScheduler(variance_type=learned_range)._get_variance."""
    scheduler = build_noise_scheduler(DiffusionConfig(learned_variance=True))
    scheduler.set_timesteps(1000)
    t = torch.tensor([1, 2, 50, 500, 998, 999])
    v = torch.linspace(-1, 1, len(t)).view(-1, 1, 1, 1)
    step = _per_step(scheduler, t)
    ours = log_variance(v, step["min_log"], step["max_log"]).flatten()
    theirs = torch.stack([scheduler._get_variance(int(k), predicted_variance=v[i].flatten()) for i, k in enumerate(t)])
    assert torch.allclose(ours, theirs.flatten().float(), rtol=1e-4, atol=1e-5)
    assert torch.all(step["min_log"] <= step["max_log"])  # β̃ <= β: v = -1 is the lower end


def _batch(prediction_type: str = "sample", seed: int = 0):
    scheduler = build_noise_scheduler(DiffusionConfig(prediction_type=prediction_type, learned_variance=True))
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 1, 10, 300, 700, 999])
    return scheduler, x0, scheduler.add_noise(x0, noise, t), t, g


@pytest.mark.parametrize("prediction_type", ("epsilon", "v_prediction", "sample"))
def test_the_bound_is_finite_positive_and_gives_the_prediction_no_gradient(prediction_type: str) -> None:
    scheduler, x0, noisy, t, g = _batch(prediction_type)
    prediction = torch.randn(x0.shape, generator=g).requires_grad_(True)
    variance = torch.randn(x0.shape, generator=g).requires_grad_(True)
    bound = vlb_term(scheduler, prediction, variance, noisy, x0, t)
    assert bound.shape == (6,) and torch.isfinite(bound).all() and (bound > 0).all()
    bound.sum().backward()
    assert prediction.grad is None  # the mean's gradient is stopped: L_vlb trains only the variance
    assert variance.grad is not None and variance.grad.abs().sum() > 0


def test_the_bound_is_zero_when_the_model_is_the_posterior() -> None:
    """An exact clean image (x0 prediction) and v = -1 (log variance log β̃_t) is q itself: KL 0 at every t."""
    scheduler, x0, noisy, t, _ = _batch("sample")
    bound = vlb_term(scheduler, x0, -torch.ones_like(x0), noisy, x0, t)
    assert torch.allclose(bound, torch.zeros(6), atol=1e-5)
    worse = vlb_term(scheduler, x0, torch.ones_like(x0), noisy, x0, t)
    assert (worse[1:3] > 1e-3).all()  # the other end of the range is another Gaussian where β̃_t and β_t differ
    assert (worse >= 0).all()  # (small t; they meet as t grows)


def _loss_grads(vlb_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny", conditional=True), 16, learned_variance=True)
    cfg = DiffusionConfig(learned_variance=True, vlb_weight=vlb_weight)
    x0 = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    loss = diffusion_loss(unet, build_noise_scheduler(cfg), x0, torch.tensor([0, 1, 2, 3]), cfg, 0.1,
                          torch.Generator().manual_seed(2))
    loss.backward()
    weight = unet.conv_out.weight.grad
    return loss.detach(), weight[:1].clone(), weight[1:].clone()


def test_the_hybrid_loss_trains_the_variance_half_by_the_bound_alone() -> None:
    """The prediction half's gradient is the MSE's whatever vlb_weight is; the variance half's grows with it."""
    loss_small, mean_small, var_small = _loss_grads(1e-3)
    loss_big, mean_big, var_big = _loss_grads(1.0)
    assert torch.isfinite(loss_small) and loss_big > loss_small
    assert torch.allclose(mean_small, mean_big, atol=1e-6)
    assert var_small.abs().sum() > 0
    assert torch.allclose(var_big, 1000 * var_small, rtol=1e-3, atol=1e-7)


def test_the_default_is_unchanged() -> None:
    """learned_variance false: one output half, and the saved scheduler config is the one saved before."""
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny"), 16)
    cfg = DiffusionConfig()
    x0 = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    loss = diffusion_loss(unet, build_noise_scheduler(cfg), x0, torch.tensor([0, 1, 2, 3]), cfg, 0.1,
                          torch.Generator().manual_seed(2))
    assert torch.isfinite(loss) and unet.config.out_channels == 1
    before = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                           clip_sample=False)  # what build_noise_scheduler built before learned variance
    assert dict(build_noise_scheduler(cfg).config) == dict(before.config)


def test_a_mean_only_copy_outputs_the_prediction_half() -> None:
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny_patch", conditional=True, style_conditioning=True), 16,
                      learned_variance=True).eval()
    student = mean_only(unet)
    assert student.config.out_channels == 4 and type(student) is type(unet) and not learns_variance(student)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([5, 900])
    cond = torch.tensor([[3, 0.1, -0.2, 1], [46, 0, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(student(x, t, class_labels=cond).sample, unet(x, t, class_labels=cond).sample[:, :4],
                              atol=1e-6)
    plain = build_unet(ModelConfig(preset="tiny"), 16)
    assert mean_only(plain) is not plain and mean_only(plain).config.out_channels == 1


@pytest.mark.parametrize("settings, key", [
    ({"diffusion": {"learned_variance": True, "vlb_weight": 0}}, "diffusion.vlb_weight"),
    ({"diffusion": {"vlb_weight": -0.1}}, "diffusion.vlb_weight"),
])
def test_bad_settings_are_refused_in_one_line(settings: dict, key: str) -> None:
    with pytest.raises(DevagenError, match=key) as caught:
        params_from_dict(settings)
    assert "\n" not in str(caught.value)


def test_learned_variance_is_accepted_with_patches_latents_and_distillation() -> None:
    """It works with all of them (the students drop the variance half), so none is refused."""
    for extra in ({"model": {"preset": "cpu_patch"}}, {"model": {"preset": "tiny"}, "vae": {"enabled": True}},
                  {"distill": {"enabled": True}}):
        params = params_from_dict({"diffusion": {"learned_variance": True}, **extra})
        assert params.diffusion.learned_variance and params.diffusion.vlb_weight == 0.001
