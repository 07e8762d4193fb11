"""`devagen distill` (DVC stage distill): few-step students of the trained model, and their measured quality."""

from __future__ import annotations

import click

from ..core import paths
from ..core.integrity import replace_dir
from .common import finish, load, write_metrics
from .failure import StageCommand
from .options import PARAMS_OPTION

FIGURE = "distill.png"
FIGURE_CLASSES = 12  # classes shown per student in the figure
FLAT_KEYS = ("ocr_accuracy", "fid", "legible_share", "stroke_width_ratio", "ink_mass_ratio", "ms_per_image")


@click.command(cls=StageCommand)
@PARAMS_OPTION
def distill(params_path: str) -> None:
    """Distil the trained model into 8/4/2/1-step DDIM students (distill.enabled) and measure each one."""
    from ..core.off_notes import write_distill_status
    from .optional import begin

    params = load(params_path)
    cfg, out = params.distill, paths.DISTILLED_DIR
    started = begin(params, "distill", cfg.enabled, "distill.enabled", out,
                    lambda folder: write_distill_status(folder, False), FIGURE, "Distillation")
    if started is None:
        return
    tmp, tracker = started
    import dataclasses
    import time

    import numpy as np
    import torch

    from ..data import prepared as data
    from ..diffusion.unet import built_shape, condition, count_parameters, layout_dim
    from ..judges import legibility, ocr
    from ..judges.evaluation import headline_quality
    from ..pen.conditions import training_codes, with_layout
    from ..report import figures
    from ..sampling import generate as sampling
    from ..sampling import students
    from ..sampling.folder import read_meta
    from ..sampling.pipeline import load_pipeline
    from ..training.distill import DistillData
    from ..training.distill import distill as run_distill
    from ..training.distill import fresh_student

    meta = read_meta(paths.DIFFUSION_DIR)
    teacher = load_pipeline(paths.DIFFUSION_DIR, students.SAMPLER, use_ema=True)
    split = data.load_split(paths.TRAIN_NPZ)
    judge, ood, test = ocr.load_judge(paths.OCR_DIR), legibility.load_ood(paths.OCR_DIR), data.load_split(paths.TEST_NPZ)
    device = teacher.device
    labels = torch.from_numpy(split.labels.astype(np.int64))
    pixels = data.resize(split.images, meta.image_size)  # the teacher's side
    conditions = None
    if meta.conditional:
        codes = None
        if teacher.style_conditioned:
            pen = data.read_pen(paths.TRAIN_NPZ, len(split.images))
            pen = with_layout(pen, pixels) if layout_dim(teacher.unet) else pen
            codes = torch.from_numpy(training_codes(pen, split.labels, side=meta.image_size))
        conditions = condition(labels, codes) if codes is not None else labels
    images = torch.from_numpy(pixels).to(device)
    batch = DistillData(images, None if conditions is None else conditions.to(device), meta.patch_size)
    student, shape = None, {}
    if cfg.student_preset is not None:  # a smaller network of its own, trained from scratch by the same rounds
        student = fresh_student(cfg.student_preset, teacher.unet, meta.patch_size, cfg.seed)
        size = count_parameters(student)
        shape = {"student_params": size, "student": {"preset": cfg.student_preset, "params": size,
                                                     "unet": built_shape(student, meta.patch_size)}}
        click.echo(f"distill: student preset {cfg.student_preset!r}, {size:,} parameters "
                   f"(teacher {count_parameters(teacher.unet):,})")
    rounds = run_distill(teacher.unet, teacher.scheduler, batch, cfg, meta.null_label,
                         lambda steps, net: students.write_student(
                             net, paths.DIFFUSION_DIR, students.student_dir(tmp, steps), cfg.student_preset),
                         student=student)
    write_distill_status(tmp, True, cfg.student_steps)
    sample_cfg = students.student_sampling(params.sample, sampler=students.SAMPLER, per_class=cfg.per_class)
    intended = np.repeat(np.arange(len(meta.class_names), dtype=np.int64), cfg.per_class)
    rows, strips = [], []
    for info in rounds:
        steps = info["steps"]
        pipeline = students.load_student(tmp, steps, device)
        began = time.perf_counter()
        images = sampling.generate(pipeline, intended, len(intended), dataclasses.replace(sample_cfg, steps=steps))
        ms = 1000.0 * (time.perf_counter() - began) / len(images)
        quality = headline_quality(judge, ood, images, intended, test, params.evaluate)
        rows.append({**info, "nfe": steps, "ms_per_image": ms, **quality})
        shown = figures.random_per_class(intended, 1, cfg.seed)[:FIGURE_CLASSES]
        strips.append((f"{steps} step{'s' if steps > 1 else ''}", images[shown]))
        click.echo(f"distill: {steps} steps: OCR {quality['ocr_accuracy']:.1%}, judge FID {quality['fid']:.2f}, "
                   f"stroke width {quality['stroke_width_ratio']:.2f}x, {ms:.1f} ms/image")
    replace_dir(tmp, out)
    flat = {f"steps_{row['steps']}_{key}": row[key] for row in rows for key in FLAT_KEYS}  # top level: MLflow logs them
    write_metrics("distill", {"enabled": True, **shape, **flat, "students": rows})
    figures.save_image(figures.labelled_rows(strips, scale=4, title="Distilled students (DDIM, no CFG pass), 4x"),
                       paths.FIGURES_DIR / FIGURE)
    finish(tracker, figures=(FIGURE,))

