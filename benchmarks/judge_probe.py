"""The OCR judge's recipe against time: test top-1 and training seconds of train_ocr settings, over seeds.

    .venv/bin/python benchmarks/judge_probe.py --setting epochs=3,hard_share=1,random_share=0 \
        --setting epochs=5 --seeds 0,1      # ~1 min per run on 2 cores; rows to <out>/judge_probe.jsonl

Each setting overrides params.yaml's train_ocr section (the rest of it is kept) and trains the judge with
the real `ocr.train_judge` on data/prepared (the train split; tested once on the whole test split), one run
at a time in this process. Seconds are the judge's own train_seconds (test pass included); name the CPU
beside them (printed first). Run nothing else on the machine meanwhile: the two cores are the measurement.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_probe import markdown, parse_setting, setting_text  # noqa: E402  (sibling script)

from devagen.core import (
    device,
    paths,  # noqa: E402
)
from devagen.core.config import AugmentConfig, OcrConfig
from devagen.core.params import load_params  # noqa: E402
from devagen.data import prepared as data
from devagen.judges import ocr


def run(base: OcrConfig, augment: AugmentConfig, setting: dict[str, Any], seed: int, train: data.Split,
        test: data.Split) -> dict[str, Any]:
    """One judge trained with `setting` on top of `base`, seed `seed`: its accuracy, seconds and images trained."""
    fields = {f.name for f in dataclasses.fields(OcrConfig)}
    unknown = sorted(set(setting) - fields)
    if unknown:
        raise click.BadParameter(f"train_ocr has no {', '.join(unknown)}", param_hint="--setting")
    cfg = dataclasses.replace(base, **setting, seed=seed)
    _, result = ocr.train_judge(cfg, augment, train.images, train.labels, test.images, test.labels, progress=False)
    return {"setting": setting, "seed": seed, "test_accuracy": round(result["test_accuracy"], 5),
            "train_seconds": round(result["train_seconds"], 1), "images_trained": result["images_trained"],
            "precision": result["precision"]}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: setting, seed, test top-1, seconds, images trained (passes over the data)."""
    return markdown(["setting", "seed", "test top-1", "train s", "images trained"],
                    [[setting_text(r["setting"]), r["seed"], f"{100 * r['test_accuracy']:.2f} %", r["train_seconds"],
                      f"{r['images_trained']:,}"] for r in rows])


@click.command()
@click.option("--setting", "settings", multiple=True, help="KEY=VALUE[,...] of train_ocr (repeatable; none: params.yaml)")
@click.option("--seeds", default="0", show_default=True, help="comma-separated train_ocr.seed values")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--out", "out_dir", default="/tmp/judge_probe", show_default=True, type=click.Path(path_type=Path))
def main(settings: tuple[str, ...], seeds: str, params_path: str, out_dir: Path) -> None:
    params = load_params(params_path)
    info = device.cpu_info()
    click.echo(f"CPU: {info['model']}, {info['cores']} cores, native bf16: {info['native_bf16']}")
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for setting in [parse_setting(s, "train_ocr") for s in settings] or [{}]:
        for seed in (int(s) for s in seeds.split(",")):
            rows.append({**run(params.train_ocr, params.augment, setting, seed, train, test), "cpu": info["model"]})
            click.echo(json.dumps(rows[-1]))
            with open(out_dir / "judge_probe.jsonl", "a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
    click.echo(table(rows))


if __name__ == "__main__":
    main()
