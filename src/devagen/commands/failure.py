"""A stage that stopped on an error: its experiment's MLflow run ends FAILED (KILLED on Ctrl-C or a signal)
with the stage and the one-line error, and is opened first when the stage had not opened it yet (a
params.yaml refused at load included), so every failed experiment has its run. Each stage that belongs to
an experiment's run declares itself with `@click.command(cls=StageCommand)` (fetch does not: it only
downloads)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import yaml

from ..core import tracking
from ..core.config import FetchConfig, TrackingConfig
from ..core.errors import DevagenError, failure_of
from ..core.params import load_params
from .common import log_splits, start_run
from .options import READ_FROM


class StageCommand(click.Command):
    """A DVC stage's command: an error that stops it is recorded in its experiment's MLflow run, then
    passed on (devagen.cli prints it as one line)."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            record_failure((self.name or "").replace("-", "_"), *failure_of(exc))
            raise


def record_failure(stage: str, error: str, status: str = "FAILED") -> None:
    """End this experiment's run FAILED/KILLED with `stage` and `error`; a stage that failed before it
    opened the run (a refused params.yaml included) opens it first, so every failed experiment has one."""
    if tracking.close_open_runs(status, stage, error):
        return
    try:
        tracker = start_run(load_params(Path(READ_FROM["path"])), stage)
    except DevagenError:  # params.yaml refused: the run is keyed by its raw values
        raw = _raw_params(Path(READ_FROM["path"]))
        if raw is None:
            return
        tracker = tracking.stage_run(_tracking_config(raw), _flat(raw), stage)
        log_splits(tracker, _section(raw, "prepare").get("dedupe") is not False,
                   str(_section(raw, "fetch").get("url", FetchConfig.url)))
    tracker.fail(stage, error, status)


def _raw_params(path: Path) -> dict[str, Any] | None:
    """params.yaml as YAML says, unvalidated; None if it is missing or not a mapping."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return raw if isinstance(raw, dict) else None


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """One section of an unvalidated params mapping ({} if it is missing or not a mapping)."""
    section = raw.get(name)
    return section if isinstance(section, dict) else {}


def _flat(raw: dict[str, Any]) -> dict[str, Any]:
    """`section.key` -> value of an unvalidated params mapping."""
    return {f"{name}.{key}": value for name, section in raw.items() if isinstance(section, dict)
            for key, value in section.items()}


def _tracking_config(raw: dict[str, Any]) -> TrackingConfig:
    """The tracking section of an unvalidated params mapping, its unusable values left at their defaults."""
    section = _section(raw, "tracking")
    known = {f.name for f in dataclasses.fields(TrackingConfig)}
    try:
        return TrackingConfig(**{k: v for k, v in section.items() if k in known})
    except (TypeError, ValueError, DevagenError):
        return TrackingConfig()
