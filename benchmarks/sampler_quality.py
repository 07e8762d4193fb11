"""Sampler sweep for one trained model: OCR accuracy, FID in judge features and images/s per setting.

    python benchmarks/sampler_quality.py --model models/diffusion --judge models/ocr --per-class 10

Writes benchmarks/results/sampler_quality/sampler_quality.{csv,md,png}. Each setting draws the same labels and seeds.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from devagen.core import paths
from devagen.core.config import EvaluateConfig, SampleConfig
from devagen.core.io import write_csv, write_text
from devagen.data import prepared as data
from devagen.judges import metrics, ocr
from devagen.report import plots
from devagen.report.figures import save_image
from devagen.sampling.generate import generate
from devagen.sampling.pipeline import load_pipeline

GUIDANCE = 3.0  # the default sample.guidance_scale
# (sampler, steps, guidance): DPM-Solver++ over steps at the default guidance, the other guidance
# scales at the default 10 steps, then DDIM 50 and DDPM 1000 (the latter on a subset).
SETTINGS = [("dpmpp", s, GUIDANCE) for s in (5, 10, 20, 50)] + [("dpmpp", 10, g) for g in (1.0, 2.0, 5.0)] + \
           [("ddim", 50, GUIDANCE), ("ddpm", 1000, GUIDANCE)]


def measure(model: Path, judge: ocr.Judge, sampler: str, steps: int, guidance: float, labels: np.ndarray,
            test_images: np.ndarray) -> dict:
    """One setting: images/s, OCR accuracy and FID/KID in judge features against real test images."""
    pipe = load_pipeline(model, sampler)
    cfg = SampleConfig(seed=0, sampler=sampler, steps=steps, guidance_scale=guidance, batch_size=256)
    start = time.perf_counter()
    images = generate(pipe, labels, len(labels), cfg, progress=False)
    seconds = time.perf_counter() - start
    ocr_acc = metrics.ocr_accuracy(ocr.predict_proba(judge, images), labels)["accuracy"]
    feats = metrics.judge_feature_metrics(judge, images, test_images,
                                          EvaluateConfig(kid_subset_size=max(2, len(images) // 2)))
    return {"sampler": sampler, "steps": steps, "guidance": guidance, "images": len(images),
            "images_per_s": round(len(images) / seconds, 3), "ocr_accuracy": round(ocr_acc, 4),
            "fid": round(feats["fid"], 3), "kid": round(feats["kid_mean"], 4)}


def table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    return "\n".join(lines + ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]) + "\n"


@click.command()
@click.option("--model", type=click.Path(file_okay=False, path_type=Path), default=paths.DIFFUSION_DIR)
@click.option("--judge", "judge_dir", type=click.Path(file_okay=False, path_type=Path), default=paths.OCR_DIR)
@click.option("--per-class", type=click.IntRange(2, 1000), default=10, show_default=True)
@click.option("--ddpm-images", type=click.IntRange(0, 100_000), default=46, show_default=True,
              help="DDPM at 1000 steps runs on this smaller subset (labels cycle through the classes); 0 skips it")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("benchmarks/results/sampler_quality"))
def main(model: Path, judge_dir: Path, per_class: int, ddpm_images: int, out: Path) -> None:
    """Sweep samplers, steps and guidance scales on one model; print and save the table."""
    judge = ocr.load_judge(judge_dir)
    test = data.load_split(paths.TEST_NPZ)
    rows = []
    for sampler, steps, guidance in SETTINGS:
        count = ddpm_images if sampler == "ddpm" else 46 * per_class
        if count == 0:
            continue
        labels = np.arange(count, dtype=np.int64) % 46
        rows.append(measure(model, judge, sampler, steps, guidance, labels, test.images))
        click.echo(table([rows[-1]]).splitlines()[-1])
    write_csv(rows, out / "sampler_quality.csv")
    write_text(table(rows), out / "sampler_quality.md")
    dpm = [r for r in rows if r["sampler"] == "dpmpp" and r["guidance"] == GUIDANCE]
    save_image(plots.line_plot([r["steps"] for r in dpm], {"OCR accuracy": [r["ocr_accuracy"] for r in dpm]},
                               f"DPM-Solver++ (guidance {GUIDANCE:g}): OCR accuracy vs steps", "steps", "OCR accuracy"),
               out / "sampler_quality.png")
    click.echo(table(rows))


if __name__ == "__main__":
    main()
