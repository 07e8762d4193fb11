"""MLflow tracking: the only module that imports mlflow.

One run per pipeline execution, named after the DVC experiment (DVC_EXP_NAME) when there is one.
The train stage opens the run and stores its id beside the model; sample, evaluate and report
reopen it. If the tracking store is unreachable the pipeline goes on and says so once.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

import click

from .config import TrackingConfig
from .io import read_json, write_json

# Fail fast against an unreachable server instead of MLflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def tracking_uri(cfg: TrackingConfig) -> str:
    """MLFLOW_TRACKING_URI when set, else params' `tracking.uri` (sqlite:///mlflow.db in the repo root)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.uri


def git_short_sha() -> str:
    """The checkout's short commit hash, or 'nogit'."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "nogit"
    except (OSError, subprocess.SubprocessError):
        return "nogit"


def run_name() -> str:
    """DVC_EXP_NAME (set by `dvc exp run`), else a readable name with the git short sha and time."""
    return os.environ.get("DVC_EXP_NAME") or f"devagen-{git_short_sha()}-{time.strftime('%Y%m%d-%H%M%S')}"


class Tracker:
    """A handle on one MLflow run; every call is a no-op once tracking is disabled or has failed."""

    def __init__(self, client: Any, run_id: str | None) -> None:
        self.client, self.run_id = client, run_id

    @property
    def active(self) -> bool:
        return self.client is not None and self.run_id is not None

    def _safely(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call client.<method>(run_id, ...); on the first failure warn once and stop tracking."""
        if not self.active:
            return
        try:
            getattr(self.client, method)(self.run_id, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking must never stop the pipeline
            click.echo(f"warning: MLflow {method} failed ({type(exc).__name__}: {str(exc)[:200]}); "
                       "going on without tracking", err=True)
            self.client = None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics (non-numbers are skipped) at an optional step."""
        if not self.active:  # disabled tracking must work without mlflow installed
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
        if rows:
            self._safely("log_batch", metrics=rows)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (values stringified), in batches MLflow accepts."""
        if not self.active:
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._safely("log_batch", params=items[i:i + 100])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags."""
        for k, v in tags.items():
            self._safely("set_tag", k, str(v))

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Upload a file (or a directory's files) to the run's artifacts."""
        if path.is_dir():
            self._safely("log_artifacts", str(path), folder)
        elif path.is_file():
            self._safely("log_artifact", str(path), folder)

    def finish(self) -> None:
        """Mark the run finished (sample/evaluate/report may reopen it)."""
        self._safely("set_terminated", "FINISHED")

    def save(self, path: Path) -> None:
        """Store the run id so later stages log into the same run."""
        write_json({"run_id": self.run_id}, path)


def _client(cfg: TrackingConfig) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(cfg))


def start_run(cfg: TrackingConfig, params: Mapping[str, Any], tags: Mapping[str, str]) -> Tracker:
    """Open a new run named by run_name() in cfg.experiment, with params and tags logged."""
    if not cfg.enabled:
        return Tracker(None, None)
    tracker = Tracker(None, None)
    try:
        client = _client(cfg)
        experiment = client.get_experiment_by_name(cfg.experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.experiment)
        name = run_name()
        base = {"mlflow.runName": name, "git_commit": git_short_sha(), "dvc_experiment": os.environ.get("DVC_EXP_NAME", "")}
        run = client.create_run(experiment_id, run_name=name, tags={**base, **tags})
        tracker = Tracker(client, run.info.run_id)
    except Exception as exc:  # noqa: BLE001
        click.echo(f"warning: MLflow at {tracking_uri(cfg)} unavailable ({type(exc).__name__}: {str(exc)[:200]}); "
                   "going on without tracking", err=True)
        return tracker
    tracker.log_params(params)
    return tracker


def resume_run(cfg: TrackingConfig, run_file: Path) -> Tracker:
    """Reopen the run whose id the train stage stored; a disabled tracker if there is none."""
    if not cfg.enabled or not run_file.is_file():
        return Tracker(None, None)
    try:
        run_id = read_json(run_file).get("run_id")
    except (ValueError, AttributeError) as exc:  # truncated or tampered: tracking is not worth failing the stage
        click.echo(f"warning: {run_file} is unreadable ({type(exc).__name__}); going on without tracking", err=True)
        return Tracker(None, None)
    if not run_id:
        return Tracker(None, None)
    tracker = Tracker(None, None)
    try:
        client = _client(cfg)
        client.get_run(run_id)
        tracker = Tracker(client, run_id)
    except Exception as exc:  # noqa: BLE001
        click.echo(f"warning: MLflow run {run_id} not reachable at {tracking_uri(cfg)} "
                   f"({type(exc).__name__}); going on without tracking", err=True)
    return tracker


def recent_runs(cfg: TrackingConfig, limit: int) -> list[dict[str, Any]]:
    """The latest `limit` runs of the experiment: name, id, start time, params and metrics."""
    if not cfg.enabled:
        return []
    try:
        client = _client(cfg)
        experiment = client.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            return []
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit)
    except Exception as exc:  # noqa: BLE001
        click.echo(f"warning: MLflow runs not readable ({type(exc).__name__}); comparison table skipped", err=True)
        return []
    return [{"name": r.info.run_name, "run_id": r.info.run_id, "start_time": r.info.start_time,
             "params": dict(r.data.params), "metrics": dict(r.data.metrics)} for r in runs]
