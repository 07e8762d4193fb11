"""The training objective: targets, SNR weighting, noise, label dropout, the loss itself."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from devagen.core.config import DiffusionConfig
from devagen.core.errors import DevagenError

from devagen.core.shape import ModelConfig
from devagen.diffusion.objective import (
    diffusion_loss,
    draw_timesteps,
    drop_labels,
    loss_weights,
    sample_noise,
    snr,
    training_target,
)
from devagen.diffusion.patches import from_patches
from devagen.diffusion.unet import NULL_LABEL, build_noise_scheduler, build_unet

# alphas_cumprod 0.5, 0.8, 0.9999 give SNR 1, 4, 9999: small enough to check by hand
HAND = SimpleNamespace(alphas_cumprod=torch.tensor([0.5, 0.8, 0.9999]))
T_HAND = torch.tensor([0, 1, 2])


def _scheduler(prediction_type: str = "epsilon", schedule: str = "linear"):
    return build_noise_scheduler(DiffusionConfig(beta_schedule=schedule, prediction_type=prediction_type))


def test_targets_eps_and_x0() -> None:
    x0, noise, t = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4), torch.tensor([3, 900])
    assert torch.equal(training_target(_scheduler("epsilon"), x0, noise, t), noise)
    assert torch.equal(training_target(_scheduler("sample"), x0, noise, t), x0)


def test_v_target_by_hand() -> None:
    scheduler = _scheduler("v_prediction", "cosine")
    x0 = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), -0.5)])
    noise = torch.stack([torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), 0.25)])
    t = torch.tensor([0, 700])
    v = training_target(scheduler, x0, noise, t)
    for i in range(2):
        ab = float(scheduler.alphas_cumprod[t[i]])
        expected = ab ** 0.5 * float(noise[i, 0, 0, 0]) - (1 - ab) ** 0.5 * float(x0[i, 0, 0, 0])
        assert torch.allclose(v[i], torch.full((1, 2, 2), expected), atol=1e-6)


def test_snr_by_hand_and_decreasing() -> None:
    assert torch.allclose(snr(HAND, T_HAND), torch.tensor([1.0, 4.0, 9999.0]), rtol=1e-3)
    ratio = snr(_scheduler(schedule="cosine"), torch.arange(1000))
    assert bool((ratio[1:] < ratio[:-1]).all()) and ratio[-1] > 0


@pytest.mark.parametrize("prediction_type,expected", [
    ("epsilon", [1.0, 1.0, 5 / 9999]),  # min(snr, 5) / snr
    ("v_prediction", [0.5, 0.8, 5 / 10000]),  # min(snr, 5) / (snr + 1)
    ("sample", [1.0, 4.0, 5.0]),  # min(snr, 5)
])
def test_min_snr_weights_by_hand(prediction_type: str, expected: list[float]) -> None:
    weights = loss_weights(HAND, T_HAND, prediction_type, min_snr_gamma=5.0)
    assert torch.allclose(weights, torch.tensor(expected), rtol=1e-3)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_min_snr_gamma_zero_means_no_weighting(prediction_type: str) -> None:
    assert torch.equal(loss_weights(HAND, T_HAND, prediction_type, 0.0), torch.ones(3))


def test_min_snr_is_one_weighting_in_x0_space() -> None:
    """eps-, v- and x0-MSE with their weights are the same loss for the same x0 error."""
    scheduler = _scheduler("epsilon", "cosine")
    t = torch.tensor([5, 300, 990])
    ratio = snr(scheduler, t)
    x0_mse = torch.tensor([0.3, 0.3, 0.3])
    eps_mse, v_mse = ratio * x0_mse, (ratio + 1) * x0_mse  # what the same x0 error costs in eps / v space
    w = {k: loss_weights(scheduler, t, k, 5.0) for k in ("epsilon", "v_prediction", "sample")}
    assert torch.allclose(w["epsilon"] * eps_mse, w["sample"] * x0_mse, rtol=1e-4)
    assert torch.allclose(w["v_prediction"] * v_mse, w["sample"] * x0_mse, rtol=1e-4)


def test_sample_noise_plain_and_offset() -> None:
    x0 = torch.zeros(512, 1, 8, 8)
    plain = sample_noise(x0, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(plain, torch.randn(x0.shape, generator=torch.Generator().manual_seed(1)))
    offset = sample_noise(x0, 1.0, torch.Generator().manual_seed(1))
    assert offset.shape == x0.shape and offset.dtype == x0.dtype
    shift = (offset - plain).amax(dim=(2, 3)) - (offset - plain).amin(dim=(2, 3))
    assert float(shift.abs().max()) < 1e-6  # the extra noise is constant within each image
    assert 0.85 < float((offset - plain)[:, 0, 0, 0].std()) < 1.15  # with std offset_noise


def test_offset_noise_of_a_patch_model_is_a_uniform_brightness_shift_of_the_image() -> None:
    x0 = torch.zeros(512, 4, 8, 8)  # 16x16 images as 2x2 patches: what the cpu_patch preset denoises
    plain = sample_noise(x0, 0.0, torch.Generator().manual_seed(1))
    extra = from_patches(sample_noise(x0, 0.5, torch.Generator().manual_seed(1)) - plain, 2)  # (512, 1, 16, 16)
    spread = extra.amax(dim=(1, 2, 3)) - extra.amin(dim=(1, 2, 3))
    assert float(spread.max()) < 1e-6  # one value over every pixel of each image, not a 2x2-periodic pattern
    assert 0.4 < float(extra[:, 0, 0, 0].std()) < 0.6  # with std offset_noise
    direction = torch.linspace(0, 1, 4 * 8 * 8).reshape(1, 4, 8, 8)  # a latent model's: follows the given direction
    shifted = sample_noise(x0, 0.5, torch.Generator().manual_seed(1), direction) - plain
    torch.testing.assert_close(shifted, extra[:, :1, :1, :1] * direction)


def test_drop_labels_rate_and_untouched() -> None:
    labels = torch.randint(0, NULL_LABEL, (100_000,), generator=torch.Generator().manual_seed(0))
    dropped = drop_labels(labels, 0.25, torch.Generator().manual_seed(1))
    null = dropped == NULL_LABEL
    assert abs(float(null.float().mean()) - 0.25) < 0.01
    assert torch.equal(dropped[~null], labels[~null])
    assert torch.equal(drop_labels(labels, 0.0), labels)


def test_seed_objective_is_plain_mse_on_noise() -> None:
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny", conditional=False), 16)
    cfg = DiffusionConfig(beta_schedule="linear", prediction_type="epsilon", min_snr_gamma=0.0, offset_noise=0.0)
    scheduler = build_noise_scheduler(cfg)
    x0 = torch.rand(4, 1, 16, 16) * 2 - 1
    loss = diffusion_loss(unet, scheduler, x0, None, cfg, 0.0, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws, in diffusion_loss's order: noise, then t
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (4,), generator=g)
    expected = F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
    assert torch.allclose(loss, expected, rtol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_one_step_finite_loss_moves_weights(prediction_type: str) -> None:
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny", conditional=True), 16)
    cfg = DiffusionConfig(prediction_type=prediction_type, min_snr_gamma=5.0, offset_noise=0.1)
    before = [p.detach().clone() for p in unet.parameters()]
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    loss = diffusion_loss(unet, build_noise_scheduler(cfg), torch.rand(4, 1, 16, 16) * 2 - 1,
                          torch.tensor([0, 5, 45, 3]), cfg, cond_drop_prob=0.5)
    loss.backward()
    optimizer.step()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert not torch.equal(unet.conv_out.weight, before[-2])  # conv_out starts at zero in diffusers
    assert sum(not torch.equal(a, b) for a, b in zip(before, unet.parameters())) > len(before) // 2


def test_weighted_timesteps_estimate_the_uniform_objective_with_less_variance() -> None:
    cfg = DiffusionConfig(timestep_sampling="weighted")
    scheduler = build_noise_scheduler(cfg)
    every = loss_weights(scheduler, torch.arange(1000), "v_prediction", 5.0)
    per_t = torch.linspace(2.0, 0.5, 1000)  # a stand-in per-timestep loss
    exact = float((every * per_t).mean())  # the uniform objective, summed over every t
    t, w = draw_timesteps(scheduler, cfg, 200_000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert torch.allclose(w, every.mean().expand(200_000))
    assert abs(float((w * per_t[t]).mean()) - exact) < 0.01 * exact
    u, wu = draw_timesteps(scheduler, DiffusionConfig(), 200_000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert float((w * per_t[t]).var()) < 0.5 * float((wu * per_t[u]).var())
    assert float((t < 100).float().mean()) < 0.5 * float((u < 100).float().mean())  # few draws where weights are ~0


def test_uniform_timesteps_are_the_plain_draw_and_logit_normal_favours_the_middle() -> None:
    scheduler = build_noise_scheduler(DiffusionConfig())
    t, w = draw_timesteps(scheduler, DiffusionConfig(), 64, torch.device("cpu"), torch.Generator().manual_seed(5))
    assert torch.equal(t, torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(5)))
    assert torch.equal(w, loss_weights(scheduler, t, "v_prediction", 5.0))
    cfg = DiffusionConfig(timestep_sampling="logit_normal")
    t, w = draw_timesteps(scheduler, cfg, 100_000, torch.device("cpu"), torch.Generator().manual_seed(0))
    middle = float(((t >= 250) & (t < 750)).float().mean())
    assert 0.6 < middle < 0.75 and int(t.min()) >= 0 and int(t.max()) <= 999  # uniform: 0.5; sigmoid(N(0,1)): ~0.68
    assert torch.equal(w, loss_weights(scheduler, t, "v_prediction", 5.0))


def test_unknown_timestep_sampling_names_the_key() -> None:
    with pytest.raises(DevagenError, match="params.yaml: diffusion.timestep_sampling: unknown 'lognormal'; choose"):
        DiffusionConfig(timestep_sampling="lognormal")


@pytest.mark.parametrize("sampling", ["uniform", "weighted", "logit_normal"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("gamma", [0.0, 5.0])
def test_every_timestep_sampling_trains_with_every_target_and_weighting(sampling: str, prediction_type: str,
                                                                        gamma: float) -> None:
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny", conditional=True), 16)
    cfg = DiffusionConfig(prediction_type=prediction_type, min_snr_gamma=gamma, timestep_sampling=sampling)
    loss = diffusion_loss(unet, build_noise_scheduler(cfg), torch.rand(4, 1, 16, 16) * 2 - 1,
                          torch.tensor([0, 5, 45, 3]), cfg, 0.1, torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and float(loss) > 0
    assert all(torch.isfinite(p.grad).all() for p in unet.parameters() if p.grad is not None)
