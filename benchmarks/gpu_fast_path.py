"""GPU fast path (issue 11): img/s and share of peak eager vs compiled, ours vs the plain loop, time to quality.

    python benchmarks/gpu_fast_path.py --out benchmarks/results/gpu_fast_path --budget-s 520

One process, parts in the order of what they decide, each skipped (and said so) when the time left in
--budget-s cannot hold its estimate; results.json and results.md are rewritten after every part.

1. Time to quality. README's recommended GPU configuration (benchmarks/gpu_runs.RECOMMENDED) at a large
   batch (--ttq KEY=VALUE overrides: batch, lr, warm-up, steps, compile) is trained once by the real
   `train_diffusion`. Every --snapshot-every steps the EMA weights are copied on the device (a device copy,
   timed and subtracted). After training, each snapshot from --eval-from on is sampled like the sample stage
   (20 per class, the configuration's sampler and guidance) and judged like the evaluate stage (OCR
   accuracy, FID in judge features against the test split, its real floor, legibility, precision/recall)
   and by devagen.pen.measures's stroke-width and ink ratios. Training time at a snapshot = wall time since the
   loop's first step minus snapshot copies minus the warm-up (set-up + compilation: the first logged
   window's excess over the steady step time), reported apart.
2. Eager throughput of that UNet at --batches, bf16: img/s, TFLOP/s and % of the matmul peak measured here.
3. The source document's own setting (its UNet, unconditional, batch 32, fp16): the plain PNG DataLoader
   loop of train_throughput.py against our loop eager and compiled (--small-batch-compile).
4. Compiled throughput (--compile) at --batches.

img/s is read from the loop's own log lines (every --log-every steps, the loop's one host sync), over the
steps after the first logged window. Share of peak = training FLOP per image (forward + backward,
FlopCounterMode) x img/s / the dense bf16 (fp16 for part 3) matmul rate measured on an 8192^3 product.

On CPU (a smoke test) pass --compile off --small-batch-compile off and a tiny model via --set.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional
from unittest import mock

import click
import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_runs  # noqa: E402  (sibling script: the README's GPU configurations)
import train_throughput  # noqa: E402  (sibling script: the plain loop)

from devagen.core.classes import glyphs  # noqa: E402
from devagen.core.params import Params
from devagen.core.shape import ModelConfig
from devagen.core.params import params_from_dict  # noqa: E402
from devagen.data import prepared as data
from devagen.diffusion.unet import build_unet, condition, style_codes  # noqa: E402
from devagen.judges import legibility, ocr
from devagen.judges.evaluation import evaluate_samples, style_evaluation  # noqa: E402
from devagen.report.figures import save_image  # noqa: E402
from devagen.sampling.generate import generate  # noqa: E402
from devagen.sampling.pipeline import load_pipeline  # noqa: E402
from devagen.training import loop as training  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BAR = {"ocr_accuracy": 0.98, "fid": 1.5}  # issue 11's quality bar (style targets reported beside it)
TTQ = {  # the large-batch recipe: README's recommended configuration at batch 512, lr scaled by sqrt(512/128)
    "train.batch_size": 512, "train.lr": 6e-4, "train.warmup_steps": 50, "train.max_steps": 600,
    "train.compile": "default",
}


class Budget:
    """Seconds left before --budget-s runs out; parts that would not fit are skipped."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def sync() -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def flop_per_image(model_cfg: ModelConfig, image_size: int, batch: int = 4) -> float:
    """Forward + backward FLOP of one training image of this UNet (FlopCounterMode, on CPU)."""
    unet = build_unet(model_cfg, image_size)
    x, t = torch.randn(batch, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size), \
        torch.randint(0, 1000, (batch,))  # a patch preset takes patches
    labels = torch.zeros(batch, dtype=torch.long) if model_cfg.conditional else None
    if model_cfg.style_conditioning:
        labels = condition(labels, torch.zeros(batch, style_codes(unet)))
    with FlopCounterMode(display=False) as counter:
        unet(x, t, class_labels=labels).sample.float().pow(2).mean().backward()
    return counter.get_total_flops() / batch


@dataclasses.dataclass
class Trained:
    """What one timed train_diffusion run left: log times, EMA snapshots, the saved model."""

    batch: int
    stamps: dict[int, float]  # step -> seconds since the loop began, snapshot copies subtracted
    snapshots: dict[int, list[torch.Tensor]]
    model_dir: Path
    result: dict

    def steady_step_s(self) -> float:
        """Seconds per step after the first logged window (the warm-up: set-up, compilation, autotuning)."""
        steps = sorted(self.stamps)
        if len(steps) < 2:
            raise click.ClickException("a timed run needs at least two log lines (raise steps or lower --log-every)")
        return (self.stamps[steps[-1]] - self.stamps[steps[0]]) / (steps[-1] - steps[0])

    def img_per_s(self) -> float:
        return self.batch / self.steady_step_s()

    def warmup_s(self) -> float:
        """The first window's time beyond what its steps take at the steady rate."""
        first = min(self.stamps)
        return self.stamps[first] - first * self.steady_step_s()

    def train_s(self, step: int) -> float:
        """Training time to `step`, warm-up excluded."""
        return self.stamps[step] - self.warmup_s()


def timed_train(params: Params, split: data.Split, work: Path, log_every: int, snapshot_every: int = 0) -> Trained:
    """Run the real train_diffusion with params (no checkpoints, no tracking); time each log line, keep snapshots."""
    cfg = dataclasses.replace(params.train, log_every=log_every, checkpoint_every=10**9)
    captured: dict[str, Any] = {}
    stamps: dict[int, float] = {}
    snapshots: dict[int, list[torch.Tensor]] = {}
    copying = [0.0]

    def setup(*args: Any, **kwargs: Any) -> Any:
        captured["run"] = run = real_setup(*args, **kwargs)
        sync()
        captured["t0"] = time.perf_counter()
        return run

    def on_log(stats: dict, step: int) -> None:
        sync()
        now = time.perf_counter()
        stamps[step] = now - captured["t0"] - copying[0]
        if snapshot_every and step % snapshot_every == 0:
            run = captured["run"]
            source = run.ema.shadow_params if run.ema is not None else list(run.model.parameters())
            snapshots[step] = [p.detach().clone() for p in source]
            sync()
            copying[0] += time.perf_counter() - now

    real_setup = training._setup
    model_dir = Path(tempfile.mkdtemp(prefix="model-", dir=work))
    with mock.patch.object(training, "_setup", setup):
        result = training.train_diffusion(cfg, params.model, params.diffusion, params.augment, split.images,
                                          split.labels, model_dir, model_dir / "checkpoints", log_fn=on_log,
                                          progress=False, pen=split.pen if params.model.style_conditioning else None)
    captured.clear()
    return Trained(cfg.batch_size, stamps, snapshots, model_dir, result)


def judge_snapshot(trained: Trained, step: int, params: Params, judge: ocr.Judge, ood: legibility.OodStats,
                   train: data.Split, test: data.Split) -> tuple[dict, Any]:
    """Sample the snapshot like the sample stage (per_class of each class) and judge it like the evaluate stage."""
    pipe = load_pipeline(trained.model_dir, params.sample.sampler, True)
    with torch.no_grad():
        for p, w in zip(pipe.unet.parameters(), trained.snapshots[step], strict=True):
            p.copy_(w)
    labels = np.repeat(np.arange(len(np.unique(test.labels)), dtype=np.int64), params.sample.per_class)
    start = time.perf_counter()
    samples = generate(pipe, labels, len(labels), params.sample, progress=False)
    sample_s = time.perf_counter() - start
    ev = evaluate_samples(judge, ood, samples, labels, train.images, test.images, params.evaluate).metrics
    pen = style_evaluation(samples, labels, test.images, test.labels, glyphs(), params.evaluate.seed)
    keep = ("ocr_accuracy", "fid", "floor_fid", "legible_share", "floor_legible_share", "precision", "recall")
    row = {"step": step, "images_seen": step * trained.batch, "train_s": round(trained.train_s(step), 2),
           "sample_s": round(sample_s, 2), **{k: ev.get(k) for k in keep},
           "stroke_width_ratio": pen.metrics["style_stroke_width_ratio"],
           "ink_mass_ratio": pen.metrics["style_ink_mass_ratio"]}
    row["meets_bar"] = bool(row["ocr_accuracy"] is not None and row["ocr_accuracy"] >= BAR["ocr_accuracy"]
                            and row["fid"] <= BAR["fid"])
    return row, pen.figure


def throughput_row(name: str, trained: Trained, flop: float, peak: Optional[float], precision: str) -> dict:
    """img/s, TFLOP/s, % of peak and warm-up of one timed run."""
    img_s = trained.img_per_s()
    tflops = img_s * flop / 1e12
    return {"run": name, "batch": trained.batch, "precision": precision, "img_per_s": round(img_s, 1),
            "tflop_per_s": round(tflops, 2), "peak_pct": round(100 * tflops / peak, 2) if peak else None,
            "warmup_s": round(trained.warmup_s(), 1)}


def markdown(results: dict) -> str:
    """The result tables as Markdown."""
    out = [results["machine"], ""]
    rows = results.get("throughput", [])
    if rows:
        out += ["| run | batch | precision | img/s | TFLOP/s | % of peak | warm-up s |", "|---|---|---|---|---|---|---|"]
        out += [f"| {r['run']} | {r['batch']} | {r['precision']} | {r['img_per_s']} | {r['tflop_per_s']} | "
                f"{r['peak_pct']} | {r['warmup_s']} |" for r in rows]
    rows = results.get("source_doc", [])
    if rows:
        out += ["", "| source document's setting (batch 32, fp16) | img/s | ratio to plain |", "|---|---|---|"]
        base = rows[0]["img_per_s"]
        out += [f"| {r['run']} | {r['img_per_s']} | {r['img_per_s'] / base:.2f}x |" for r in rows]
    for ttq in results.get("time_to_quality", []):
        out += ["", f"Time to quality: {ttq['recipe']}; {ttq['img_per_s']} img/s steady, warm-up "
                    f"{ttq['warmup_s']} s apart; bar OCR >= {BAR['ocr_accuracy']:.0%}, FID <= {BAR['fid']}",
                "", "| step | images | train s | OCR | FID [floor] | legible | precision / recall | width | ink | bar |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in ttq["snapshots"]:
            out.append(f"| {r['step']} | {r['images_seen']} | {r['train_s']} | {100 * r['ocr_accuracy']:.1f} % | "
                       f"{r['fid']:.2f} [{r['floor_fid']:.2f}] | {100 * r['legible_share']:.1f} % | "
                       f"{r['precision']:.2f} / {r['recall']:.2f} | {r['stroke_width_ratio']:.2f}x | "
                       f"{r['ink_mass_ratio']:.2f}x | {'met' if r['meets_bar'] else '-'} |")
    out += [""] + [f"- skipped: {s}" for s in results.get("skipped", [])]
    out += [f"- failed: {s}" for s in results.get("failed", [])]
    return "\n".join(out) + "\n"


def parse_pairs(items: tuple[str, ...]) -> dict:
    """('a.b=1', ...) -> {'a.b': 1} (gpu_runs' --set syntax)."""
    return gpu_runs.parse_set(items)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--budget-s", type=float, default=520, show_default=True, help="stop starting parts after this")
@click.option("--set", "sets", multiple=True, help="SECTION.KEY=VALUE applied to every run (e.g. a tiny CPU smoke test)")
@click.option("--ttq", "ttq_sets", multiple=True, help="SECTION.KEY=VALUE for the time-to-quality recipe (over TTQ)")
@click.option("--ttq2", "ttq2_sets", multiple=True, help="a second recipe, run last if time is left (none: skipped)")
@click.option("--parts", default="ttq,eager,doc,compiled,ttq2", show_default=True, help="which parts to run")
@click.option("--snapshot-every", type=int, default=60, show_default=True)
@click.option("--eval-from", type=int, default=180, show_default=True, help="first snapshot step judged")
@click.option("--log-every", type=int, default=10, show_default=True)
@click.option("--batches", default="32,128,512,1024", show_default=True)
@click.option("--timed-steps", type=int, default=30, show_default=True, help="steps after the first window")
@click.option("--compile-batches", default="1024,128,32", show_default=True,
              help="part 4's batches (512 is measured compiled by part 1)")
@click.option("--compile", "compile_mode", default="default", show_default=True, help="part 4's mode (off skips it)")
@click.option("--small-batch-compile", default="reduce-overhead", show_default=True, help="part 3's compiled loop")
@click.option("--doc-preset", default="seed", show_default=True, help="part 3's UNet (the source document's: seed)")
@click.option("--plain-images", type=int, default=4096, show_default=True)
@click.option("--train", "train_npz", type=click.Path(exists=True, path_type=Path), default=REPO / "data/prepared/train.npz")
@click.option("--test", "test_npz", type=click.Path(exists=True, path_type=Path), default=REPO / "data/prepared/test.npz")
@click.option("--judge", "judge_dir", type=click.Path(exists=True, path_type=Path), default=REPO / "models/ocr")
def main(out: Path, budget_s: float, sets: tuple[str, ...], ttq_sets: tuple[str, ...], ttq2_sets: tuple[str, ...], parts: str,
         snapshot_every: int, eval_from: int, log_every: int, batches: str, timed_steps: int, compile_batches: str, compile_mode: str,
         small_batch_compile: str, doc_preset: str, plain_images: int, train_npz: Path, test_npz: Path, judge_dir: Path) -> None:
    """Measure the GPU fast path; write <out>/results.{json,md} and the 4x sample figure of each recipe."""
    if snapshot_every % log_every:
        raise click.BadParameter(f"{snapshot_every} is not a multiple of --log-every {log_every} (snapshots are "
                                 "taken at log lines)", param_hint="--snapshot-every")
    budget = Budget(budget_s)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="devagen-fast-path-"))
    base = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    common = {**gpu_runs.RECOMMENDED, **gpu_runs.COMMON, **parse_pairs(sets)}
    recommended = params_from_dict(gpu_runs.apply(base, common))
    train = data.load_split(train_npz)
    train = data.Split(train.images, train.labels, data.read_pen(train_npz, len(train.images)))
    test = data.load_split(test_npz)
    judge, ood = ocr.load_judge(judge_dir), legibility.load_ood(judge_dir)
    size = train.images.shape[-1]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or 'x86'})"
    peaks = {"bf16": gpu_runs.matmul_peak(torch.bfloat16), "fp16": gpu_runs.matmul_peak(torch.float16)}
    source_doc_model = ModelConfig(preset=doc_preset, conditional=False, style_conditioning=False, scale_shift=False)
    flop = {"recommended": flop_per_image(recommended.model, size), "source_doc": flop_per_image(source_doc_model, size)}
    results: dict[str, Any] = {
        "machine": (f"{time.strftime('%Y-%m-%d')}; {device}; torch {torch.__version__}; matmul peak TFLOP/s "
                    f"{ {k: v and round(v) for k, v in peaks.items()} }; training GFLOP/image "
                    f"{ {k: round(v / 1e9, 2) for k, v in flop.items()} }"),
        "peaks": peaks, "flop_per_image": flop, "throughput": [], "source_doc": [], "time_to_quality": [],
        "skipped": [], "failed": []}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
        (out / "results.md").write_text(markdown(results), encoding="utf-8")

    def part(name: str, estimate_s: float, body: Callable[[], None]) -> None:
        if budget.left() < estimate_s:
            results["skipped"].append(f"{name} ({budget.left():.0f} s left, needs ~{estimate_s:.0f})")
        else:
            click.echo(f"== {name} ({budget.left():.0f} s left)", err=True)
            start = time.perf_counter()
            try:
                body()
            except Exception as exc:  # one part failing must not lose the others' numbers
                results["failed"].append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                click.echo(f"   failed: {results['failed'][-1]}", err=True)
            click.echo(f"   {name}: {time.perf_counter() - start:.0f} s", err=True)
        save()

    def with_train(params: Params, **changes: Any) -> Params:
        return dataclasses.replace(params, train=dataclasses.replace(params.train, **changes))

    def time_to_quality(name: str, overrides: dict) -> None:
        params = params_from_dict(gpu_runs.apply(base, {**common, **TTQ, **overrides}))
        try:
            trained = timed_train(params, train, work, log_every, snapshot_every)
        except Exception as exc:
            if params.train.compile == "off":
                raise
            results["failed"].append(f"{name} with compile {params.train.compile}: {type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''}; retried eager")
            overrides = {**overrides, "train.compile": "off"}
            params = with_train(params, compile="off")
            trained = timed_train(params, train, work, log_every, snapshot_every)
        entry = {"recipe": name + ": " + ", ".join(f"{k}={v}" for k, v in {**TTQ, **overrides}.items()),
                 "img_per_s": round(trained.img_per_s(), 1), "warmup_s": round(trained.warmup_s(), 1),
                 "steps": trained.result["steps"], "epochs": round(trained.result["epochs"], 2), "snapshots": []}
        results["time_to_quality"].append(entry)
        results["throughput"].append(throughput_row(f"{name} (compile {params.train.compile})", trained,
                                                    flop["recommended"], peaks["bf16"], "bf16"))
        save()
        for step in sorted(s for s in trained.snapshots if s >= eval_from):
            row, figure = judge_snapshot(trained, step, params, judge, ood, train, test)
            entry["snapshots"].append(row)
            click.echo(f"   step {step}: {row}", err=True)
            if row["meets_bar"] and "first_met" not in entry:
                entry["first_met"] = row
                save_image(figure, out / f"{name}_first_met_4x.png")
            save()
            if budget.left() < 20:
                entry["cut_short"] = "budget"
                break
        if "first_met" not in entry and entry["snapshots"]:
            save_image(figure, out / f"{name}_last_4x.png")

    def sweep(mode: str, sizes: str) -> None:
        for batch in [int(b) for b in sizes.split(",")]:
            if budget.left() < (30 if mode == "off" else 100):  # a compile takes about 75 s (issue 11's probe)
                results["skipped"].append(f"{mode} batch {batch}")
                continue
            params = with_train(recommended, batch_size=batch, max_steps=log_every + timed_steps, epochs=0.0,
                                compile=mode)
            trained = timed_train(params, train, work, log_every)
            results["throughput"].append(throughput_row(f"recommended UNet, compile {mode}", trained,
                                                        flop["recommended"], peaks["bf16"], "bf16"))
            shutil.rmtree(trained.model_dir, ignore_errors=True)
            save()

    def source_doc() -> None:
        bench = train_throughput.Bench(preset=doc_preset, conditional=False, batch=32, warmup=log_every,
                                       steps=timed_steps, precision="fp16" if torch.cuda.is_available() else "no")
        images, labels = train.images[:plain_images], train.labels[:plain_images]
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            plain = train_throughput.run_plain(bench, train_throughput.write_pngs(images, labels, Path(tmp)), size)
        results["source_doc"].append({"run": "plain loop (PNG DataLoader, loss read every step)",
                                      "img_per_s": round(plain["img_per_s"], 1)})
        save()
        doc = dataclasses.replace(recommended, model=source_doc_model)
        for mode in ("off", small_batch_compile) if small_batch_compile != "off" else ("off",):
            params = with_train(doc, batch_size=32, max_steps=log_every + timed_steps, epochs=0.0, compile=mode,
                                mixed_precision=bench.precision)
            row = throughput_row(f"ours, compile {mode}", timed_train(params, train, work, log_every),
                                 flop["source_doc"], peaks["fp16"], "fp16")
            results["source_doc"].append(row)
            save()

    chosen = set(parts.split(","))
    if "ttq" in chosen:
        part("time to quality", 150, lambda: time_to_quality("ttq", parse_pairs(ttq_sets)))
    if "eager" in chosen:
        part("eager sweep", 40, lambda: sweep("off", batches))
    if "doc" in chosen:
        part("source document's setting", 100, source_doc)
    if "compiled" in chosen and compile_mode != "off":
        part(f"compiled sweep ({compile_mode})", 100, lambda: sweep(compile_mode, compile_batches))
    if "ttq2" in chosen and ttq2_sets:
        part("time to quality, second recipe", 120, lambda: time_to_quality("ttq2", parse_pairs(ttq2_sets)))
    click.echo(markdown(results))


if __name__ == "__main__":
    main()
