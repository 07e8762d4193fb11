"""The trained model folder that a training run writes (its format: devagen.sampling.folder)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from ..core.classes import CLASS_NAMES, glyphs
from ..core.shape import ModelConfig
from ..core.integrity import full_disk_guard, write_manifest
from ..core.off_notes import write_no_autoencoder, write_no_guide
from ..core.presets import patch_size
from ..diffusion.autoencoder import save_autoencoder
from ..diffusion.unet import NULL_LABEL
from ..pen.conditions import PenStyle
from ..sampling.folder import (
    GUIDE_FOLDER,
    VAE_FOLDER,
    ModelMeta,
    write_meta,
    write_model_index,
)
from .checkpoints import GUIDE_META, guide_at, guide_for_run, state_bytes, swap_in
from .state import Checkpoints, TrainRun, network_copy


def model_meta(model_cfg: ModelConfig, image_size: int) -> ModelMeta:
    """What devagen.json tells loaders beside the diffusers folders (the pen goes to pen.json: hub.write_pen)."""
    return ModelMeta(class_names=CLASS_NAMES, glyphs=tuple(glyphs()), image_size=image_size,
                     conditional=model_cfg.conditional, null_label=NULL_LABEL if model_cfg.conditional else None,
                     preset=model_cfg.preset,
                     patch_size=patch_size(model_cfg.preset))


def save_trained_model(run: TrainRun, ckpt: Checkpoints, model_cfg: ModelConfig, out_dir: Path,
                       pen: Optional[PenStyle] = None) -> None:
    """Write out_dir/{unet (EMA, else raw), unet_raw, guide (if any), scheduler, devagen.json, model_index.json,
    pen.json, checksums.json} via a temp dir."""
    acc = run.accelerator
    acc.wait_for_everyone()
    if acc.is_main_process:
        guide = guide_for_run(ckpt, guide_at(run.cfg, run.total_steps)) if run.cfg.guide_step else None
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_dir.with_name(f".tmp-{out_dir.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        with full_disk_guard(out_dir, state_bytes(run, False, copies=3 if guide else 2), tmp,
                             "the checkpoints are intact"):
            network_copy(run, ema=False).save_pretrained(tmp / "unet_raw")
            network_copy(run, ema=True).save_pretrained(tmp / "unet")
            if guide is not None:
                shutil.copytree(guide, tmp / GUIDE_FOLDER, ignore=shutil.ignore_patterns(GUIDE_META))
            else:  # guide/ holds a note: a stage out, it must exist (and run-cache restores bring a real one back)
                write_no_guide(tmp / GUIDE_FOLDER)
            if run.vae is not None:
                save_autoencoder(run.vae, tmp / VAE_FOLDER)
            else:  # a pixel model: vae/ holds a note (the train stage's outs are the folder's parts, all present)
                write_no_autoencoder(tmp / VAE_FOLDER)
            run.noise_scheduler.save_pretrained(tmp / "scheduler")
            write_meta(model_meta(model_cfg, int(run.images.shape[-1])), tmp)
            write_model_index(tmp, model_cfg.conditional, pen, vae=run.vae is not None,
                              patch_size=run.patch)
            write_manifest(tmp)  # last: a folder without it was never finished (or predates checksums)
        swap_in(tmp, out_dir)
    acc.wait_for_everyone()
