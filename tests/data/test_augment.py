"""Augmentation: shapes and ranges kept, reproducible, no flips, each transform moves ink as it should."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devagen.core.config import AugmentConfig
from devagen.data.augment import (
    _dilate,
    _Draw,
    _draw,
    _stroke,
    _warp,
    augment_batch,
    augment_preview,
)

OFF = AugmentConfig(rotate_p=0, scale_p=0, translate_p=0, stroke_p=0, elastic_p=0, color_p=0)
ALL_ON = replace(AugmentConfig(), rotate_p=1, scale_p=1, translate_p=1, stroke_p=1, elastic_p=1, color_p=1)


def glyph(batch: int = 1, size: int = 32) -> torch.Tensor:
    """(B, 1, S, S) in [-1, 1]: an 'F'-like shape with most ink left of centre, soft edges."""
    u = torch.zeros(size, size)
    u[6:26, 8:12] = 1.0  # stem on the left
    u[6:9, 8:24] = 1.0  # top bar to the right
    u[14:17, 8:18] = 1.0  # middle bar
    u = F.avg_pool2d(u[None, None], 3, 1, 1)  # anti-aliased edges like the scans
    return (u * 2 - 1).repeat(batch, 1, 1, 1)


def ink(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) in [-1, 1] → (B, H, W) ink in [0, 1]."""
    return ((x + 1) / 2)[:, 0]


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) → (B, 2) ink-weighted (x, y) in pixels."""
    u = ink(x)
    rows, cols = torch.meshgrid(torch.arange(u.shape[1]).float(), torch.arange(u.shape[2]).float(), indexing="ij")
    mass = u.sum((1, 2))
    return torch.stack([(u * cols).sum((1, 2)) / mass, (u * rows).sum((1, 2)) / mass], 1)


def left_fraction(x: torch.Tensor) -> torch.Tensor:
    """(B,) share of the ink left of the vertical centre line."""
    u = ink(x)
    return u[:, :, : u.shape[2] // 2].sum((1, 2)) / u.sum((1, 2))


def identity_draw(b: int, **changes) -> _Draw:
    """Per-image strengths that leave images alone, with `changes` applied."""
    base = _Draw(angle=torch.zeros(b), zoom=torch.ones(b), shift=torch.zeros(b, 2), field=None,
                 moved=torch.ones(b, dtype=torch.bool), stroke=torch.zeros(b), gain=torch.ones(b), gamma=torch.ones(b))
    return base._replace(**changes)


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`."""
    return torch.Generator().manual_seed(seed)


def test_shape_dtype_range_kept_with_every_transform_at_full_strength():
    strong = replace(ALL_ON, rotate_deg=30, scale=0.3, translate=0.3, elastic_alpha=3, brightness=0.5, contrast=0.5)
    x = torch.rand(16, 1, 32, 32) * 2 - 1
    for generator in (None, seeded(0)):
        y = augment_batch(x, strong, generator)
        assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
        assert torch.isfinite(y).all() and y.min() >= -1 and y.max() <= 1
        assert not torch.allclose(y, x)


@pytest.mark.parametrize("cfg", [replace(ALL_ON, enabled=False), OFF], ids=["disabled", "all_p_zero"])
def test_off_returns_input_unchanged(cfg):
    x = glyph(4)
    assert torch.equal(augment_batch(x, cfg, seeded(0)), x)


def test_same_seed_same_output_different_seed_different():
    x = glyph(8)
    a, b, c = (augment_batch(x, ALL_ON, seeded(s)) for s in (1, 1, 2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_with_cuda_tensor_matches_cpu_result():
    x = glyph(8)
    on_gpu = augment_batch(x.cuda(), ALL_ON, seeded(3))
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), augment_batch(x, ALL_ON, seeded(3)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("shift,expected", [((0.1, 0.0), (3.2, 0.0)), ((0.0, -0.125), (0.0, -4.0))])
def test_known_shift_moves_centre_of_mass_by_that_many_pixels(shift, expected):
    x = glyph(1)
    moved = _warp(ink(x)[:, None], identity_draw(1, shift=torch.tensor([shift]))) * 2 - 1
    delta = centre_of_mass(moved) - centre_of_mass(x)
    torch.testing.assert_close(delta, torch.tensor([expected]), atol=0.15, rtol=0)


def test_background_revealed_by_a_shift_is_black():
    white = torch.ones(1, 1, 32, 32)
    moved = _warp(white, identity_draw(1, shift=torch.tensor([[0.25, 0.0]]))) * 2 - 1  # 8 px right
    torch.testing.assert_close(moved[..., :7], -torch.ones(1, 1, 32, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(moved[..., 9:], torch.ones(1, 1, 32, 23), atol=1e-5, rtol=0)


def test_random_translation_stays_within_configured_range_and_keeps_ink():
    cfg = replace(OFF, translate=0.1, translate_p=1)
    x = glyph(32)
    y = augment_batch(x, cfg, seeded(0))
    delta = (centre_of_mass(y) - centre_of_mass(x)).abs()
    assert delta.max() <= 0.1 * 32 + 0.2
    assert delta.max() > 1.0  # it did move some images
    torch.testing.assert_close(ink(y).sum((1, 2)), ink(x).sum((1, 2)), rtol=0.02, atol=0)


def test_small_rotations_never_mirror_the_glyph():
    x = glyph(32)
    before = left_fraction(x)[0].item()
    assert before > 0.7  # the test glyph is clearly left-heavy; a flip would make it < 0.3
    y = augment_batch(x, replace(OFF, rotate_deg=8, rotate_p=1), seeded(0))
    assert (left_fraction(y) - before).abs().max() < 0.08
    assert not torch.allclose(y, x)


def test_every_transform_together_keeps_the_glyph_left_heavy():
    y = augment_batch(glyph(64), ALL_ON, seeded(0))
    assert left_fraction(y).min() > 0.55


def test_dilate_matches_max_pool_and_erosion_matches_min_pool():
    u = torch.rand(4, 1, 16, 16)
    torch.testing.assert_close(_dilate(u), F.max_pool2d(u, 3, 1, 1), atol=0, rtol=0)
    eroded = _stroke(u, -torch.ones(4))
    torch.testing.assert_close(eroded, -F.max_pool2d(-u, 3, 1, 1), atol=1e-6, rtol=0)


def test_dilation_adds_ink_erosion_removes_it_zero_keeps_it():
    u = ink(glyph(3))[:, None]
    out = _stroke(u, torch.tensor([1.0, -1.0, 0.0]))
    mass, base = out.sum((1, 2, 3)), u[0].sum()
    assert mass[0] > 1.3 * base and mass[1] < 0.7 * base
    assert torch.equal(out[2], u[2])


def test_random_stroke_width_goes_both_ways():
    x = glyph(32)
    y = augment_batch(x, replace(OFF, stroke_p=1), seeded(0))
    change = ink(y).sum((1, 2)) / ink(x).sum((1, 2))
    assert (change > 1.05).any() and (change < 0.95).any()


def test_identity_geometry_and_zero_alpha_elastic_is_identity():
    cfg = replace(OFF, rotate_deg=0, rotate_p=1, scale=0, scale_p=1, translate=0, translate_p=1,
                  elastic_alpha=0, elastic_p=1)
    x = glyph(4)
    torch.testing.assert_close(augment_batch(x, cfg, seeded(0)), x, atol=1e-5, rtol=0)


def test_elastic_warp_is_small_and_smooth():
    cfg = replace(OFF, elastic_alpha=1.5, elastic_p=1)
    x = glyph(16)
    y = augment_batch(x, cfg, seeded(0))
    assert (y - x).abs().amax((1, 2, 3)).min() > 0.1  # every image was warped
    assert (centre_of_mass(y) - centre_of_mass(x)).abs().max() < 1.5
    field = _draw(16, 32, 32, cfg, torch.device("cpu"), seeded(0)).field  # (B, H, W, 2) pixels
    assert field.abs().max() <= 1.5
    steepest = max((field[:, 1:] - field[:, :-1]).abs().max(), (field[:, :, 1:] - field[:, :, :-1]).abs().max())
    assert steepest < 0.6  # neighbours move together: a smooth warp, not pixel noise


def test_color_changes_ink_but_keeps_background_black():
    x = glyph(16)
    y = augment_batch(x, replace(OFF, brightness=0.3, contrast=0.3, color_p=1), seeded(0))
    background = x == -1
    assert torch.equal(y[background], x[background])
    assert (y - x).abs().amax((1, 2, 3)).min() > 0.01
    assert y.min() >= -1 and y.max() <= 1


def test_preview_shape_dtype_and_seed():
    images = ((ink(glyph(3))) * 255).round().to(torch.uint8).numpy()
    a = augment_preview(images, ALL_ON, copies=5, seed=7)
    assert a.shape == (3, 5, 32, 32) and a.dtype == np.uint8
    assert np.array_equal(a, augment_preview(images, ALL_ON, copies=5, seed=7))
    assert not np.array_equal(a, augment_preview(images, ALL_ON, copies=5, seed=8))
    off = augment_preview(images, OFF, copies=2, seed=7)
    assert np.array_equal(off, np.repeat(images[:, None], 2, axis=1))


def test_noise_injection_adds_gaussian_ink_noise_to_a_share_of_images():
    x = torch.zeros(400, 1, 16, 16)  # mid-grey ink (u = 0.5): no clamping for a small std
    y = augment_batch(x, replace(OFF, noise_std=0.05, noise_p=0.5), seeded(0))
    moved = (y != x).flatten(1).any(1)
    assert 0.4 < moved.float().mean() < 0.6  # noise_p of the images
    residual = ((y - x) / 2)[moved]  # back to ink units
    assert abs(float(residual.std()) - 0.05) < 0.002 and abs(float(residual.mean())) < 0.002
    assert torch.equal(y[~moved], x[~moved])
    black = augment_batch(torch.full((4, 1, 16, 16), -1.0), replace(OFF, noise_std=0.5, noise_p=1), seeded(0))
    assert black.min() >= -1 and black.max() <= 1 and black.max() > -1  # clamped to the pixel range


def test_noise_off_by_default_and_drawn_after_every_other_transform():
    assert AugmentConfig().noise_std == 0
    x = torch.rand(16, 1, 32, 32, generator=seeded(9)) - 0.5  # texture: another warp would differ everywhere
    plain = augment_batch(x, ALL_ON, seeded(4))
    noisy = augment_batch(x, replace(ALL_ON, noise_std=0.02, noise_p=1), seeded(4))
    inside = (plain.abs() < 0.8) & (noisy.abs() < 1)  # away from the clamp
    residual = ((noisy - plain) / 2)[inside]  # ink units: only the noise, so the other draws were kept
    assert inside.float().mean() > 0.3 and abs(float(residual.std()) - 0.02) < 0.002
    assert torch.equal(augment_batch(x, replace(ALL_ON, noise_std=0.1, noise_p=0), seeded(4)), plain)


@pytest.mark.parametrize("key, value", [("noise_std", -0.1), ("noise_p", 1.5)])
def test_bad_noise_settings_are_refused_at_load(key, value):
    from devagen.core.errors import DevagenError
    from devagen.core.params import params_from_dict

    with pytest.raises(DevagenError, match=f"params.yaml: augment.{key}: "):
        params_from_dict({"augment": {key: value}})
