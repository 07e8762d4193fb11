"""Distilled students on disk: one diffusers model folder per step count, sampled with DDIM.

models/distilled/steps_<N>/ has the trained model folder's layout (devagen.json, pen.json, model_index.json naming
DDIMScheduler, unet/, scheduler/, checksums.json) without unet_raw/ or guide/, so both load it:
    devagen.sampling.pipeline.load_pipeline(folder, "ddim")   then  pipeline(labels, num_inference_steps=N)
    DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)   (its scheduler is the DDIM sampler)
The guidance is in the student's weights: sample it with guidance_scale 1 (one network pass per step).
A student has no variance half (DDIM needs none), and with distill.student_preset its own, smaller shape.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from diffusers import UNet2DModel

from ..core.config import SampleConfig
from ..core.errors import DevagenError
from ..core.integrity import write_manifest
from .folder import META_FILE, read_meta, read_pen, write_meta, write_model_index
from .pipeline import DevagenPipeline, load_pipeline
from .samplers import build_sampler

SAMPLER = "ddim"


def student_dir(root: Path, steps: int) -> Path:
    """Where the student with `steps` DDIM steps lives under the distilled root."""
    return Path(root) / f"steps_{steps}"


def write_student(student: UNet2DModel, teacher_dir: Path, out_dir: Path, preset: Optional[str] = None) -> None:
    """Write a student as a model folder beside its teacher's metadata (out_dir must not exist yet). preset: the
    student's own (distill.student_preset), which its devagen.json names instead of the teacher's (unet/config.json
    holds its shape either way)."""
    teacher_dir, out_dir = Path(teacher_dir), Path(out_dir)
    meta = read_meta(teacher_dir)
    out_dir.mkdir(parents=True)
    if preset is None:
        shutil.copyfile(teacher_dir / META_FILE, out_dir / META_FILE)
    else:
        write_meta(replace(meta, preset=preset), out_dir)
    student.save_pretrained(out_dir / "unet")
    ddpm = json.loads((teacher_dir / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    build_sampler(ddpm, SAMPLER).save_pretrained(out_dir / "scheduler")
    write_model_index(out_dir, meta.conditional, read_pen(teacher_dir), scheduler="DDIMScheduler", unets=("unet",),
                      patch_size=meta.patch_size)
    write_manifest(out_dir)


def load_student(root: Path, steps: int, device=None) -> DevagenPipeline:  # type: ignore[no-untyped-def]
    """The student with `steps` steps as a DevagenPipeline (DDIM sampler), or DevagenError saying how to make it."""
    folder = student_dir(root, steps)
    if not (folder / META_FILE).is_file():
        raise DevagenError(f"{folder}: no distilled student with {steps} steps; set distill.enabled: true "
                           f"(distill.min_steps <= {steps} <= distill.start_steps) and run `dvc repro distill`")
    return load_pipeline(folder, SAMPLER, use_ema=True, device=device)


def student_sampling(cfg: SampleConfig, **changes: Any) -> SampleConfig:
    """The sample settings a distilled student is drawn with: its teacher's CFG is in its weights, so no guidance
    pass, no guide/ and no classifier (cfg's guidance keys are dropped), plus `changes`."""
    return replace(cfg, guidance_scale=1.0, guidance="cfg", autoguidance_scale=1.0, **changes)
