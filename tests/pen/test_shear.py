"""Slant by shear (devagen.pen.shear) and the pipeline's use of it for an asked slant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_style import bar, draw

from devagen.pen.measures import slant_degrees
from devagen.pen.shear import shear_rows, shear_to_slant
from devagen.sampling.generate import image_generators
from devagen.sampling.pipeline import load_pipeline


def glyph() -> np.ndarray:
    """A small ka-like shape: a bar on top, a vertical stem and a bowl, well inside the 32x32 frame."""
    def inside(x, y):
        top = (np.abs(y - 9) < 1.5) & (np.abs(x - 16) < 9)
        stem = (np.abs(x - 16) < 1.5) & (y > 9) & (y < 25)
        bowl = np.abs(np.hypot(x - 11, y - 17) - 4) < 1.3
        return top | stem | bowl
    return draw(inside)


@pytest.mark.parametrize("target", [-12.0, 0.0, 7.5, 15.0])
def test_shear_sets_the_moment_slant_and_keeps_the_ink(target: float) -> None:
    images = np.stack([glyph(), bar(3, 80, length=18), bar(2.5, 100, length=18)])
    out = shear_to_slant(images, np.full(3, target))
    np.testing.assert_allclose(slant_degrees(out), target, atol=0.3)  # only uint8 rounding in the way
    mass = lambda a: a.astype(float).sum((1, 2))  # noqa: E731
    np.testing.assert_allclose(mass(out), mass(images), rtol=0.01)


def test_positive_shear_leans_the_top_right() -> None:
    upright = bar(3, 90, length=24)
    out = shear_rows(upright[None], np.array([0.25]))[0]
    cols = np.arange(32)
    centre = lambda row: (row * cols).sum() / row.sum()  # noqa: E731
    assert centre(out[6].astype(float)) > centre(upright[6].astype(float)) + 1.5  # top row moved right
    assert centre(out[26].astype(float)) < centre(upright[26].astype(float)) - 1.5  # bottom row moved left
    assert slant_degrees(out[None])[0] > 10


def test_nothing_to_shear_comes_back_unchanged() -> None:
    images = np.stack([np.zeros((32, 32), np.uint8), glyph()])
    out = shear_to_slant(images, np.array([10.0, np.nan]))  # no ink; no target
    assert np.array_equal(out, images)
    with pytest.raises(ValueError, match="2 target slants for 1 images"):
        shear_to_slant(images[:1], np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="uint8"):
        shear_rows(images.astype(float), np.zeros(2))


def test_pipeline_shears_an_asked_slant_and_only_then(tiny_style_model_dir: Path) -> None:
    pipe = load_pipeline(tiny_style_model_dir, "dpmpp", device="cpu")
    run = lambda **kw: pipe(labels=[0, 3], num_inference_steps=2, guidance_scale=2.0,  # noqa: E731
                            generator=image_generators(0, 0, 2), **kw)
    own = run(slant=[5.0, -10.0], slant_shear=False)
    targets = np.asarray(pipe.pen.class_slant)[[0, 3]] + np.array([5.0, -10.0])
    assert np.array_equal(run(slant=[5.0, -10.0]), shear_to_slant(own, targets))
    assert not np.array_equal(run(slant=[5.0, -10.0]), own)
    assert np.array_equal(run(), run(slant_shear=False))  # nothing asked: the network's own drawing
    stroke_only = run(stroke=1.2)
    assert np.array_equal(stroke_only, run(stroke=1.2, slant_shear=False))
