"""A stage that stopped on an error: its experiment's MLflow run ends FAILED (KILLED on Ctrl-C or a signal)
with the stage and the one-line error, and is opened first when the stage had not opened it yet (a
params.yaml refused at load included), so every failed experiment has its run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..core import tracking
from ..core.config import FetchConfig, TrackingConfig
from ..core.errors import DevagenError
from ..core.params import load_params
from .common import READ_FROM, log_splits, start_run


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
        log_splits(tracker, _section(raw, "data").get("dedupe") is not False,
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
