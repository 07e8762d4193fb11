"""Where a CPU's time goes: the default's three hot loops, before and after the CPU fast path, in one run.

    .venv/bin/python benchmarks/cpu_profile.py            # ~6 min on 2 cores; writes benchmarks/results/cpu_profile/
    .venv/bin/python benchmarks/cpu_profile.py --only "judge layout" --out /tmp/judge   # one workload

Each workload is timed in turn in this one process, on synthetic inputs of the real shapes (no data
needed), so the ratios compare like with like on the machine that runs it:

- train step: the default UNet (params.yaml's model), one diffusion_loss + backward + AdamW step at
  train.batch_size; fp32 with torch's SDPA attention (the old path) against bf16 autocast with the
  matmul attention (devagen.core.device.use_math_attention). The header says which of the two `auto` picks here.
- sampler pass: one batched UNet forward at sample.batch_size x 2 (CFG's two predictions), fp32 vs bf16.
- judge step: the OCR judge's forward + backward + SGD at train_ocr.batch_size with augmentation,
  fp32 NCHW (the old path) against bf16 channels-last, both normalising before they pool.
- judge layout: the same bf16 channels-last step, BatchNorm + ReLU before each max-pool (the old judge)
  against after it (train_ocr.pool_first).

For each, img/s (median of --rounds, the two paths' rounds alternating), the ratio to the old path, and torch.profiler's top ops for the
old and new paths. The CPU model and flags head the report: name them beside every figure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import statistics
import time
from pathlib import Path
from typing import Callable

import click
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from devagen.core import device as dev
from devagen.core.params import load_params
from devagen.core.presets import patch_size
from devagen.data.augment import augment_batch
from devagen.diffusion.objective import diffusion_loss
from devagen.diffusion.patches import to_patches
from devagen.diffusion.unet import (
    build_noise_scheduler,
    build_unet,
    condition,
    style_codes,
)
from devagen.judges.ocr import build_judge

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_profile"
TOP_OPS = 8


def _precision(bf16: bool) -> contextlib.AbstractContextManager:
    """The library's own CPU autocast, forced to bf16 or fp32."""
    return dev.autocast(torch.device("cpu"), "bf16" if bf16 else "fp32")


def _train_step(params, bf16: bool, math_attention: bool) -> tuple[Callable[[], None], int]:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    unet = build_unet(params.model, params.prepare.image_size)
    if math_attention:
        dev.use_math_attention(unet)
    scheduler, opt = build_noise_scheduler(params.diffusion), torch.optim.AdamW(unet.parameters(), lr=1e-4)
    b, s = params.train.batch_size, params.prepare.image_size
    x0 = to_patches(torch.rand(b, 1, s, s) * 2 - 1, patch_size(params.model.preset))  # what the UNet denoises
    labels = torch.randint(0, 46, (b,)) if params.model.conditional else None
    styles = torch.randn(b, style_codes(unet)) * 0.3 if params.model.style_conditioning else None

    def step() -> None:
        with _precision(bf16):
            loss = diffusion_loss(unet, scheduler, x0, labels, params.diffusion, 0.1, None, styles, 0.1)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, b


def _sampler_pass(params, bf16: bool, math_attention: bool) -> tuple[Callable[[], None], int]:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    unet = build_unet(params.model, params.prepare.image_size).eval()
    if math_attention:
        dev.use_math_attention(unet)
    b, s = 2 * params.sample.batch_size, params.prepare.image_size
    x, t = to_patches(torch.randn(b, 1, s, s), patch_size(params.model.preset)), torch.randint(0, 1000, (b,))
    labels = torch.randint(0, 47, (b,))
    cond = condition(labels, torch.randn(b, style_codes(unet)) * 0.3) if params.model.style_conditioning else labels
    cond = cond if params.model.conditional else None

    def step() -> None:
        with torch.no_grad(), _precision(bf16):
            unet(x, t, class_labels=cond)
    return step, b


def _judge_step(params, bf16: bool, channels_last: bool,  # type: ignore[no-untyped-def]
                pool_first: bool = False) -> tuple[Callable[[], None], int]:
    torch.manual_seed(0)
    judge = build_judge(dataclasses.replace(params.train_ocr, pool_first=pool_first), params.prepare.image_size)
    if channels_last:
        judge = judge.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(judge.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    b, s = params.train_ocr.batch_size, params.prepare.image_size
    x, y, gen = torch.rand(b, 1, s, s) * 2 - 1, torch.randint(0, 46, (b,)), torch.Generator().manual_seed(0)

    def step() -> None:
        xb = augment_batch(x, params.augment, gen)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _precision(bf16):
            loss = F.cross_entropy(judge(xb), y, label_smoothing=0.1)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, b


def _img_per_s(steps_by_path: tuple[Callable[[], None], ...], images: int, steps: int,
               rounds: int) -> list[float]:
    """Median img/s of each path, timed in alternating rounds so that a drift in the machine's speed
    (other tenants, clocks) falls on every path alike."""
    for step in steps_by_path:
        step()
        step()  # warm-up: oneDNN picks and caches its kernels on the first calls
    rates: list[list[float]] = [[] for _ in steps_by_path]
    for _ in range(rounds):
        for step, path_rates in zip(steps_by_path, rates):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            path_rates.append(steps * images / (time.perf_counter() - start))
    return [statistics.median(r) for r in rates]


def _top_ops(step: Callable[[], None], steps: int) -> str:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1
    lines = ["| op | share of self CPU time | ms per step |", "|---|---|---|"]
    for e in rows[:TOP_OPS]:
        lines.append(f"| `{e.key[:60]}` | {100 * e.self_cpu_time_total / total:.1f} % | "
                     f"{e.self_cpu_time_total / 1000 / steps:.1f} |")
    return "\n".join(lines)


WORKLOADS = {  # name -> (builder, (old path label, old flags), (new path label, new flags))
    "train step": (_train_step, ("fp32, SDPA attention", (False, False)), ("bf16, matmul attention", (True, True))),
    "sampler pass (CFG batch)": (_sampler_pass, ("fp32, SDPA attention", (False, False)),
                                 ("bf16, matmul attention", (True, True))),
    "judge step": (_judge_step, ("fp32, NCHW", (False, False)), ("bf16, channels-last", (True, True))),
    "judge layout": (_judge_step, ("normalise, then pool", (True, True, False)), ("pool first", (True, True, True))),
}


def profile_report(params, steps: int, rounds: int, echo: Callable[[str], None] = print,  # type: ignore[no-untyped-def]
                   only: tuple[str, ...] = ()) -> str:
    """The markdown report: CPU, the img/s table (old path, new path, ratio) and the top ops of each path.

    only: names of WORKLOADS to run (all when empty)."""
    unknown = sorted(set(only) - set(WORKLOADS))
    if unknown:
        raise click.BadParameter(f"no workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}", param_hint="--only")
    info = dev.cpu_info()
    lines = [f"# CPU profile ({datetime.date.today()})", "",
             f"CPU: **{info['model']}**, {info['cores']} cores, torch {torch.__version__} "
             f"(kernels: {info['torch_capability']}), flags: {', '.join(info['flags']) or 'none of interest'}; "
             f"native bf16: {'yes' if info['native_bf16'] else 'no'}, so `auto` = "
             f"{'bf16' if dev.cpu_bf16('auto') else 'fp32'} here. {torch.get_num_threads()} threads.", "",
             "| workload | old path | img/s | new path | img/s | new / old |", "|---|---|---|---|---|---|"]
    profiles = []
    for name, (build, (old_label, old_flags), (new_label, new_flags)) in WORKLOADS.items():
        if only and name not in only:
            continue
        old_step, n = build(params, *old_flags)
        new_step, _ = build(params, *new_flags)
        old, new = _img_per_s((old_step, new_step), n, steps, rounds)
        lines.append(f"| {name} (batch {n}) | {old_label} | {old:.1f} | {new_label} | {new:.1f} | {new / old:.2f} |")
        echo(lines[-1])
        profiles += [f"## {name}: {old_label}", "", _top_ops(old_step, steps), "",
                     f"## {name}: {new_label}", "", _top_ops(new_step, steps), ""]
    return "\n".join(lines + [""] + profiles)


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--steps", default=8, show_default=True, help="timed steps per round")
@click.option("--rounds", default=3, show_default=True)
@click.option("--out", "out_dir", default=str(RESULTS), show_default=True)
@click.option("--only", multiple=True, help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}")
def main(params_path: str, steps: int, rounds: int, out_dir: str, only: tuple[str, ...]) -> None:
    report = profile_report(load_params(params_path), steps, rounds, click.echo, only)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.md").write_text(report)
    click.echo(f"wrote {out / 'profile.md'}")


if __name__ == "__main__":
    main()
