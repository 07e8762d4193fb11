"""`devagen lr-find`: the learning-rate finder over a short run of the configured training (not a DVC stage):
loss against lr into reports/lr_find/ (CSV and PNG) and MLflow, and a suggested train.lr."""

from __future__ import annotations

import math
from pathlib import Path

import click

from ..core.errors import DevagenError
from ..core.io import write_csv
from .common import finish, load, start_run
from .options import PARAMS_OPTION
from .train import training_inputs

OUT = Path("reports/lr_find")


def sweep_figure(rows: list[dict], suggested: float):  # type: ignore[no-untyped-def]
    """Loss and smoothed loss against log10(lr), with a dot on the smoothed curve at the suggested lr."""
    from ..report.plots import line_plot

    xs = [math.log10(r["lr"]) for r in rows]
    nearest = min(range(len(rows)), key=lambda i: abs(xs[i] - math.log10(suggested)))
    marker = [rows[i]["smoothed"] if i == nearest else None for i in range(len(rows))]
    return line_plot(xs, {"loss": [r["loss"] for r in rows], "smoothed": [r["smoothed"] for r in rows],
                          f"suggested lr {suggested:.2g}": marker},
                     "Learning-rate finder", "log10 learning rate", "loss")


@click.command()
@click.option("--start", type=click.FloatRange(min=0, min_open=True), default=1e-6, show_default=True,
              help="the sweep's first lr")
@click.option("--end", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="the sweep's last lr (it stops earlier when the loss diverges)")
@click.option("--steps", type=click.IntRange(min=3), default=200, show_default=True, help="optimizer steps at most")
@click.option("--out", "out_dir", default=str(OUT), show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder for lr_find.csv and lr_find.png")
@PARAMS_OPTION
def lr_find(start: float, end: float, steps: int, out_dir: Path, params_path: str) -> None:
    """Sweep the learning rate over a short training run of params.yaml's model; suggest train.lr."""
    from ..report.figures import save_image
    from ..training.lr_find import lr_sweep, suggest

    if end <= start:
        raise DevagenError(f"lr-find: --end ({end:g}) must be above --start ({start:g})")
    params = load(params_path)
    inputs = training_inputs(params)
    tracker = start_run(params, "lr_find")
    rows = lr_sweep(params.train, params.model, params.diffusion, params.augment, inputs["images"], inputs["labels"],
                    start, end, steps, inputs["pen"], inputs["judge"], inputs["vae"])
    found = suggest(rows)
    write_csv(rows, out_dir / "lr_find.csv")
    save_image(sweep_figure(rows, found["suggested_lr"]), out_dir / "lr_find.png")
    tracker.log_metrics({f"lr_find/{k}": v for k, v in found.items()})
    tracker.log_artifact(out_dir, "lr_find")
    finish(tracker)
    steepest = found["steepest_lr"]
    steepest = "none (too few steps before the minimum)" if steepest is None else f"{steepest:.2g}"
    click.echo(f"lr-find: {len(rows)} steps from lr {start:g} to {rows[-1]['lr']:.2g}; lowest smoothed loss at lr "
               f"{found['min_loss_lr']:.2g}, steepest descent at {steepest}; suggested train.lr "
               f"{found['suggested_lr']:.2g} (a tenth of the min-loss lr); {out_dir / 'lr_find.csv'}, "
               f"{out_dir / 'lr_find.png'}")
