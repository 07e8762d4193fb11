"""Quality against network passes: the distilled students beside the teacher's own sampler, in one run.

    .venv/bin/python benchmarks/distill_curve.py          # after `dvc repro distill` with distill.enabled: true
    # ~10 min on 2 cores at --per-class 10; writes benchmarks/results/distill/

Rows: params.yaml's sampler (DPM-Solver++ for the SDE, CFG from sample.*) at 10, 20 and 50 steps; the guided
teacher under DDIM at 16 steps with distill.*'s guidance (what round 1's student learns to match, two of its steps
in one); then each student in models/distilled (DDIM, one pass per step, the guidance in its weights). Every row samples the
same classes with the same seeds and is scored with devagen.judges.evaluation.headline_quality: OCR accuracy,
legibility, FID / precision / recall in judge features, stroke width and ink mass against real test images.
NFE counts network passes per character (a guided step is two); ms per character is the wall time of
sampling alone, each row timed in turn in this one process, so the ratios compare like with like on the
machine that runs it (named in curve.md's header).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from devagen.core import paths
from devagen.core.device import cpu_info, precision_name
from devagen.core.params import load_params
from devagen.data import prepared as data
from devagen.judges import legibility, ocr
from devagen.judges.evaluation import headline_quality
from devagen.report.figures import labelled_rows, random_per_class, save_image
from devagen.report.plots import line_plot, stack_vertical, text_banner
from devagen.sampling import generate as sampling
from devagen.sampling import students
from devagen.sampling.folder import read_meta
from devagen.sampling.pipeline import DevagenPipeline, load_pipeline

RESULTS = Path(__file__).resolve().parent / "results" / "distill"
TEACHER_STEPS = (10, 20, 50)
COLUMNS = ("row", "nfe", "ms_per_char", "ocr_accuracy", "legible_share", "fid", "precision", "recall",
           "stroke_width_ratio", "ink_mass_ratio")
SHOWN = (7, 16, 19, 35, 44)  # classes in the figure: झ ण थ ज्ञ ७ (hard and easy ones)


def nfe(pipeline: DevagenPipeline, cfg: Any) -> int:
    """Network passes per image: guided steps (inside the guidance interval) count two."""
    pipeline.scheduler.set_timesteps(cfg.steps)
    guided = pipeline.guided(cfg.guidance_scale, cfg.guidance)
    inside = sum(cfg.guidance_t_min <= int(t) <= cfg.guidance_t_max for t in pipeline.scheduler.timesteps)
    return cfg.steps + (inside if guided else 0)


def measure(name: str, pipeline: DevagenPipeline, cfg: Any, intended: np.ndarray, scorer: Any) -> tuple[dict, np.ndarray]:
    """One row: sample, time, score."""
    began = time.perf_counter()
    images = sampling.generate(pipeline, intended, len(intended), cfg, progress=False)
    ms = 1000.0 * (time.perf_counter() - began) / len(images)
    row = {"row": name, "nfe": nfe(pipeline, cfg), "ms_per_char": ms, **scorer(images)}
    click.echo("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return row, images


def write_results(rows: list[dict], panels: list[tuple[str, np.ndarray]], header: str, out: Path) -> None:
    """curve.md (table), curve.csv, curve.png (quality vs NFE) and samples.png (4x) under out/."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "curve.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [row["row"], str(row["nfe"]), f"{row['ms_per_char']:.1f}", f"{row['ocr_accuracy']:.1%}",
                 f"{row['legible_share']:.1%}", f"{row['fid']:.2f}", f"{row['precision']:.2f}", f"{row['recall']:.2f}",
                 f"{row['stroke_width_ratio']:.2f}x", f"{row['ink_mass_ratio']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "curve.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    student = [r for r in rows if r["row"].startswith("student")]
    target = [r for r in rows if r["row"].endswith("(distillation target)")]
    teacher = [r for r in rows if r not in student and r not in target]
    charts = []
    for key, title, log_y in (("ocr_accuracy", "OCR accuracy (judge) vs network passes per character", False),
                              ("fid", "FID in judge features vs network passes per character (lower is better)", True)):
        xs = sorted({r["nfe"] for r in rows})
        series = {name: [next((r[key] for r in group if r["nfe"] == x), None) for x in xs]
                  for name, group in (("teacher (DPM-Solver++ SDE, CFG)", teacher), ("teacher, DDIM 16 + CFG", target),
                                      ("distilled student (DDIM)", student))}
        charts.append(line_plot(xs, series, title, "NFE per character", key, log_y=log_y))
    save_image(stack_vertical(charts), out / "curve.png")
    grid = labelled_rows(panels, scale=4)
    save_image(stack_vertical([text_banner("Same classes and seeds, 4x: real test images first", grid.width), grid], gap=0),
               out / "samples.png")


@click.command()
@click.option("--per-class", default=10, show_default=True, help="samples per class for every row")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--out", default=str(RESULTS), show_default=True, type=click.Path(file_okay=False))
def main(per_class: int, params_path: str, out: str) -> None:
    params = load_params(params_path)
    meta = read_meta(paths.DIFFUSION_DIR)
    judge, ood = ocr.load_judge(paths.OCR_DIR), legibility.load_ood(paths.OCR_DIR)
    test = data.load_split(paths.TEST_NPZ)
    intended = np.repeat(np.arange(len(meta.class_names), dtype=np.int64), per_class)
    score = lambda images: headline_quality(judge, ood, images, intended, test, params.evaluate)  # noqa: E731
    shown = random_per_class(intended, 2, params.sample.seed)
    shown = shown[np.isin(intended[shown], SHOWN)]
    real = random_per_class(test.labels, 2, params.sample.seed + 1)
    panels = [("real", test.images[real[np.isin(test.labels[real], SHOWN)]])]
    rows = []
    teacher = load_pipeline(paths.DIFFUSION_DIR, params.sample.sampler, params.sample.use_ema)
    for steps in TEACHER_STEPS:
        cfg = dataclasses.replace(params.sample, steps=steps)
        row, images = measure(f"teacher {params.sample.sampler} {steps}", teacher, cfg, intended, score)
        rows.append(row)
        panels.append((f"teacher {steps}", images[shown]))
    target = dataclasses.replace(params.sample, sampler=students.SAMPLER, steps=2 * params.distill.start_steps,
                                 guidance_scale=params.distill.guidance_scale,
                                 guidance_t_min=params.distill.guidance_t_min, guidance_t_max=params.distill.guidance_t_max)
    row, images = measure(f"teacher ddim {target.steps} (distillation target)",
                          load_pipeline(paths.DIFFUSION_DIR, students.SAMPLER, params.sample.use_ema), target, intended, score)
    rows.append(row)
    panels.append((f"ddim {target.steps}", images[shown]))
    for steps in sorted(params.distill.student_steps, reverse=True):
        cfg = dataclasses.replace(params.sample, sampler=students.SAMPLER, steps=steps, guidance_scale=1.0)
        row, images = measure(f"student {steps}", students.load_student(paths.DISTILLED_DIR, steps), cfg, intended, score)
        rows.append(row)
        panels.append((f"student {steps}", images[shown]))
    cpu = cpu_info()
    header = (f"# Distilled students vs the teacher's sampler ({datetime.date.today()}, {cpu['model']}, "
              f"{cpu['cores']} cores, {precision_name(teacher.device, params.sample.precision)}, "
              f"{len(intended)} samples per row, sample.guidance_scale {params.sample.guidance_scale} for the teacher)")
    write_results(rows, panels, header, Path(out))
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
