"""A tiny random-weight model directory laid out like training's `models/diffusion/`."""

from __future__ import annotations

from pathlib import Path

import torch

from devagen.core.classes import CLASS_NAMES, NUM_CLASSES, glyphs
from devagen.core.config import DiffusionConfig
from devagen.core.presets import patch_size
from devagen.core.shape import ModelConfig
from devagen.diffusion.unet import NULL_LABEL, build_noise_scheduler, build_unet
from devagen.pen.conditions import PenStyle
from devagen.sampling.folder import ModelMeta, write_meta, write_model_index

# A made-up pen summary for style-conditioned fixtures: strokes 0.5-1.8x the median, slant -20..30 degrees.
FIXTURE_PEN = PenStyle(2.6, (0.5, 1.8), (-20.0, 30.0),
                       tuple((c, 0.6 + 0.1 * (i % 10), -15.0 + 5 * i) for c in range(NUM_CLASSES) for i in range(4)),
                       tuple(float(c % 7) for c in range(NUM_CLASSES)))
# The same with layout moments (centroid y, x; spread y, x in px of a 16x16 image) in each pool entry.
FIXTURE_LAYOUT_PEN = PenStyle(2.6, (0.5, 1.8), (-20.0, 30.0),
                              tuple((*entry, 6.0 + i, 9.0 - i, 2.5 + 0.5 * i, 3.0)
                                    for i, entry in enumerate(FIXTURE_PEN.pool)),
                              FIXTURE_PEN.class_slant)


def make_model_dir(path: Path, conditional: bool = True, image_size: int = 16,
                   prediction_type: str = "v_prediction", style: bool = False, preset: str = "tiny",
                   learned_variance: bool = False, self_conditioning: bool = False, layout: bool = False) -> Path:
    """unet/ (seed 0), unet_raw/ (seed 1), guide/ (seed 2), scheduler/, devagen.json, model_index.json and pen.json
    for the `tiny` preset (or `preset`); style: a style-conditioned UNet with FIXTURE_PEN; learned_variance: a UNet
    with a variance half and its learned_range scheduler (diffusion.learned_variance); self_conditioning: a UNet
    that also reads its previous clean-image estimate (model.self_conditioning); layout: a style-conditioned UNet
    that also reads layout codes (model.layout_conditioning), with FIXTURE_LAYOUT_PEN."""
    cfg = ModelConfig(preset=preset, conditional=conditional, style_conditioning=style or layout,
                      self_conditioning=self_conditioning, layout_conditioning=layout)
    pen = FIXTURE_LAYOUT_PEN if layout else FIXTURE_PEN if style else None
    for subfolder, seed in (("unet", 0), ("unet_raw", 1), ("guide", 2)):
        torch.manual_seed(seed)
        build_unet(cfg, image_size, learned_variance=learned_variance).save_pretrained(path / subfolder)
    diffusion = DiffusionConfig(prediction_type=prediction_type, learned_variance=learned_variance)
    build_noise_scheduler(diffusion).save_pretrained(path / "scheduler")
    write_meta(ModelMeta(class_names=CLASS_NAMES, glyphs=tuple(glyphs()), image_size=image_size,
                         conditional=conditional, null_label=NULL_LABEL, preset=preset,
                         patch_size=patch_size(preset)), path)
    write_model_index(path, conditional, pen, patch_size=patch_size(preset))
    return path
