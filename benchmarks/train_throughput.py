"""Training throughput: our loop (`devagen.training.loop.train_diffusion`) against the plain loop of the source document.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_throughput.py --preset cpu_small --batch 64 --steps 20

Both loops train the same UNet (`--preset`, conditional unless `--unconditional`) in fp32 (or
`--mixed-precision`) at the same batch size, in turn, in this one process, on a seeded subset of
`data/prepared/train.npz`:

- plain: the document's recipe, written anew here. The subset is written as PNG files in the DHCD
  folder layout to a temp dir (never into the repo); a torchvision `ImageFolder` + `DataLoader`
  decodes them with PIL every step, applies `RandomAffine` + `ToTensor` + `Normalize([0.5], [0.5])`,
  and accelerate copies each batch to the device; then `DDPMScheduler.add_noise`, epsilon MSE,
  `accelerator.backward`, grad clip 1.0, AdamW, cosine-with-warmup lr.
- ours: `train_diffusion` itself with the params.yaml configs (max_steps, batch, precision overridden):
  the uint8 array held on the device, batches by index, augmentation on the device, EMA.

img/s counts `--steps` optimizer steps after `--warmup` steps, from timestamps taken after each step
(ours: in train_diffusion's log_fn, so model setup and saving are outside the window). One more step
of each is then profiled with timers around data / forward / backward; optimizer = the rest of the step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import click
import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import DDPMScheduler
from diffusers.optimization import get_cosine_schedule_with_warmup
from PIL import Image
from torchvision import datasets, transforms

from devagen.core import paths
from devagen.core.classes import CLASS_NAMES
from devagen.core.params import Params
from devagen.core.shape import ModelConfig
from devagen.core.params import load_params
from devagen.core.presets import PRESETS, patch_size
from devagen.data.archive import ROOT
from devagen.data.prepared import load_split
from devagen.diffusion.unet import build_unet
from devagen.core.device import allow_precision
from devagen.training import loop as training

# The source document's recipe for the plain loop.
PLAIN_LR = 1e-4
PLAIN_WARMUP = 500  # lr warmup steps: the whole benchmark runs inside the warmup; speed does not care
GRAD_CLIP = 1.0  # clip gradients at this norm
PLAIN_AFFINE = transforms.RandomAffine(degrees=8, translate=(0.06, 0.06), scale=(0.9, 1.1))  # ~ our geometry
TIMED = ("data", "forward", "backward")  # timed around calls; "optimizer" is the rest of the step
PHASES = TIMED + ("optimizer",)


@dataclasses.dataclass(frozen=True)
class Bench:
    """What both loops share: the model, the batch and the step counts."""

    preset: str = "cpu_small"
    conditional: bool = True
    batch: int = 64
    warmup: int = 3  # steps before the timed window (>= 1)
    steps: int = 20  # timed optimizer steps; one more step is profiled after them
    workers: int = 0  # DataLoader worker processes of the plain loop
    precision: str = "no"  # accelerate mixed precision of both loops: no | fp16 | bf16 (CUDA only)
    seed: int = 0
    scale_shift: bool = False  # AdaGN blocks (model.scale_shift); off = the source document's network

    @property
    def model(self) -> ModelConfig:
        """The UNet both loops train (never pen-conditioned: the plain loop has no pen)."""
        return ModelConfig(preset=self.preset, conditional=self.conditional, scale_shift=self.scale_shift)

    @property
    def total(self) -> int:
        """Steps each loop runs: warm-up, timed, profiled."""
        return self.warmup + self.steps + 1


# ---------------------------------------------------------------- timing


def _sync() -> None:
    """Wait for queued GPU work so that a timestamp covers it (no-op on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def stamp() -> float:
    """perf_counter after the device has finished what was queued."""
    _sync()
    return time.perf_counter()


class PhaseTimer:
    """Seconds per named phase, counted only while `active` (the profiled step)."""

    def __init__(self) -> None:
        self.active = False
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time spent in the `with` body to `name` when active."""
        if not self.active:
            yield
            return
        start = stamp()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + stamp() - start

    def wrap(self, name: str, fn: Callable) -> Callable:
        """`fn` with every call timed as phase `name`."""
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with self.phase(name):
                return fn(*args, **kwargs)
        return timed


def summarize(loop: str, bench: Bench, stamps: list[float], timer: PhaseTimer) -> dict:
    """img/s over the timed window and % of the profiled step per phase; stamps[i] ends step i+1."""
    if len(stamps) != bench.total or set(timer.seconds) != set(TIMED):
        raise RuntimeError(f"{loop}: saw {len(stamps)} of {bench.total} steps and phases {sorted(timer.seconds)}; "
                           "did devagen.training.loop change what _optimizer_step calls?")
    window = stamps[bench.warmup + bench.steps - 1] - stamps[bench.warmup - 1]
    step_s = stamps[-1] - stamps[-2]
    seconds = dict(timer.seconds, optimizer=step_s - sum(timer.seconds.values()))
    return {"loop": loop, "img_per_s": bench.steps * bench.batch / window, "profiled_step_s": step_s,
            **{f"{name}_pct": 100 * seconds[name] / step_s for name in PHASES}}


# ---------------------------------------------------------------- data


def pick_subset(npz: Path, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of a prepared split: uint8 (count, S, S), int64 labels (count,)."""
    split = load_split(npz)
    chosen = np.random.default_rng(seed).permutation(len(split.labels))[:count]
    return split.images[chosen], split.labels[chosen]


def write_pngs(images: np.ndarray, labels: np.ndarray, root: Path) -> Path:
    """Write uint8 (N, S, S) as root/ROOT/Train/<class>/<i>.png (the DHCD layout); return the Train dir."""
    train = root / ROOT / "Train"
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = train / CLASS_NAMES[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    return train


def gray_loader(path: str) -> Image.Image:
    """Decode one PNG as 8-bit gray (ImageFolder's default loader converts to RGB)."""
    with Image.open(path) as img:
        return img.convert("L")


def plain_dataloader(train_dir: Path, bench: Bench) -> torch.utils.data.DataLoader:
    """Shuffled DataLoader of (x0 (B, 1, S, S) in [-1, 1], label (B,)) decoded from PNG every step."""
    tf = transforms.Compose([PLAIN_AFFINE, transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    folder = datasets.ImageFolder(str(train_dir), transform=tf, loader=gray_loader)
    to_class = {i: CLASS_NAMES.index(name) for name, i in folder.class_to_idx.items()}
    folder.target_transform = to_class.__getitem__  # folder order -> devagen's class index
    if len(folder) < bench.batch:
        raise click.BadParameter(f"{len(folder)} images is fewer than one batch of {bench.batch}")
    return torch.utils.data.DataLoader(folder, batch_size=bench.batch, shuffle=True, drop_last=True,
                                       num_workers=bench.workers, generator=torch.Generator().manual_seed(bench.seed))


def forever(loader: Iterator) -> Iterator:
    """Batches of `loader`, epoch after epoch."""
    while True:
        yield from loader


# ---------------------------------------------------------------- the plain loop


@dataclasses.dataclass
class Plain:
    """The plain loop's prepared objects."""

    accelerator: Accelerator
    unet: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    scheduler: DDPMScheduler
    batches: Iterator
    conditional: bool


def build_plain(bench: Bench, train_dir: Path, image_size: int) -> Plain:
    """Accelerator, the same seeded UNet as ours, AdamW, cosine-with-warmup lr, the PNG DataLoader."""
    allow_precision(bench.precision)
    accelerator = Accelerator(mixed_precision=bench.precision, cpu=not torch.cuda.is_available())
    set_seed(bench.seed)
    unet = build_unet(bench.model, image_size)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=PLAIN_LR)
    lr_scheduler = get_cosine_schedule_with_warmup(optimizer, PLAIN_WARMUP, bench.total)
    unet, optimizer, loader, lr_scheduler = accelerator.prepare(unet, optimizer, plain_dataloader(train_dir, bench),
                                                                lr_scheduler)
    return Plain(accelerator, unet, optimizer, lr_scheduler, DDPMScheduler(num_train_timesteps=1000),
                 forever(loader), bench.conditional)


def plain_step(p: Plain, timer: PhaseTimer) -> None:
    """One optimizer step of the document's loop: decode a batch, epsilon MSE, backward, clip, AdamW."""
    with timer.phase("data"):
        x0, labels = next(p.batches)  # PIL decode + transforms + collate + host->device copy
    with timer.phase("forward"):
        noise = torch.randn_like(x0)
        t = torch.randint(0, p.scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        noisy = p.scheduler.add_noise(x0, noise, t)
        prediction = p.unet(noisy, t, class_labels=labels if p.conditional else None).sample
        loss = F.mse_loss(prediction, noise)
    with timer.phase("backward"):
        p.accelerator.backward(loss)
    if p.accelerator.sync_gradients:
        p.accelerator.clip_grad_norm_(p.unet.parameters(), GRAD_CLIP)
    p.optimizer.step()
    p.lr_scheduler.step()
    p.optimizer.zero_grad(set_to_none=True)


def run_plain(bench: Bench, train_dir: Path, image_size: int) -> dict:
    """Run the plain loop for bench.total steps; img/s and the profile of its last step."""
    p, timer, stamps = build_plain(bench, train_dir, image_size), PhaseTimer(), []
    for i in range(bench.total):
        timer.active = i == bench.total - 1
        plain_step(p, timer)
        stamps.append(stamp())
    return summarize("plain (PNG DataLoader)", bench, stamps, timer)


# ---------------------------------------------------------------- our loop


@contextlib.contextmanager
def timing_our_step(timer: PhaseTimer) -> Iterator[None]:
    """Time the pieces the real training._optimizer_step calls, by wrapping them where it looks them up."""
    with mock.patch.object(training, "_draw_batch", timer.wrap("data", training._draw_batch)), \
            mock.patch.object(training, "diffusion_loss", timer.wrap("forward", training.diffusion_loss)), \
            mock.patch.object(Accelerator, "backward", timer.wrap("backward", Accelerator.backward)):
        yield


def run_ours(bench: Bench, images: np.ndarray, labels: np.ndarray, params: Params) -> dict:
    """Run train_diffusion for bench.total steps (bench.precision, no checkpoints); img/s and its last step's profile."""
    cfg = dataclasses.replace(params.train, batch_size=bench.batch, max_steps=bench.total, epochs=0.0, grad_accum=1,
                              mixed_precision=bench.precision, checkpoint_every=bench.total + 1, log_every=1)
    model_cfg = bench.model
    timer, stamps = PhaseTimer(), []

    def on_step(stats: dict, step: int) -> None:
        stamps.append(stamp())
        timer.active = step == bench.total - 1  # the next step is the profiled one

    with tempfile.TemporaryDirectory(prefix="devagen-bench-") as tmp, timing_our_step(timer):
        training.train_diffusion(cfg, model_cfg, params.diffusion, params.augment, images, labels,
                                 Path(tmp) / "model", Path(tmp) / "checkpoints", log_fn=on_step, progress=False)
    return summarize("ours (train_diffusion)", bench, stamps, timer)


# ---------------------------------------------------------------- both, and the report


def benchmark(bench: Bench, images: np.ndarray, labels: np.ndarray, params: Params, rounds: int = 1) -> list[dict]:
    """Plain then ours, `rounds` times, on the same images; one result dict per loop and round."""
    results = []
    with tempfile.TemporaryDirectory(prefix="devagen-bench-png-") as tmp:
        train_dir = write_pngs(images, labels, Path(tmp))
        for _ in range(rounds):
            results.append(run_plain(bench, train_dir, images.shape[-1]))
            results.append(run_ours(bench, images, labels, params))
    return results


def throughput_table(results: list[dict]) -> str:
    """Markdown: loop, img/s (median over rounds, each round in brackets), ratio ours / plain."""
    loops = list(dict.fromkeys(r["loop"] for r in results))
    speed = {loop: [r["img_per_s"] for r in results if r["loop"] == loop] for loop in loops}
    base = statistics.median(speed[loops[0]])
    lines = ["| loop | img/s | ratio (ours / plain) |", "|---|---|---|"]
    for loop in loops:
        rounds = f" ({', '.join(f'{v:.1f}' for v in speed[loop])})" if len(speed[loop]) > 1 else ""
        median = statistics.median(speed[loop])
        lines.append(f"| {loop} | {median:.1f}{rounds} | {median / base:.2f}x |")
    return "\n".join(lines)


def profile_table(results: list[dict]) -> str:
    """Markdown: where the time of one profiled step goes, per loop (the last round's profile)."""
    last = {r["loop"]: r for r in results}
    lines = ["| loop | step s | data ms | data % | forward % | backward % | optimizer % |", "|---" * 7 + "|"]
    for loop, r in last.items():
        pcts = " | ".join(f"{r[f'{name}_pct']:.1f}" for name in PHASES)
        data_ms = 10 * r["data_pct"] * r["profiled_step_s"]  # pct/100 * s * 1000
        lines.append(f"| {loop} | {r['profiled_step_s']:.3f} | {data_ms:.1f} | {pcts} |")
    return "\n".join(lines)


def machine_note(bench: Bench, count: int) -> str:
    """One paragraph: date, machine, threads, versions and what was run."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores visible)"
    return (f"{datetime.date.today().isoformat()}; {platform.machine()} {device}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
            f"preset {bench.preset} ({'conditional' if bench.conditional else 'unconditional'}{', AdaGN' if bench.scale_shift else ''}), "
            f"{'fp32' if bench.precision == 'no' else bench.precision}, batch "
            f"{bench.batch}, {bench.steps} timed steps after {bench.warmup} warm-up, {count} real train images, "
            f"{bench.workers} DataLoader workers")


@click.command()
@click.option("--preset", type=click.Choice([p for p in PRESETS if patch_size(p) == 1]), default="cpu_small",
              show_default=True, help="a pixel preset: the plain loop feeds the UNet whole images")
@click.option("--conditional/--unconditional", default=True, show_default=True)
@click.option("--scale-shift/--no-scale-shift", default=False, show_default=True,
              help="AdaGN blocks (model.scale_shift) in both loops' UNet")
@click.option("--batch", type=click.IntRange(1), default=64, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=20, show_default=True, help="timed steps")
@click.option("--warmup", type=click.IntRange(1), default=3, show_default=True, help="untimed steps first")
@click.option("--images", "count", type=click.IntRange(1), default=4096, show_default=True,
              help="real train images written as PNG for the plain loop (and held in memory for ours)")
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True, help="plain DataLoader workers")
@click.option("--mixed-precision", "precision", type=click.Choice(["no", "fp16", "bf16"]), default="no",
              show_default=True, help="both loops' accelerate mixed precision (fp16/bf16 need CUDA)")
@click.option("--rounds", type=click.IntRange(1), default=1, show_default=True, help="plain+ours repeats")
@click.option("--params", "params_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("params.yaml"))
@click.option("--data", "npz", type=click.Path(dir_okay=False, path_type=Path), default=paths.TRAIN_NPZ)
def main(preset: str, conditional: bool, scale_shift: bool, batch: int, steps: int, warmup: int, count: int, workers: int,
         precision: str, rounds: int, params_path: Path, npz: Path) -> None:
    """Time our training loop against the plain PNG/DataLoader loop; print img/s, ratio and a profile."""
    bench = Bench(preset=preset, conditional=conditional, scale_shift=scale_shift, batch=batch, warmup=warmup,
                  steps=steps, workers=workers, precision=precision)
    images, labels = pick_subset(npz, count, bench.seed)
    results = benchmark(bench, images, labels, load_params(params_path), rounds)
    click.echo(machine_note(bench, len(labels)) + "\n")
    click.echo(throughput_table(results) + "\n")
    click.echo("Where one step's time goes (one profiled step after the timed ones):\n")
    click.echo(profile_table(results))


if __name__ == "__main__":
    main()
