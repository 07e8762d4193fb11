"""Sampling settings of one trained model against what gives its samples away: the CNN and tone C2STs, precision,
recall, legibility, OCR, judge FID and the pen, per setting (the sample stage's images, the evaluate stage's measures).

    python benchmarks/quality_tone.py --config "black point:tone_map=false" --config "tone map:" \
        --config "CFG 3:guidance_scale=3" --out benchmarks/results/quality_tone

Each --config is NAME:KEY=VALUE,... over params.yaml's `sample` section (empty: the section as it is). Each setting
draws the sample stage's 920 images (its labels and seeds; the tone map fitted as the stage fits it) and is measured
as the evaluate stage measures them; the C2STs' real-vs-real floors depend only on the real sets, so they are
measured with the first setting only. Rows are appended to rows.jsonl as they finish (a rerun skips names already
there); samples go to --samples (not the study folder).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import fields, replace
from pathlib import Path

import click
import numpy as np

from devagen.core import paths
from devagen.core.config import SampleConfig
from devagen.core.io import write_text
from devagen.core.params import Params, load_params, reads_guide
from devagen.data import prepared as data
from devagen.judges import c2st, legibility, ocr
from devagen.judges.evaluation import headline_quality
from devagen.judges.tone_c2st import tone_c2st_metrics
from devagen.sampling.folder import read_meta
from devagen.sampling.generate import fit_tone, sample_set
from devagen.sampling.pipeline import load_pipeline

COLUMNS = [("C2ST, CNN", "c2st"), ("C2ST, tone", "tone_c2st"), ("precision", "precision"), ("recall", "recall"),
           ("legible", "legible_share"), ("OCR", "ocr_accuracy"), ("judge FID", "fid"),
           ("stroke width", "stroke_width_ratio"), ("ink", "ink_mass_ratio"), ("minutes", "minutes")]


def parse_config(spec: str, base: SampleConfig) -> tuple[str, SampleConfig]:
    """'NAME:key=value,...' -> (NAME, base with those sample keys, typed as the dataclass's)."""
    name, _, rest = spec.partition(":")
    types = {f.name: type(getattr(base, f.name)) for f in fields(base)}
    changes = {}
    for pair in filter(None, rest.split(",")):
        key, _, value = pair.partition("=")
        if key not in types:
            raise click.BadParameter(f"{key!r} is not a sample key", param_hint="--config")
        changes[key] = value.lower() == "true" if types[key] is bool else types[key](value)
    return name, replace(base, **changes)


def cpu_name() -> str:
    """The CPU's model name as lscpu shows it (from /proc/cpuinfo; platform.processor() elsewhere)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def measure(name: str, cfg: SampleConfig, floor: bool, params: Params, sets: dict, samples_dir: Path,
            model_dir: Path = paths.DIFFUSION_DIR, classifier: Path = paths.NOISY_CLASSIFIER_DIR) -> dict:
    """One setting: its samples (saved), the evaluate stage's measures of them and the minutes they took to draw.
    classifier: the noisy classifier's folder, read when cfg.guidance is classifier."""
    start = time.perf_counter()
    pipe = load_pipeline(model_dir, cfg.sampler, cfg.use_ema, with_guide=reads_guide(cfg),
                         classifier=classifier if cfg.guidance == "classifier" else None)
    meta = read_meta(model_dir)
    pipe.tone = fit_tone(pipe, meta, cfg, sets["train"].images) if cfg.tone_map else None
    images, labels, _ = sample_set(pipe, meta, cfg, progress=False)
    minutes = (time.perf_counter() - start) / 60
    samples_dir.mkdir(parents=True, exist_ok=True)
    np.savez(samples_dir / f"{name.replace(' ', '_')}.npz", images=images, labels=labels)
    train, test = sets["train"], sets["test"]
    row = {"name": name, "minutes": round(minutes, 2), "cpu": cpu_name(),
           **headline_quality(sets["judge"], sets["ood"], images, labels, test, params.evaluate)}
    cnn = c2st.c2st_metrics(images, labels, train.images, train.labels, test.images, test.labels, params.c2st, floor)
    tone = tone_c2st_metrics(images, labels, train.images, train.labels, test.images, test.labels, params.c2st, floor)
    row.update(c2st=cnn["accuracy"], floor_c2st=cnn["floor_accuracy"], tone_c2st=tone["accuracy"],
               floor_tone_c2st=tone["floor_accuracy"], sample={f.name: getattr(cfg, f.name) for f in fields(cfg)})
    return row


def table(rows: list[dict]) -> str:
    """The study's Markdown table: one row per setting, the floors in a last row."""
    def cell(value: object) -> str:
        return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
    lines = ["| setting | " + " | ".join(label for label, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += ["| " + r["name"] + " | " + " | ".join(cell(r.get(key)) for _, key in COLUMNS) + " |" for r in rows]
    floors = next((r for r in rows if r.get("floor_c2st") is not None), None)
    if floors:
        lines.append(f"| real vs real (floor) | {cell(floors['floor_c2st'])} | {cell(floors['floor_tone_c2st'])} |"
                     + " |" * (len(COLUMNS) - 2))
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--config", "configs", multiple=True, required=True, help="NAME:KEY=VALUE,... (sample keys)")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("benchmarks/results/quality_tone"), show_default=True)
@click.option("--samples", "samples_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/tmp/quality_tone"), show_default=True)
def main(configs: tuple[str, ...], params_path: str, out: Path, samples_dir: Path) -> None:
    """Measure each setting in turn; rows.jsonl and table.md in --out."""
    params = load_params(Path(params_path))
    sets = {"train": data.load_split(paths.TRAIN_NPZ), "test": data.load_split(paths.TEST_NPZ),
            "judge": ocr.load_judge(paths.OCR_DIR), "ood": legibility.load_ood(paths.OCR_DIR)}
    out.mkdir(parents=True, exist_ok=True)
    log = out / "rows.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    for spec in configs:
        name, cfg = parse_config(spec, params.sample)
        if any(r["name"] == name for r in rows):
            continue
        rows.append(measure(name, cfg, not any(r.get("floor_c2st") is not None for r in rows), params, sets,
                            samples_dir))
        with log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rows[-1]) + "\n")
        click.echo(table(rows[-1:]).splitlines()[2])
    write_text(table(rows), out / "table.md")
    click.echo(table(rows))


if __name__ == "__main__":
    main()
