"""Quality per CPU-minute: trained models × sampling settings on one fixed set of labels and seeds.

    python benchmarks/recipe_probe.py --model /path/to/models/diffusion --model other/models/diffusion \
        --setting guidance_scale=2.5 --setting guidance_scale=3,guidance_t_min=150 --per-class 10

For every model and every setting (sample-section overrides of params.yaml) it draws per_class images of
each class with the same seeds and measures what the default's targets are written in: OCR accuracy (the
judge in --judge), FID in judge features against as many real test images (a seeded per-class draw),
the stroke-width and ink-mass ratios of devagen.pen.measures (median over classes, against a disjoint real draw:
the style issue's measures) and sampling time. Rows go to <out>/recipe_probe.jsonl (appended) and the
table to stdout. FID at 460 images reads higher than the evaluate stage's at 920: compare rows of one probe.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import yaml

from devagen.core.params import load_params
from devagen.data import prepared as data
from devagen.judges import metrics, ocr
from devagen.pen import measures as style
from devagen.sampling.generate import generate
from devagen.sampling.pipeline import load_pipeline

REPO = Path(__file__).resolve().parents[1]


def parse_setting(text: str, section: str = "sample") -> dict[str, Any]:
    """'guidance_scale=3,guidance_t_min=150' -> {'guidance_scale': 3, 'guidance_t_min': 150} (YAML values)."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(pair) != 2 for pair in pairs):
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE[,KEY=VALUE...] of the {section} section")
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


def setting_text(setting: dict[str, Any]) -> str:
    """{'a': 1, 'b': 2} -> 'a=1, b=2'; {} -> 'params.yaml'."""
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "params.yaml"


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def real_draw(test: data.Split, per_class: int, seed: int) -> np.ndarray:
    """per_class real test images of every class (seeded): the FID reference, same size as the samples."""
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.choice(np.flatnonzero(test.labels == c), per_class, replace=False)
                           for c in np.unique(test.labels)])
    return test.images[pick]


def measure(model: Path, setting: dict[str, Any], params: Any, judge: ocr.Judge, test: data.Split,
            per_class: int) -> dict[str, Any]:
    """One model under one setting: seconds, img/s, OCR, judge FID, stroke-width and ink-mass ratios."""
    cfg = dataclasses.replace(params.sample, **setting)
    pipe = load_pipeline(model, cfg.sampler, True)
    labels = np.repeat(np.arange(len(np.unique(test.labels)), dtype=np.int64), per_class)
    start = time.perf_counter()
    images = generate(pipe, labels, len(labels), cfg, progress=False)
    seconds = time.perf_counter() - start
    real = real_draw(test, per_class, params.evaluate.seed)
    measures = style.style_comparison(images, labels, test.images, test.labels, params.evaluate.seed,
                                      per_class=False)["measures"]
    return {"model": str(model), "setting": setting, "images": len(images), "seconds": round(seconds, 1),
            "images_per_s": round(len(images) / seconds, 2),
            "ocr_accuracy": round(metrics.ocr_accuracy(ocr.predict_proba(judge, images), labels)["accuracy"], 4),
            "fid": round(metrics.judge_feature_metrics(judge, images, real, params.evaluate)["fid"], 3),
            "stroke_width_ratio": round(measures["stroke_width"]["ratio_median"], 3),
            "ink_mass_ratio": round(measures["ink_mass"]["ratio_median"], 3)}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: model, setting, s, OCR, FID, width and ink ratios."""
    return markdown(["model", "setting", "s", "OCR", "FID (judge)", "width", "ink"],
                    [[r["model"], setting_text(r["setting"]), r["seconds"], f"{100 * r['ocr_accuracy']:.1f} %",
                      f"{r['fid']:.2f}", f"{r['stroke_width_ratio']:.2f}x", f"{r['ink_mass_ratio']:.2f}x"] for r in rows])


@click.command()
@click.option("--model", "models", multiple=True, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--setting", "settings", multiple=True, default=("",), help="sample-section overrides, e.g. "
              "guidance_scale=3,guidance_t_min=150 (repeat the option; none = params.yaml's sample section)")
@click.option("--per-class", type=int, default=10, show_default=True)
@click.option("--params", "params_path", type=click.Path(exists=True, path_type=Path), default=REPO / "params.yaml")
@click.option("--judge", "judge_dir", type=click.Path(exists=True, path_type=Path), default=REPO / "models/ocr")
@click.option("--test", "test_npz", type=click.Path(exists=True, path_type=Path),
              default=REPO / "data/prepared/test.npz")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=REPO / "benchmarks/results/recipe")
def main(models: tuple[Path, ...], settings: tuple[str, ...], per_class: int, params_path: Path, judge_dir: Path,
         test_npz: Path, out: Path) -> None:
    params, judge, test = load_params(params_path), ocr.load_judge(judge_dir), data.load_split(test_npz)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in models:
        for text in settings:
            rows.append(measure(model, parse_setting(text), params, judge, test, per_class))
            with (out / "recipe_probe.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(rows[-1]) + "\n")
            click.echo(table(rows[-1:]).splitlines()[-1])
    click.echo(table(rows))


if __name__ == "__main__":
    main()
