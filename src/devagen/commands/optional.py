"""What the optional stages (vae, distill) share: a fresh temp folder for their model output, and what they
write when switched off."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import click

from ..core import paths
from ..core.integrity import replace_dir
from ..report import figures, plots
from .common import start_run, write_metrics


def fresh_temp(out: Path) -> Path:
    """An empty .tmp-<name> beside `out` to build the stage's folder in (renamed into place when complete)."""
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def write_off(stage: str, switch: str, out: Path, write_note: Callable[[Path], None], figure: str,
              says: str) -> None:
    """A switched-off stage's outputs in seconds (no model read, no MLflow run: the other stages log the
    experiment): `out` holding only the note write_note(folder) writes, reports/metrics/<stage>.json and
    reports/details/<stage>.json saying {"enabled": false}, and a figure that says the option is off."""
    tmp = fresh_temp(out)
    write_note(tmp)
    replace_dir(tmp, out)
    write_metrics(stage, {"enabled": False})
    figures.save_image(plots.text_banner(f"{says} is off ({switch}: false in params.yaml)", 480),
                       paths.FIGURES_DIR / figure)
    click.echo(f"{stage}: off ({switch}: false)")


def begin(params, stage: str, enabled: bool, switch: str, out: Path, write_note: Callable[[Path], None],  # type: ignore[no-untyped-def]
          figure: str, says: str):
    """An optional stage's start: when on, (an empty temp folder to build `out` in, the experiment's MLflow
    run opened before any work); when off, None after writing its off-outputs (write_off)."""
    if not enabled:
        write_off(stage, switch, out, write_note, figure, says)
        return None
    tmp = fresh_temp(out)
    return tmp, start_run(params, stage)
