"""Self-conditioning (model.self_conditioning): the UNet's extra input channels, the training batch's share of
estimates, the loss through them, and the settings it refuses."""

from __future__ import annotations

import pytest
import torch

from devagen.core.config import DiffusionConfig
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict
from devagen.core.shape import ModelConfig
from devagen.diffusion.objective import diffusion_loss
from devagen.diffusion.self_condition import (
    SHARE,
    is_self_conditioned,
    training_estimate,
    with_estimate,
)
from devagen.diffusion.unet import build_noise_scheduler, build_unet
from devagen.diffusion.variance import learns_variance

pytestmark = pytest.mark.usefixtures("cpu_one_thread")


def test_a_self_conditioned_unet_reads_twice_the_channels_it_writes() -> None:
    for preset, channels in (("tiny", 1), ("tiny_patch", 4)):
        plain = build_unet(ModelConfig(preset=preset), 16)
        unet = build_unet(ModelConfig(preset=preset, self_conditioning=True), 16)
        assert (unet.config.in_channels, unet.config.out_channels) == (2 * channels, channels)
        assert is_self_conditioned(unet) and not is_self_conditioned(plain) and not learns_variance(unet)


def test_a_unet_wrapped_for_several_processes_is_read_through_the_wrapper() -> None:
    class Wrapper(torch.nn.Module):  # what DistributedDataParallel looks like from outside: .module, no .config
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

    for flag in (False, True):
        unet = build_unet(ModelConfig(preset="tiny", self_conditioning=flag), 16)
        assert is_self_conditioned(Wrapper(unet)) == flag and not hasattr(Wrapper(unet), "config")


def test_with_estimate_puts_zeros_or_the_estimate_after_x() -> None:
    x, estimate = torch.randn(2, 4, 8, 8), torch.rand(2, 4, 8, 8)
    assert torch.equal(with_estimate(x, None), torch.cat([x, torch.zeros_like(x)], dim=1))
    assert torch.equal(with_estimate(x, estimate)[:, 4:], estimate)


def test_training_estimate_is_a_seeded_coin_per_batch_clipped_and_without_gradient() -> None:
    noisy = torch.randn(4, 1, 4, 4)
    weight = torch.tensor(3.0, requires_grad=True)
    estimate_x0 = lambda x: weight * x  # noqa: E731  values far outside [-1, 1]: clipped
    drawn = [training_estimate(estimate_x0, noisy, torch.Generator().manual_seed(seed)) for seed in range(200)]
    filled = [bool(e.any()) for e in drawn]
    assert abs(sum(filled) / len(filled) - SHARE) < 0.1
    for seed, estimate in enumerate(drawn):
        again = training_estimate(estimate_x0, noisy, torch.Generator().manual_seed(seed))
        assert torch.equal(estimate, again) and not estimate.requires_grad
        expected = (3 * noisy).clamp(-1, 1) if filled[seed] else torch.zeros_like(noisy)
        assert torch.equal(estimate, expected)


def test_the_loss_trains_the_estimate_channels_through_a_second_pass() -> None:
    cfg = DiffusionConfig()
    g = torch.Generator().manual_seed(1)
    x0, labels = torch.rand(8, 1, 16, 16, generator=g) * 2 - 1, torch.randint(0, 46, (8,), generator=g)
    passes = {}
    for seed in range(6):
        torch.manual_seed(0)
        unet = build_unet(ModelConfig(preset="tiny", self_conditioning=True), 16)
        calls: list[torch.Tensor] = []
        unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].detach().clone()))
        loss = diffusion_loss(unet, build_noise_scheduler(cfg), x0, labels, cfg, 0.1, torch.Generator().manual_seed(seed))
        loss.backward()
        assert torch.isfinite(loss) and all(c.shape == (8, 2, 16, 16) for c in calls)
        passes[len(calls)] = (calls, unet.conv_in.weight.grad[:, 1:].abs().sum())
    assert set(passes) == {1, 2}  # some seeds draw a second pass, some do not
    (plain,), _ = passes[1]
    assert (plain[:, 1:] == 0).all()
    (draft, final), grad = passes[2]  # the no-grad estimate pass from zeros, then the trained pass reading it
    assert (draft[:, 1:] == 0).all() and (final[:, 1:] != 0).any() and torch.equal(draft[:, :1], final[:, :1])
    assert grad > 0  # the estimate channels learn


@pytest.mark.parametrize("other, match", [({"diffusion": {"learned_variance": True}}, "learned_variance"),
                                           ({"distill": {"enabled": True}}, "distill.enabled"),
                                           ({"vae": {"enabled": True}, "model": {"preset": "cpu_conv"}}, "vae.enabled")])
def test_settings_it_is_not_built_for_are_refused_at_load(other: dict, match: str) -> None:
    raw = {"model": {"self_conditioning": True}}
    for section, values in other.items():
        raw.setdefault(section, {}).update(values)
    with pytest.raises(DevagenError, match=f"params.yaml: model.self_conditioning: .*{match}"):
        params_from_dict(raw)
