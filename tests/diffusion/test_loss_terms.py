"""The focal pixel weighting and the adversarial term (devagen.diffusion.objective, devagen.diffusion.adversarial):
known weights, off means exactly the plain loss, finite losses that move weights, and a critic that survives resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig

from devagen.core.shape import ModelConfig
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict
from devagen.diffusion.adversarial import Adversary, Critic, critic_hinge_loss
from devagen.diffusion.objective import diffusion_loss, focal_weights
from devagen.diffusion.unet import build_noise_scheduler, build_unet
from devagen.training.checkpoints import list_checkpoints
from devagen.training.loop import train_diffusion

pytestmark = pytest.mark.usefixtures("cpu_one_thread")

TINY = ModelConfig(preset="tiny", conditional=True)
RNG = np.random.default_rng(0)
IMAGES, LABELS = RNG.integers(0, 256, (16, 16, 16), dtype=np.uint8), RNG.integers(0, 46, 16)


class _Stop(Exception):
    """Raised from log_fn to cut a run."""


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(4, 1, 16, 16, generator=g) * 2 - 1, torch.randint(0, 46, (4,), generator=g)


def _loss_and_grads(cfg: DiffusionConfig, adversary: Adversary | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one seeded batch on a seeded tiny UNet, and its gradient, flattened."""
    torch.manual_seed(0)
    unet = build_unet(TINY, 16)
    x0, labels = _batch()
    loss = diffusion_loss(unet, build_noise_scheduler(cfg), x0, labels, cfg, 0.1, torch.Generator().manual_seed(1),
                          adversary=adversary)
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in unet.parameters() if p.grad is not None])


def test_focal_weights_at_known_errors() -> None:
    error = torch.tensor([1.0, -3.0]).view(1, 1, 1, 2)
    assert focal_weights(error, 1.0).flatten().tolist() == pytest.approx([0.5, 1.5])  # |e| / mean |e|
    assert focal_weights(error, 2.0).flatten().tolist() == pytest.approx([0.2, 1.8])  # (0.25, 2.25) / 1.25
    two = torch.randn(3, 4, 8, 8, requires_grad=True)
    w = focal_weights(two, 1.5)
    assert not w.requires_grad and torch.allclose(w.mean(dim=(1, 2, 3)), torch.ones(3))  # detached, mean 1 per image
    assert torch.equal(focal_weights(two, 0.0), torch.ones_like(two))


def test_focal_gamma_zero_is_exactly_the_plain_loss_and_gamma_changes_the_gradient() -> None:
    plain, plain_grad = _loss_and_grads(DiffusionConfig())
    zero, zero_grad = _loss_and_grads(DiffusionConfig(focal_gamma=0.0))
    assert torch.equal(plain, zero) and torch.equal(plain_grad, zero_grad)
    focal, focal_grad = _loss_and_grads(DiffusionConfig(focal_gamma=2.0))
    assert torch.isfinite(focal) and torch.isfinite(focal_grad).all()
    assert not torch.allclose(focal_grad, plain_grad)  # the hard pixels pull harder


def test_adversarial_weight_zero_is_exactly_the_plain_loss() -> None:
    plain, plain_grad = _loss_and_grads(DiffusionConfig())
    adversary = Adversary(1, 1, 1e-3, torch.device("cpu"), 0)
    off, off_grad = _loss_and_grads(DiffusionConfig(adversarial_weight=0.0), adversary)
    assert torch.equal(plain, off) and torch.equal(plain_grad, off_grad) and adversary.fake is None


def test_adversarial_term_is_finite_moves_the_unet_and_the_critic_learns() -> None:
    plain, plain_grad = _loss_and_grads(DiffusionConfig())
    adversary = Adversary(1, 1, 1e-3, torch.device("cpu"), 0)
    loss, grad = _loss_and_grads(DiffusionConfig(adversarial_weight=0.5), adversary)
    assert torch.isfinite(loss) and loss != plain and not torch.allclose(grad, plain_grad)
    assert adversary.fake is not None and not adversary.fake.requires_grad
    before = [p.detach().clone() for p in adversary.critic.parameters()]
    real, _ = _batch(seed=3)
    critic_loss = adversary.step(real)
    assert torch.isfinite(critic_loss) and adversary.fake is None
    assert any(not torch.equal(a, b) for a, b in zip(before, adversary.critic.parameters()))
    with pytest.raises(RuntimeError, match="before generator_loss"):
        adversary.step(real)
    with pytest.raises(ValueError, match="needs the adversary"):
        _loss_and_grads(DiffusionConfig(adversarial_weight=0.5), None)


def test_critic_learns_to_tell_blur_from_sharp_and_reads_patches_as_pixels() -> None:
    torch.manual_seed(0)
    sharp = (torch.rand(16, 1, 16, 16) > 0.7).float() * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, 1, 1)
    critic = Critic(1)
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-3, betas=(0.5, 0.9))
    first = float(critic_hinge_loss(critic, sharp, blurred).detach())
    for _ in range(60):
        optimizer.zero_grad()
        critic_hinge_loss(critic, sharp, blurred).backward()
        optimizer.step()
    assert float(critic_hinge_loss(critic, sharp, blurred).detach()) < 0.5 * first
    patched = Critic(1, patch=2)
    patched.load_state_dict(critic.state_dict())
    assert torch.allclose(patched(torch.nn.functional.pixel_unshuffle(sharp, 2)), critic(sharp))


def test_the_critic_has_its_own_seed_and_leaves_the_global_random_stream_alone() -> None:
    state = torch.get_rng_state()
    a, b = (Adversary(4, 2, 1e-3, torch.device("cpu"), 7) for _ in range(2))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.critic.state_dict().values(), b.critic.state_dict().values()))


@pytest.mark.parametrize("key, value", [("focal_gamma", -1), ("adversarial_weight", -0.1),
                                        ("critic_lr", 0)])
def test_bad_loss_settings_are_refused_at_load(key: str, value: float) -> None:
    with pytest.raises(DevagenError, match=f"params.yaml: diffusion.{key}: "):
        params_from_dict({"diffusion": {key: value}})


def _train(root: Path, diffusion_cfg: DiffusionConfig, **kwargs) -> dict:
    cfg = TrainConfig(batch_size=4, max_steps=6, warmup_steps=2, checkpoint_every=2, log_every=1, ema_decay=0.9)
    return train_diffusion(cfg, ModelConfig(preset="tiny_patch"), diffusion_cfg, AugmentConfig(), IMAGES, LABELS,
                           root / "out", root / "ck", progress=False, **kwargs)


def test_adversarial_training_resumes_to_the_same_weights_with_the_critic_in_the_checkpoint(tmp_path: Path) -> None:
    diffusion_cfg = DiffusionConfig(adversarial_weight=0.5, focal_gamma=1.0, critic_lr=1e-2)
    whole = _train(tmp_path / "whole", diffusion_cfg)
    assert np.isfinite(whole["final_loss"])

    def crash(stats: dict, step: int) -> None:
        if step == 3:
            raise _Stop

    with pytest.raises(_Stop):
        _train(tmp_path / "cut", diffusion_cfg, log_fn=crash)
    (step, path, _), = list_checkpoints(tmp_path / "cut" / "ck")
    state = torch.load(path / "custom_checkpoint_1.pkl", weights_only=False)  # 0 is the EMA
    assert step == 2 and set(state) == {"critic", "optimizer"} and state["optimizer"]["state"]
    assert _train(tmp_path / "cut", diffusion_cfg)["resumed_from_step"] == 2
    for sub in ("unet", "unet_raw"):
        name = "diffusion_pytorch_model.safetensors"
        a, b = load_file(tmp_path / "whole/out" / sub / name), load_file(tmp_path / "cut/out" / sub / name)
        assert all(torch.equal(a[k], b[k]) for k in a), sub  # a critic restarted fresh would steer differently
