"""A tiny random-weight model directory laid out like training's `models/diffusion/`."""

from __future__ import annotations

from pathlib import Path

import torch

from devagen.classes import CLASS_NAMES, glyphs
from devagen.config import DiffusionConfig, ModelConfig
from devagen.hub import write_model_index
from devagen.model import NULL_LABEL, build_noise_scheduler, build_unet
from devagen.pipeline import ModelMeta, write_meta


def make_model_dir(path: Path, conditional: bool = True, image_size: int = 16,
                   prediction_type: str = "v_prediction") -> Path:
    """unet/ (seed 0), unet_raw/ (seed 1), guide/ (seed 2), scheduler/, devagen.json and model_index.json for the
    `tiny` preset."""
    cfg = ModelConfig(preset="tiny", conditional=conditional)
    for subfolder, seed in (("unet", 0), ("unet_raw", 1), ("guide", 2)):
        torch.manual_seed(seed)
        build_unet(cfg, image_size).save_pretrained(path / subfolder)
    build_noise_scheduler(DiffusionConfig(prediction_type=prediction_type)).save_pretrained(path / "scheduler")
    write_meta(ModelMeta(class_names=CLASS_NAMES, glyphs=tuple(glyphs()), image_size=image_size,
                         conditional=conditional, null_label=NULL_LABEL, preset="tiny"), path)
    write_model_index(path, conditional)
    return path
