"""Guidance against pen style: which guidance keeps strokes as wide as real handwriting and stays legible.

    python benchmarks/guidance_style.py --configs cpu_default,gpu_recommended --out benchmarks/results/guidance

For each configuration (params.yaml plus the overrides below) the script trains the model in-process
with `devagen.training.loop.train_diffusion`, keeping checkpoints every `--snapshot-every` steps so that
the EMA weights at several early steps can serve as autoguidance guides. It then samples the same
labels (`sample.per_class` per class) under each guidance setting and measures, against the real
test split: OCR accuracy (the judge), the style ratios of `devagen.pen.measures` (stroke width, ink mass,
ink coverage; median over classes of generated/real medians) and FID in judge features. The real
images compared with are a random draw of the same per-class size (style.disjoint_real_sets), so the
floor column is what real handwriting scores against itself.

Outputs in --out: guidance_style.json (every row), guidance_style.md (the table), samples.npz (the
images of every setting, for looking at 4x zoom) and one sample grid per configuration for its
CFG-3 and best autoguidance settings beside random real images.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from pathlib import Path

import click
import numpy as np
import torch
import yaml
from accelerate.state import AcceleratorState
from diffusers import UNet2DModel

from devagen.core.classes import glyphs
from devagen.core.params import Params
from devagen.core.params import params_from_dict
from devagen.data import prepared as data
from devagen.judges import metrics, ocr
from devagen.pen import measures as style
from devagen.report.figures import save_image
from devagen.sampling.generate import generate, samples_figure
from devagen.sampling.pipeline import load_pipeline
from devagen.sampling.samplers import COMMON_OPTIONS, SAMPLER_CLASSES, SAMPLER_OPTIONS
from devagen.training.loop import train_diffusion

REPO = Path(__file__).resolve().parents[1]
GPU_RECOMMENDED = {  # README's recommended GPU configuration
    "model.preset": "seed", "model.conditional": True,
    "train.epochs": 2, "train.max_steps": 0, "train.batch_size": 128, "train.lr": 3e-4, "train.warmup_steps": 200,
    "train.mixed_precision": "bf16", "train.ema_decay": 0.998, "train.augment": False,
    "diffusion.beta_schedule": "cosine", "diffusion.prediction_type": "v_prediction", "diffusion.min_snr_gamma": 5.0,
    "sample.steps": 20,
}
CONFIGS = {"cpu_default": {"train.mixed_precision": "no"},  # as on a CPU: fp32
           "cpu_no_min_snr": {"train.mixed_precision": "no", "diffusion.min_snr_gamma": 0.0},
           "cpu_eps": {"train.mixed_precision": "no", "diffusion.prediction_type": "epsilon"},
           "gpu_recommended": GPU_RECOMMENDED}
# Each setting: guidance kind and scale, timestep interval, autoguidance guide (EMA snapshot nearest this
# fraction of the run), and sampler overrides (sampler, steps, EMA or raw weights, scheduler options).
# Most informative first: settings past --budget-s are skipped.
def _s(guidance: str = "cfg", scale: float = 1.0, interval: tuple = (0, 1000), guide: float | None = None,
       sampler: str | None = None, steps: int | None = None, ema: bool = True, parallel: float = 1.0,
       **scheduler) -> dict:
    return {"guidance": guidance, "scale": scale, "interval": interval, "guide": guide, "sampler": sampler,
            "steps": steps, "ema": ema, "parallel": parallel, "scheduler": scheduler}


SWEEPS = {
    "guidance": [
        _s("cfg", 3), _s("autoguidance", 2, guide=0.25), _s("autoguidance", 3, guide=0.25), _s("cfg", 1),
        _s("autoguidance", 2, guide=0.125), _s("autoguidance", 2, guide=0.5), _s("autoguidance", 3, guide=0.125),
        _s("autoguidance", 3, guide=0.5), _s("cfg", 2), _s("cfg", 3, (0, 600)), _s("cfg", 5, (0, 600)),
        _s("cfg", 3, (300, 1000)),
    ],
    # Is the unguided model's extra boldness the few-step ODE sampler's, the clipping's or the EMA's?
    "samplers": [
        _s("cfg", 1), _s("cfg", 1, thresholding=False), _s("cfg", 1, steps=50), _s("cfg", 1, sampler="ddpm", steps=100),
        _s("cfg", 1, steps=20, algorithm_type="sde-dpmsolver++"), _s("cfg", 1, ema=False), _s("cfg", 3),
        _s("cfg", 3, thresholding=False), _s("cfg", 3, sampler="ddpm", steps=100),
        _s("cfg", 3, steps=20, algorithm_type="sde-dpmsolver++"), _s("cfg", 3, ema=False),
        _s("cfg", 1, sampler="ddpm", steps=250),
    ],
    # The CPU default's choice: the stochastic sampler at lower guidance scales, and projected guidance.
    "cpu_choice": [
        _s("cfg", 3, sampler="sde-dpmpp", steps=20), _s("cfg", 3, sampler="sde-dpmpp", steps=20, parallel=0.0),
        _s("cfg", 2, sampler="sde-dpmpp", steps=20), _s("cfg", 4, sampler="sde-dpmpp", steps=20, parallel=0.0),
        _s("cfg", 2.5, sampler="sde-dpmpp", steps=20), _s("cfg", 3), _s("cfg", 1.5, sampler="sde-dpmpp", steps=20),
        _s("cfg", 3, sampler="sde-dpmpp", steps=10), _s("cfg", 1, sampler="sde-dpmpp", steps=20),
    ],
}
STYLE_KEYS = ("stroke_width", "ink_mass", "ink_coverage", "edge_softness")


def config_params(name: str, overrides: dict, snapshot_every: int) -> Params:
    """params.yaml + the configuration's overrides + --set overrides, validated."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    every = {"tracking.enabled": False, "train.checkpoint_every": snapshot_every, "train.keep_checkpoints": 1000,
             "train.guide_step": 0}
    for dotted, value in {**CONFIGS[name], **every, **overrides}.items():
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    return params_from_dict(raw)


def ema_snapshot(checkpoint: Path, like: UNet2DModel) -> UNet2DModel:
    """The EMA weights stored in an accelerate checkpoint, as a UNet shaped like `like`."""
    net = UNet2DModel.from_config(like.config)
    shadow = torch.load(checkpoint / "custom_checkpoint_0.pkl", map_location="cpu", weights_only=False)["shadow_params"]
    with torch.no_grad():
        for param, value in zip(net.parameters(), shadow):
            param.copy_(value)
    return net.to(like.device).eval()


def nearest_checkpoint(directory: Path, step: int) -> tuple[int, Path]:
    """(step, path) of the checkpoint closest to `step`."""
    found = sorted((int(p.name.split("_")[1]), p) for p in directory.glob("step_*"))
    return min(found, key=lambda item: abs(item[0] - step))


def measure(images: np.ndarray, labels: np.ndarray, judge: ocr.Judge, test: data.Split, real_idx: np.ndarray,
            params: Params) -> dict:
    """OCR accuracy, style ratios vs the real draw, judge FID."""
    probs = ocr.predict_proba(judge, images)
    got = style.compare(images, labels, test.images[real_idx], test.labels[real_idx])
    out = {"ocr_accuracy": metrics.ocr_accuracy(probs, labels)["accuracy"]}
    out.update({f"{k}_ratio": got[k]["ratio_median"] for k in STYLE_KEYS})
    out["stroke_width_wasserstein"] = got["stroke_width"]["wasserstein_median"]
    out["fid_judge"] = metrics.judge_feature_metrics(judge, images, test.images, params.evaluate)["fid"]
    return out


def run_config(name: str, params: Params, train: data.Split, test: data.Split, judge: ocr.Judge, work: Path,
               sweep: list[dict], deadline: float, say, reuse: bool = False) -> tuple[list[dict], dict]:  # type: ignore[no-untyped-def]
    """Train one configuration (or, with reuse, take work/<name>/model as it is), then each guidance setting
    until `deadline` (perf_counter); returns (rows, {key: images})."""
    folder = work / name
    if reuse and (folder / "model" / "devagen.json").is_file():
        result = {"steps": params.train.max_steps}
        say(f"{name}: reusing the model in {folder / 'model'}")
    else:
        AcceleratorState._reset_state()  # each configuration sets its own mixed precision in this one process
        start = time.perf_counter()
        result = train_diffusion(params.train, params.model, params.diffusion, params.augment, train.images,
                                 train.labels, folder / "model", folder / "checkpoints", progress=False)
        say(f"{name}: trained {result['steps']} steps in {time.perf_counter() - start:.0f} s "
            f"({result['img_per_s']:.0f} img/s on {result['device']})")
    pipes = {True: load_pipeline(folder / "model", params.sample.sampler),
             False: load_pipeline(folder / "model", params.sample.sampler, use_ema=False)}
    ddpm_config = dict(pipes[True].scheduler.config)
    labels = np.repeat(np.arange(46), params.sample.per_class)
    real_a, real_b = style.disjoint_real_sets(test.labels, labels, seed=0)
    floor = style.compare(test.images[real_a], test.labels[real_a], test.images[real_b], test.labels[real_b])
    rows, images_by = [], {}
    say(f"{name}: real floor stroke width {floor['stroke_width']['ratio_median']:.3f}, "
        f"ink mass {floor['ink_mass']['ratio_median']:.3f}")
    for setting in sweep:
        if time.perf_counter() > deadline:
            say(f"{name}: time budget spent, the remaining settings are skipped")
            break
        pipe, guide_step = pipes[setting["ema"]], None
        sampler = setting["sampler"] or params.sample.sampler
        options = {**COMMON_OPTIONS, **SAMPLER_OPTIONS[sampler], **setting["scheduler"]}
        pipe.scheduler = SAMPLER_CLASSES[sampler].from_config(ddpm_config, **options)
        if setting["guide"] is not None:
            guide_step, path = nearest_checkpoint(folder / "checkpoints", int(setting["guide"] * result["steps"]))
            pipe.register_modules(guide=ema_snapshot(path, pipe.unet))
        lo, hi = setting["interval"]
        cfg = dataclasses.replace(params.sample, guidance=setting["guidance"], guidance_scale=setting["scale"],
                                  guidance_t_min=lo, guidance_t_max=hi, steps=setting["steps"] or params.sample.steps,
                                  guidance_parallel=setting["parallel"])
        described = {"guidance": setting["guidance"], "scale": setting["scale"], "parallel": setting["parallel"],
                     "interval": [lo, hi],
                     "guide_step": guide_step, "sampler": sampler, "steps": cfg.steps, "ema": setting["ema"],
                     "scheduler": setting["scheduler"]}
        key = f"{name}_{len(rows)}"  # the images' name in samples_<config>.npz
        t0 = time.perf_counter()
        images = generate(pipe, labels, len(labels), cfg, progress=False)
        row = {"config": name, "images_key": key, **described, "sample_s": time.perf_counter() - t0, "n": len(images),
               **measure(images, labels, judge, test, real_b, params)}
        rows.append(row)
        images_by[key] = images
        say(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    for row in rows:
        row["floor_stroke_width_ratio"] = floor["stroke_width"]["ratio_median"]
        row["floor_ink_mass_ratio"] = floor["ink_mass"]["ratio_median"]
    return rows, images_by


def markdown(rows: list[dict], note: str) -> str:
    """The results as one Markdown table."""
    head = ("| config | sampler, steps | guidance | scale | interval (t) | guide step | OCR acc. | stroke width | "
            "ink mass | ink coverage | edge softness | width W1 (px) | FID (judge) |")
    lines = [note, "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['sampler']} {r['steps']}{'' if r['ema'] else ', raw weights'}"
            f"{'' if r.get('parallel', 1.0) == 1.0 else ', parallel ' + format(r['parallel'], 'g')}"
            f"{''.join(f', {k}={v}' for k, v in r['scheduler'].items())} | {r['guidance']} | {r['scale']:g} | {r['interval'][0]}–{r['interval'][1]} | "
            f"{r['guide_step'] or '—'} | {100 * r['ocr_accuracy']:.1f} % | {r['stroke_width_ratio']:.3f} | "
            f"{r['ink_mass_ratio']:.3f} | {r['ink_coverage_ratio']:.3f} | {r['edge_softness_ratio']:.3f} | "
            f"{r['stroke_width_wasserstein']:.2f} | {r['fid_judge']:.2f} |")
    return "\n".join(lines) + "\n"


def random_real(test: data.Split, per_class: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Up to per_class real test images of every class, drawn at random (seeded), grouped by class."""
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.permutation(np.flatnonzero(test.labels == c))[:per_class] for c in range(46)])
    return test.images[idx], test.labels[idx]


@click.command()
@click.option("--configs", default="cpu_default,gpu_recommended", show_default=True)
@click.option("--set", "sets", multiple=True, help="SECTION.KEY=VALUE for every configuration (smoke tests)")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=REPO / "data" / "prepared",
              show_default=True, help="folder with train.npz and test.npz (prepare's format)")
@click.option("--judge", "judge_dir", type=click.Path(path_type=Path), default=None,
              help="trained judge folder (default: train one with params.yaml's train_ocr)")
@click.option("--snapshot-every", type=int, default=None, help="checkpoint interval (default: 1/8 of the run)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=REPO / "benchmarks/results/guidance")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("/tmp/devagen-guidance"))
@click.option("--budget-s", type=float, default=1e9, help="stop starting new settings after this many seconds")
@click.option("--sweep", type=click.Choice(list(SWEEPS)), default="guidance", show_default=True)
@click.option("--reuse", is_flag=True, help="use <work>/<config>/model where it exists instead of training")
def main(configs: str, sets: tuple[str, ...], data_dir: Path, judge_dir: Path | None, snapshot_every: int | None,
         out: Path, work: Path, budget_s: float, sweep: str, reuse: bool) -> None:
    """Train each configuration, sweep guidance settings, write the table, images and grids to --out."""
    deadline = time.perf_counter() + budget_s
    torch.backends.cuda.matmul.allow_tf32 = True  # sampling runs in fp32; TF32 matmuls as cuDNN's convs already use
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "progress.log", "a", encoding="utf-8")

    def say(msg: str) -> None:
        click.echo(msg)
        log.write(msg + "\n")
        log.flush()

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in sets)}
    train, test = data.load_split(data_dir / "train.npz"), data.load_split(data_dir / "test.npz")
    base = config_params("cpu_default", overrides, 1)
    if judge_dir is not None and judge_dir.exists():
        judge = ocr.load_judge(judge_dir)
    else:
        t0 = time.perf_counter()
        judge, result = ocr.train_judge(base.train_ocr, base.augment, train.images, train.labels, test.images,
                                        test.labels, progress=False)
        say(f"judge: test top-1 {result['test_accuracy']:.4f} in {time.perf_counter() - t0:.0f} s")
    judge = judge.to("cuda" if torch.cuda.is_available() else "cpu")
    rows, images = [], {}
    for name in [c.strip() for c in configs.split(",") if c.strip()]:
        probe = config_params(name, overrides, 1)
        steps = probe.train.max_steps or int(np.ceil(probe.train.epochs * len(train.images) / probe.train.batch_size))
        params = config_params(name, overrides, snapshot_every or max(1, steps // 8))
        got, imgs = run_config(name, params, train, test, judge, work, SWEEPS[sweep], deadline, say, reuse)
        rows += got
        images.update(imgs)
        (out / "guidance_style.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
        np.savez_compressed(out / f"samples_{name}.npz", **imgs)
        labels = np.repeat(np.arange(46), params.sample.per_class)
        for tag, row in (("first", got[0] if got else None), ("closest", min(got, default=None, key=lambda r: abs(r["stroke_width_ratio"] - 1) - r["ocr_accuracy"]))):
            if row is not None:
                save_image(samples_figure(imgs[row["images_key"]], labels, glyphs(), real=random_real(test, params.sample.per_class)),
                           out / f"{name}_{tag}.png")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    note = f"{datetime.date.today().isoformat()}, {device}, torch {torch.__version__}" + (f"; overrides {overrides}" if overrides else "")
    (out / "guidance_style.md").write_text(markdown(rows, note), encoding="utf-8")
    say(markdown(rows, note))


if __name__ == "__main__":
    main()
