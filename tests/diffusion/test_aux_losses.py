"""Auxiliary losses on the clean-image estimate: SSIM and the judge-feature distance (devagen.diffusion.aux_losses),
and how the diffusion objective and the training loop use them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_style import bar

from devagen.core.config import AugmentConfig, DiffusionConfig, OcrConfig, TrainConfig
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict
from devagen.core.shape import ModelConfig
from devagen.diffusion.aux_losses import (
    frozen,
    perceptual_distance,
    ssim,
    stage_features,
)
from devagen.diffusion.guidance import predicted_x0
from devagen.diffusion.objective import auxiliary_loss, diffusion_loss, training_target
from devagen.diffusion.patches import to_patches
from devagen.diffusion.unet import build_noise_scheduler, build_unet
from devagen.judges.ocr import build_judge
from devagen.training.loop import _judge_body, train_diffusion


def glyphs(n: int = 4) -> torch.Tensor:
    """(n, 1, 32, 32) bars of different widths and angles in [-1, 1]."""
    images = np.stack([bar(2 + i % 3, 30 * i) for i in range(n)])
    return torch.from_numpy(images).float()[:, None] / 127.5 - 1


def test_ssim_is_one_for_equal_images_and_drops_with_damage() -> None:
    x = glyphs()
    assert torch.allclose(ssim(x, x), torch.ones(4), atol=1e-5)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    near, far = torch.roll(x, 1, dims=-1), torch.roll(x, 3, dims=-1)
    assert (ssim(x, blurred) < 0.99).all() and (ssim(x, far) < ssim(x, near)).all() and (ssim(x, near) < 0.99).all()
    assert torch.allclose(ssim(x, far), ssim(far, x), atol=1e-6)


def test_stage_features_and_perceptual_distance_in_a_frozen_judge() -> None:
    torch.manual_seed(0)
    judge = frozen(build_judge(OcrConfig(width=4), 32))
    assert not any(p.requires_grad for p in judge.parameters()) and not judge.training
    shapes = [tuple(f.shape[1:]) for f in stage_features(judge.body, glyphs())]
    assert shapes == [(4, 32, 32), (8, 16, 16), (16, 8, 8)]  # the end of each resolution
    x = glyphs()
    assert torch.allclose(perceptual_distance(judge.body, x, x), torch.zeros(4), atol=1e-6)
    y = torch.roll(x, 4, dims=-2).requires_grad_(True)
    d = perceptual_distance(judge.body, y, x)
    assert (d > 0).all()
    d.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0  # gradients reach the image, not the judge


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_per_image_clean_estimate_inverts_the_training_target(prediction_type: str) -> None:
    scheduler = build_noise_scheduler(DiffusionConfig(prediction_type=prediction_type))
    x0, noise = glyphs(), torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 250, 600, 900])
    noisy = scheduler.add_noise(x0, noise, t)
    estimate = predicted_x0(scheduler, training_target(scheduler, x0, noise, t), noisy, t)
    assert torch.allclose(estimate, x0, atol=2e-3)


def test_weights_add_to_the_loss_and_zero_changes_nothing() -> None:
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny"), 32)
    judge = frozen(build_judge(OcrConfig(width=4), 32))
    x0, labels = glyphs(), torch.tensor([0, 1, 2, 3])
    loss = lambda cfg, body=None: diffusion_loss(unet, build_noise_scheduler(cfg), x0, labels, cfg, 0.0,  # noqa: E731
                                                 torch.Generator().manual_seed(1), judge_body=body)
    plain = loss(DiffusionConfig())
    assert torch.equal(plain, loss(DiffusionConfig(ssim_weight=0.0, perceptual_weight=0.0), judge.body))
    assert loss(DiffusionConfig(ssim_weight=1.0)) > plain
    assert loss(DiffusionConfig(perceptual_weight=1.0), judge.body) > plain
    with pytest.raises(ValueError, match="perceptual_weight"):
        loss(DiffusionConfig(perceptual_weight=1.0))


def test_a_patch_models_estimate_is_compared_as_the_pixels_it_packs() -> None:
    cfg = DiffusionConfig(ssim_weight=1.0, perceptual_weight=1.0)
    scheduler = build_noise_scheduler(cfg)
    judge = frozen(build_judge(OcrConfig(width=4), 32))
    x0 = glyphs()
    estimate = (x0 + 0.3 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    t = torch.tensor([10, 200, 500, 800])
    pixels = auxiliary_loss(scheduler, cfg, estimate, x0, t, judge.body)
    packed = auxiliary_loss(scheduler, cfg, to_patches(estimate, 2), to_patches(x0, 2), t, judge.body, patch=2)
    assert pixels > 0 and torch.allclose(pixels, packed, atol=1e-5)


def test_negative_weight_is_refused_naming_the_param() -> None:
    with pytest.raises(DevagenError, match="diffusion.ssim_weight"):
        params_from_dict({"diffusion": {"ssim_weight": -1}})
    assert not DiffusionConfig(ssim_weight=1.0).needs_judge and DiffusionConfig(perceptual_weight=0.1).needs_judge


def test_training_with_the_perceptual_loss_needs_a_judge_of_the_right_size(tmp_path: Path) -> None:
    images = np.stack([bar(2 + i % 3, 20 * i) for i in range(8)])
    labels = np.arange(8) % 4
    cfg = TrainConfig(batch_size=4, max_steps=2, warmup_steps=0, checkpoint_every=5, ema_decay=0.9)
    model_cfg = ModelConfig(preset="tiny", style_conditioning=False)
    diffusion_cfg = DiffusionConfig(perceptual_weight=0.5, ssim_weight=0.5)
    run = lambda judge, name: train_diffusion(cfg, model_cfg, diffusion_cfg, AugmentConfig(), images, labels,  # noqa: E731
                                              tmp_path / name, tmp_path / f"{name}-ckpt", progress=False, judge=judge)
    with pytest.raises(DevagenError, match=r"needs the OCR judge for 32x32 images \(or a side dividing it\), got none; "
                                           r"run `dvc repro train_ocr`"):
        run(None, "a")
    with pytest.raises(DevagenError, match="got one for 24x24 images"):
        run(build_judge(OcrConfig(width=4), 24), "b")
    judge = build_judge(OcrConfig(width=4), 32)
    before = {k: v.clone() for k, v in judge.state_dict().items()}
    result = run(judge, "c")
    assert result["steps"] == 2 and np.isfinite(result["final_loss"])
    assert all(torch.equal(v, judge.state_dict()[k]) for k, v in before.items())  # the caller's judge is untouched


def test_a_model_larger_than_the_judge_reads_its_estimates_area_averaged_to_the_judges_side(tmp_path: Path) -> None:
    judge = build_judge(OcrConfig(width=4), 16)
    body = _judge_body(judge, 32)
    assert isinstance(body[0], torch.nn.AvgPool2d) and not any(p.requires_grad for p in body.parameters())
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    small = torch.nn.functional.avg_pool2d(x, 2)
    assert torch.allclose(perceptual_distance(body, x, -x), perceptual_distance(frozen(judge).body, small, -small))
    assert not isinstance(_judge_body(judge, 16)[0], torch.nn.AvgPool2d)
    images = np.stack([np.kron(bar(2 + i % 3, 20 * i), np.ones((2, 2), np.uint8)) for i in range(8)])  # 64x64
    result = train_diffusion(TrainConfig(batch_size=4, max_steps=1, warmup_steps=0, checkpoint_every=5),
                             ModelConfig(preset="tiny", style_conditioning=False), DiffusionConfig(perceptual_weight=0.5),
                             AugmentConfig(), images, np.arange(8) % 4, tmp_path / "m", tmp_path / "c", progress=False,
                             judge=build_judge(OcrConfig(width=4), 32))
    assert np.isfinite(result["final_loss"])
