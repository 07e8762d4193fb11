"""`devagen train` (DVC stage train): the diffusion model, its training curve and its metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..core import paths
from ..core.params import Params
from ..core.io import append_jsonl, read_jsonl, write_csv
from .common import finish, load, start_run, write_metrics
from .failure import StageCommand
from .options import PARAMS_OPTION


class StepLog:
    """Training curve rows, appended to a file that survives a kill so a resumed run keeps its history."""

    def __init__(self, path: Path, tracker) -> None:  # type: ignore[no-untyped-def]
        self.path, self.tracker = path, tracker
        self.earlier = read_jsonl(path)
        self.rows: list[dict] = []

    def __call__(self, metrics: dict, step: int) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        append_jsonl(row, self.path)
        self.tracker.log_metrics({f"train/{k}": v for k, v in metrics.items()}, step)

    def history(self, resumed_from: int) -> list[dict]:
        """Rows up to the checkpoint this run resumed from, then this run's rows."""
        return [r for r in self.earlier if r["step"] <= resumed_from] + self.rows


def training_inputs(params: Params) -> dict[str, Any]:
    """What train_diffusion reads besides params, from the prepared data and models: images at the model's side,
    labels, the pen (style conditioning), the OCR judge (perceptual loss) and the autoencoder (latent diffusion)."""
    from ..data import prepared as data

    split = data.load_split(paths.TRAIN_NPZ)
    pen = data.read_pen(paths.TRAIN_NPZ, len(split.images)) if params.model.style_conditioning else None
    judge = None
    if params.diffusion.needs_judge:  # the perceptual loss reads the OCR judge's features
        from ..judges.ocr import load_judge
        judge = load_judge(paths.OCR_DIR)
    vae = None
    if params.vae.enabled:  # latent diffusion: the UNet learns the vae stage's latents
        from ..diffusion.autoencoder import load_autoencoder

        vae = load_autoencoder(paths.VAE_DIR)
    images = data.resize(split.images, params.prepare.image_size)  # the model's side; DHCD's own is 32
    return {"images": images, "labels": split.labels, "pen": pen, "judge": judge, "vae": vae}


@click.command(cls=StageCommand)
@PARAMS_OPTION
def train(params_path: str) -> None:
    """Train the diffusion UNet; model into models/diffusion/, curves and metrics into reports/."""
    from ..core.device import cpu_info, pick_device
    from ..training.loop import check_compile, train_diffusion

    params = load(params_path)
    check_compile(params.train)  # before any data is read
    inputs = training_inputs(params)
    cpu = cpu_info()
    tracker = start_run(params, "train", {"device": str(pick_device()), "cpu": cpu["model"],
                                          "cpu_flags": " ".join(cpu["flags"])})
    log = StepLog(paths.CHECKPOINT_DIR / "log.jsonl", tracker)
    result = train_diffusion(params.train, params.model, params.diffusion, params.augment, inputs["images"],
                             inputs["labels"], paths.DIFFUSION_DIR, paths.CHECKPOINT_DIR, log_fn=log, pen=inputs["pen"],
                             judge=inputs["judge"], vae=inputs["vae"])
    tracker.log_params({f"unet.{key}": value for key, value in result["unet"].items()})  # the shape as built
    write_csv(log.history(result["resumed_from_step"]), paths.TRAIN_LOG)
    write_metrics("train", result)
    finish(tracker)
    rate = ("no step left to train (a checkpoint of this run already held them all; delete models/checkpoints "
            "to train from scratch)" if result["img_per_s"] is None else f"{result['img_per_s']:.1f} img/s")
    click.echo(f"train: {result['steps']} steps, final loss {result['final_loss']:.4f}, {rate} on {result['device']}")
