"""GPU runs: the source document's seed configuration against our recommended GPU configuration.

    python benchmarks/gpu_runs.py --out benchmarks/results/gpu

Each configuration is params.yaml plus the overrides below (the seed's are README's `dvc exp run -n
seed-gpu` line). Each runs the real `devagen train`, `sample` and `evaluate` stages in a work folder of
its own under --work, with data/prepared and models/ocr linked from this checkout (run `dvc repro
train_ocr` first). The script then writes one row per configuration (img/s, wall time, share of the
GPU's measured matmul peak, OCR accuracy, FID in judge features) to <out>/gpu_runs.{json,md}, with
each run's sample grid.

Share of peak = training FLOP per image (forward + backward counted by torch's FlopCounterMode on
this model) × img/s ÷ the dense fp16/bf16 matmul rate measured here on an 8192³ product.

--set KEY=VALUE (repeatable) overrides every configuration, e.g. for a smoke test on CPU:
    python benchmarks/gpu_runs.py --set model.preset=tiny --set train.max_steps=4 ...
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from devagen.core import paths
from devagen.core.params import Params
from devagen.core.shape import ModelConfig
from devagen.core.params import params_from_dict
from devagen.diffusion.unet import build_unet

REPO = Path(__file__).resolve().parents[1]

SEED = {  # the source document's setup (README: dvc exp run -n seed-gpu ...)
    "model.preset": "seed", "model.conditional": False, "model.style_conditioning": False,
    "model.layout_conditioning": False, "model.scale_shift": False,
    "train.epochs": 2, "train.max_steps": 0, "train.batch_size": 32, "train.lr": 1e-4, "train.warmup_steps": 500,
    "train.mixed_precision": "fp16", "train.ema_decay": 0.0, "train.augment": False,
    "diffusion.beta_schedule": "linear", "diffusion.prediction_type": "epsilon", "diffusion.min_snr_gamma": 0.0,
    "sample.sampler": "dpmpp", "sample.steps": 50, "sample.guidance_scale": 1.0, "sample.autoguidance_scale": 1.0,
    "sample.count": 920,
}
RECOMMENDED = {  # same network, class-conditional with CFG, v-prediction/cosine/min-SNR, bigger batch, bf16
    "model.preset": "seed", "model.conditional": True, "model.layout_conditioning": False,  # measured before it
    "train.epochs": 2, "train.max_steps": 0, "train.batch_size": 128, "train.lr": 3e-4, "train.warmup_steps": 200,
    "train.mixed_precision": "bf16", "train.ema_decay": 0.998, "train.augment": False,
    "diffusion.beta_schedule": "cosine", "diffusion.prediction_type": "v_prediction", "diffusion.min_snr_gamma": 5.0,
    "sample.sampler": "dpmpp", "sample.steps": 20, "sample.guidance_scale": 3.0, "sample.autoguidance_scale": 1.0,
    "sample.per_class": 20,
}
CONFIGS = {"seed": SEED, "recommended": RECOMMENDED}
COMMON = {"tracking.enabled": False, "train.checkpoint_every": 10**6}  # no MLflow store, no mid-run checkpoints


def apply(raw: dict, overrides: dict) -> dict:
    """params mapping with `section.key` overrides applied (validated later by params_from_dict)."""
    raw = json.loads(json.dumps(raw))
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    return raw


def parse_set(items: tuple[str, ...]) -> dict:
    """('a.b=1', ...) -> {'a.b': 1}, values parsed as YAML scalars."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise click.BadParameter(f"{item!r}: expected SECTION.KEY=VALUE", param_hint="--set")
        out[key] = yaml.safe_load(value)
    return out


def matmul_peak(dtype: torch.dtype, n: int = 8192, reps: int = 10) -> float | None:
    """Dense matmul TFLOP/s measured on this GPU (mean of `reps` after 3 warm-ups); None without CUDA."""
    if not torch.cuda.is_available():
        return None
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def train_flop_per_image(model_cfg: ModelConfig, image_size: int, batch: int = 8) -> float:
    """Forward + backward FLOP of one training image of this UNet (FlopCounterMode, on CPU)."""
    unet = build_unet(model_cfg, image_size)
    x = torch.randn(batch, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)  # patches too
    t = torch.randint(0, 1000, (batch,))
    labels = torch.zeros(batch, dtype=torch.long) if model_cfg.conditional else None
    with FlopCounterMode(display=False) as counter:
        unet(x, t, class_labels=labels).sample.float().pow(2).mean().backward()
    return counter.get_total_flops() / batch


def run_config(name: str, raw: dict, work: Path, log) -> dict:  # type: ignore[no-untyped-def]
    """Stages train/sample/evaluate in work/<name>; their whole results (reports/details/) merged with wall times."""
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / paths.PREPARED_DIR).parent.mkdir(parents=True)
    (folder / paths.OCR_DIR).parent.mkdir(parents=True)
    os.symlink(REPO / paths.PREPARED_DIR, folder / paths.PREPARED_DIR)
    os.symlink(REPO / paths.OCR_DIR, folder / paths.OCR_DIR)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    out: dict = {"config": name}
    for stage in ("train", "sample", "evaluate"):
        start = time.perf_counter()
        log(f"== {name}: {stage}")
        done = subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py")], cwd=folder, env=env)
        out[f"{stage}_wall_s"] = time.perf_counter() - start
        if done.returncode:
            out["failed"] = stage
            return out
    for metric in ("train", "sample", "eval"):
        file = folder / paths.DETAILS_DIR / f"{metric}.json"
        if file.is_file():
            out[metric] = json.loads(file.read_text(encoding="utf-8"))
    return out


def row(result: dict, params: Params, flop: float, peaks: dict) -> dict:
    """The table row of one configuration."""
    train, sample, ev = result.get("train", {}), result.get("sample", {}), result.get("eval", {})
    dtype = params.train.mixed_precision if params.train.mixed_precision in ("fp16", "bf16") else None
    peak = peaks.get(dtype) if dtype else None
    img_s = train.get("img_per_s")
    return {
        "config": result["config"], "preset": params.model.preset, "conditional": params.model.conditional,
        "batch": params.train.batch_size, "mixed_precision": params.train.mixed_precision, "steps": train.get("steps"),
        "epochs": train.get("epochs"), "img_per_s": img_s, "train_min": train["wall_s"] / 60 if "wall_s" in train else None,
        "train_tflop_per_s": img_s * flop / 1e12 if img_s else None,
        "peak_tflop_per_s": peak, "peak_pct": 100 * img_s * flop / 1e12 / peak if img_s and peak else None,
        "sampler": f"{params.sample.sampler} {params.sample.steps} steps, CFG {params.sample.guidance_scale:g}",
        "sample_img_per_s": sample.get("images_per_s"), "n_generated": ev.get("n_generated"),
        "ocr_accuracy": ev.get("ocr_accuracy"), "legible": ev.get("legible_share"), "class_coverage": ev.get("class_coverage"),
        "fid_judge": ev.get("fid"), "floor_fid": ev.get("floor_fid"), "kid": ev.get("kid"),
        "precision": ev.get("precision"), "recall": ev.get("recall"), "failed": result.get("failed"),
        "stage_wall_s": {k: round(v, 1) for k, v in result.items() if k.endswith("_wall_s")},
    }


def fmt(value, spec: str = ".3g") -> str:  # type: ignore[no-untyped-def]
    """A number in the table, or a dash where the run has none."""
    return "—" if value is None else format(value, spec)


def markdown(rows: list[dict], note: str) -> str:
    """The results table as Markdown."""
    head = ("| config | UNet | batch, precision | steps (epochs) | img/s | train min | TFLOP/s (% of peak) | "
            "sampler | sample img/s | OCR acc. | legible | FID (judge) [floor] | precision / recall |")
    lines = [note, "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        ocr = fmt(r["ocr_accuracy"] and 100 * r["ocr_accuracy"], ".1f") + (" %" if r["ocr_accuracy"] is not None else "")
        legible = fmt(r["legible"] and 100 * r["legible"], ".1f") + (" %" if r["legible"] is not None else "")
        kind = "conditional" if r["conditional"] else "unconditional"
        lines.append(
            f"| {r['config']}{' (failed at ' + r['failed'] + ')' if r['failed'] else ''} | {r['preset']}, {kind} | "
            f"{r['batch']}, {r['mixed_precision']} | {fmt(r['steps'], 'd')} ({fmt(r['epochs'], '.2f')}) | "
            f"{fmt(r['img_per_s'], '.0f')} | {fmt(r['train_min'], '.1f')} | {fmt(r['train_tflop_per_s'], '.1f')} "
            f"({fmt(r['peak_pct'], '.1f')} %) | {r['sampler']} | {fmt(r['sample_img_per_s'], '.0f')} | {ocr} | "
            f"{legible} | {fmt(r['fid_judge'], '.2f')} [{fmt(r['floor_fid'], '.2f')}] | "
            f"{fmt(r['precision'], '.2f')} / {fmt(r['recall'], '.2f')} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--configs", default="seed,recommended", show_default=True, help="comma-separated: " + ", ".join(CONFIGS))
@click.option("--set", "sets", multiple=True, help="SECTION.KEY=VALUE applied to every configuration")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("benchmarks/results/gpu"),
              show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("/tmp/devagen-gpu-runs"),
              show_default=True, help="scratch folder for the runs' models and samples")
def main(configs: str, sets: tuple[str, ...], out: Path, work: Path) -> None:
    """Train, sample and evaluate each configuration; write gpu_runs.json/.md and sample grids to --out."""
    names = [c.strip() for c in configs.split(",") if c.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; choose from {list(CONFIGS)}", param_hint="--configs")
    for needed in (paths.TRAIN_NPZ, paths.TEST_NPZ, paths.OCR_DIR):
        if not (REPO / needed).exists():
            raise click.ClickException(f"{needed}: missing; run `dvc repro train_ocr` first")
    base = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    extra = parse_set(sets)
    out.mkdir(parents=True, exist_ok=True)
    peaks = {"fp16": matmul_peak(torch.float16), "bf16": matmul_peak(torch.bfloat16)}
    click.echo(f"measured dense matmul peak TFLOP/s: {peaks}")
    rows = []
    for name in names:
        raw = apply(base, {**CONFIGS[name], **COMMON, **extra})
        params = params_from_dict(raw)  # fail here, before any training, on a bad override
        flop = train_flop_per_image(params.model, params.prepare.image_size)
        click.echo(f"{name}: {flop / 1e9:.2f} GFLOP per training image (forward + backward)")
        result = run_config(name, raw, work, click.echo)
        rows.append(row(result, params, flop, peaks))
        grid = work / name / paths.FIGURES_DIR / "samples.png"
        if grid.is_file():
            shutil.copy(grid, out / f"{name}_samples.png")
        (out / "gpu_runs.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")  # after each config
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    note = (f"{datetime.date.today().isoformat()}, {device}, torch {torch.__version__}; "
            f"measured dense matmul peak fp16 {fmt(peaks['fp16'], '.0f')} / bf16 {fmt(peaks['bf16'], '.0f')} TFLOP/s"
            + (f"; overrides {extra}" if extra else ""))
    (out / "gpu_runs.md").write_text(markdown(rows, note), encoding="utf-8")
    click.echo(markdown(rows, note))


if __name__ == "__main__":
    main()
