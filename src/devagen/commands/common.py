"""What the commands share: the --params option, reading params.yaml, and ending a stage's MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import click

from .. import paths, tracking
from ..config import Params, flatten, load_params

PARAMS_OPTION = click.option("--params", "params_path", default="params.yaml", show_default=True,
                             type=click.Path(dir_okay=False), help="params.yaml to read")


def load(params_path: str) -> Params:
    """The validated params.yaml at `params_path`."""
    return load_params(Path(params_path))


def start_run(params: Params, stage: str, tags: dict | None = None) -> tracking.Tracker:
    """This experiment's MLflow run, opened (or joined) by `stage` with the whole params.yaml."""
    return tracking.stage_run(params.tracking, flatten(params), stage, tags)


def finish(tracker: tracking.Tracker, figures: Iterable[str] = ()) -> None:
    """Log these reports/figures/ files, every stage's metrics file, and mark the run FINISHED."""
    for name in figures:
        tracker.log_artifact(paths.FIGURES_DIR / name, "figures")
    tracker.end_stage(paths.METRICS_FILES)
