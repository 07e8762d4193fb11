"""Layout conditioning (model.layout_conditioning): the ink's centroid and spread as four more pen codes, the
StyleUNet2DModel that reads them, the pool entries that carry them, training that measures them (on the augmented
image where train.augment is on) and sampling that draws them per image from the class's pool."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from model_fixture import FIXTURE_LAYOUT_PEN, FIXTURE_PEN, make_model_dir

from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict
from devagen.core.shape import ModelConfig
from devagen.diffusion.unet import StyleUNet2DModel, build_unet, condition, layout_dim
from devagen.pen.conditions import (
    PenStyle,
    layout_codes,
    layout_moments,
    measure_pen,
    pen_style,
    training_codes,
    with_layout,
)
from devagen.sampling.generate import image_generators
from devagen.sampling.pipeline import load_pipeline
from devagen.training.loop import train_diffusion


def _blocks(n: int, size: int = 16) -> np.ndarray:
    """uint8 (n, S, S): a white 4x6 block per image, placed differently."""
    out = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        top, left = 2 + i % 7, 1 + (3 * i) % 9
        out[i, top:top + 4, left:left + 6] = 255
    return out


def test_layout_moments_are_the_ink_centroid_and_spread() -> None:
    images = np.zeros((3, 16, 16), np.uint8)
    images[0, 4, 10] = 255  # one pixel: there, no spread
    images[1, 2, 3], images[1, 6, 3] = 255, 255  # two pixels 4 rows apart: spread 2 in y, 0 in x
    moments = layout_moments(images)  # images[2] has no ink: the centre, no spread
    np.testing.assert_allclose(moments, [[4, 10, 0, 0], [4, 3, 2, 0], [7.5, 7.5, 0, 0]], atol=1e-5)
    grey = images.copy()
    grey[0, 4, 12] = 85  # a third as much ink two columns right: the centroid moves a quarter of the way
    np.testing.assert_allclose(layout_moments(grey)[0, :2], [4, 10.5], atol=1e-4)


def test_layout_codes_are_zero_at_the_centre_and_scale_with_the_side() -> None:
    centre = torch.tensor([[15.5, 15.5, 0.23 * 32, 0.23 * 32]])
    torch.testing.assert_close(layout_codes(centre, 32), torch.zeros(1, 4))
    moved = layout_codes(torch.tensor([[17.5, 11.5, 0.23 * 32 + 1, 0.23 * 32]]), 32)
    torch.testing.assert_close(moved, torch.tensor([[1.0, -2.0, 1.0, 0.0]]))  # 2 px per centroid unit, 1 per spread
    torch.testing.assert_close(layout_codes(torch.tensor([[16.5, 7.5, 8.18, 3.68]]), 16),
                               torch.tensor([[9.0, 0.0, 9.0, 0.0]]))  # 16x16: 1 px, 0.5 px


def test_pens_with_layout_give_six_codes_and_pools_that_carry_it() -> None:
    images, labels = _blocks(92), np.arange(92) % 46
    pen = measure_pen(images)
    full = with_layout(pen, images)
    assert full.shape == (92, 6) and np.array_equal(full[:, :2], pen)
    plain, both = training_codes(pen, labels), training_codes(full, labels, side=16)
    assert plain.shape == (92, 2) and both.shape == (92, 6) and np.array_equal(both[:, :2], plain)
    np.testing.assert_allclose(both[:, 2:], layout_codes(torch.from_numpy(layout_moments(images)), 16).numpy())
    style = pen_style(full, labels, per_class=2)
    assert style.has_layout and not pen_style(pen, labels, per_class=2).has_layout
    assert all(len(entry) == 7 for entry in style.pool)
    again = PenStyle.from_json(json.loads(json.dumps(style.to_json())))
    assert again == style


def test_drawing_takes_each_images_layout_from_its_class_pool_and_keeps_asked_values() -> None:
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    nan = np.full(4, np.nan)
    stroke, slant, layout = FIXTURE_LAYOUT_PEN.draw_each([3, 3, None, 7], np.array([1.2, np.nan, 1.0, 1.0]),
                                                         np.array([5.0, 5.0, np.nan, 5.0]), gens, layout=True)
    assert layout.shape == (4, 4) and stroke[0] == 1.2 and slant[0] == 5.0  # asked values kept, layout still drawn
    entries = {tuple(e[3:]) for e in FIXTURE_LAYOUT_PEN.pool if e[0] == 3}
    assert tuple(layout[0]) in entries and tuple(layout[1]) in entries
    assert tuple(layout[3]) in {tuple(e[3:]) for e in FIXTURE_LAYOUT_PEN.pool if e[0] == 7}
    # a model without layout draws only what is missing, as it always did, and returns no layout
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    stroke, slant, none = FIXTURE_PEN.draw_each([3, 3, 3, 3], np.ones(4), nan, gens)
    assert none is None and (stroke == 1).all() and np.isfinite(slant).all()


def test_the_unet_reads_eight_column_conditions_and_saves_layout_dim(tmp_path: Path) -> None:
    with pytest.raises(DevagenError, match="model.layout_conditioning"):
        ModelConfig(preset="tiny", layout_conditioning=True)  # needs the pen
    with pytest.raises(DevagenError, match="model.layout_conditioning"):
        params_from_dict({"model": {"style_conditioning": False, "layout_conditioning": True}})
    torch.manual_seed(0)
    unet = build_unet(ModelConfig(preset="tiny", style_conditioning=True, layout_conditioning=True), 16)
    assert isinstance(unet, StyleUNet2DModel) and layout_dim(unet) == 4
    x, t, labels = torch.randn(2, 1, 16, 16), torch.tensor([10, 500]), torch.tensor([1, 2])
    codes = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, -3.0, 2.0, 1.0]])
    out = unet(x, t, class_labels=condition(labels, codes)).sample
    assert out.shape == x.shape and not torch.equal(out[1], unet(x, t, class_labels=condition(
        labels, torch.zeros(2, 6))).sample[1])  # the layout codes change the output
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        unet(x, t, class_labels=condition(labels, codes[:, :2]))
    unet.save_pretrained(tmp_path / "u")
    assert json.loads((tmp_path / "u" / "config.json").read_text())["layout_dim"] == 4
    assert layout_dim(StyleUNet2DModel.from_pretrained(tmp_path / "u")) == 4
    plain = build_unet(ModelConfig(preset="tiny", style_conditioning=True), 16)
    plain.save_pretrained(tmp_path / "p")
    assert "layout_dim" not in json.loads((tmp_path / "p" / "config.json").read_text())  # folders as they were


def test_sampling_feeds_each_image_the_layout_codes_of_its_drawn_pool_entry(tmp_path: Path, cpu_one_thread) -> None:
    folder = make_model_dir(tmp_path / "diffusion", layout=True)
    pipe = load_pipeline(folder, "dpmpp", device="cpu")
    seen: list[torch.Tensor] = []
    pipe.unet.class_embedding.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    first = pipe(labels=[3, 7], guidance_scale=2.0, num_inference_steps=2, generator=image_generators(0, 0, 2),
                 stroke=1.0, slant=0.0)
    assert seen and all(c.shape == (4, 8) for c in seen)  # CFG: both halves, class + 6 codes + given
    pool = {int(c): [] for c in (3, 7)}
    for entry in FIXTURE_LAYOUT_PEN.pool:
        if entry[0] in pool:
            pool[entry[0]].append(layout_codes(torch.tensor([entry[3:]]), 16)[0])
    for row, label in zip(seen[0][:2], (3, 7)):
        assert any(torch.allclose(row[3:7], codes) for codes in pool[label])
    again = pipe(labels=[3, 7], guidance_scale=2.0, num_inference_steps=2, generator=image_generators(0, 0, 2),
                 stroke=1.0, slant=0.0)
    assert np.array_equal(first, again)  # seeded per image
    hub = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)  # diffusers' own loading
    assert layout_dim(hub.unet) == 4 and hub.pen.has_layout
    assert hub(labels=[1], num_inference_steps=1, generator=image_generators(0, 0, 1)).shape == (1, 16, 16)


@pytest.mark.parametrize("augment", (False, True))
def test_training_measures_the_layout_and_keeps_it_in_the_pool(tmp_path: Path, augment: bool,
                                                               cpu_one_thread) -> None:
    images, labels = _blocks(46), np.arange(46)
    cfg = TrainConfig(batch_size=8, max_steps=2, warmup_steps=0, augment=augment, checkpoint_every=10,
                      ema_decay=0.9, log_every=1, mixed_precision="no")
    model = ModelConfig(preset="tiny", style_conditioning=True, layout_conditioning=True)
    result = train_diffusion(cfg, model, DiffusionConfig(), AugmentConfig(), images, labels, tmp_path / "m",
                             tmp_path / "c", progress=False, pen=measure_pen(images))
    assert np.isfinite(result["final_loss"])
    pool = json.loads((tmp_path / "m" / "pen.json").read_text())["pen"]["pool"]
    moments = layout_moments(images)
    for entry in pool:  # each entry: (class, stroke, slant) and that training image's layout moments
        np.testing.assert_allclose(entry[3:], moments[int(entry[0])], atol=1e-3)
    pipe = load_pipeline(tmp_path / "m", "dpmpp", device="cpu")
    assert pipe(labels=[0, 5], num_inference_steps=2, generator=image_generators(0, 0, 2)).shape == (2, 16, 16)
    with pytest.raises(DevagenError, match="stroke width and slant"):  # the pen is still needed
        train_diffusion(cfg, model, DiffusionConfig(), AugmentConfig(), images, labels, tmp_path / "m2",
                        tmp_path / "c2", progress=False, pen=None)
