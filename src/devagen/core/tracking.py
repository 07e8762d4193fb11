"""MLflow tracking: with pyfunc_model.py (the trained model as an MLflow model), the only module that
imports mlflow.

One DVC experiment = one MLflow run. The run is found by a key: the DVC experiment name
(DVC_EXP_NAME, set by `dvc exp run`, queued or not) or, outside experiments, the git commit,
each with a hash of the whole params.yaml. Whichever tracked stage runs first creates the run with
every param; DVC may skip a stage or restore it from its cache, so every stage logs the metrics
files of all stages that exist (reports/details/*.json), marks the run RUNNING while it works and FINISHED when it ends.
A stage that stops on an error leaves the run FAILED (KILLED on Ctrl-C) with the stage and the one-line
error as tags and as the run's description, even when the error came before the stage opened its run.
A run left RUNNING by a process that died (kill -9) is marked KILLED by the next stage this machine opens;
when that stage continues the same experiment, the run goes on and a tag records the interrupted attempt.

A relative sqlite URI is resolved against the repository DVC runs the experiment for (DVC_ROOT,
which DVC sets to the original repository even for queued runs in .dvc/tmp/exps copies since
treeverse/dvc#9918, Sept. 2023; read in 3.67's experiments/queue/base.py and stage/run.py),
so queued experiments write to the repository's store; sqlite waits for locks (parallel queue
workers) instead of failing. If the store is unreachable the pipeline goes on and says so once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import click

from .config import TrackingConfig
from .io import read_json

# Fail fast against an unreachable server instead of MLflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

SQLITE_TIMEOUT_S = 120  # parallel queue workers share one sqlite file: wait this long for its lock
RETRIES = 6  # attempts for operations that lost a race (lock, experiment created by another worker)
KEY_TAG = "devagen_run_key"
PID_TAG, HOST_TAG = "devagen.pid", "devagen.host"  # the process holding the run RUNNING, to tell a dead one
FAILED_STAGE_TAG, ERROR_TAG, NOTE_TAG = "devagen.failed_stage", "devagen.error", "mlflow.note.content"
STAGES_TAG = "devagen.stages_ran"  # the stages that ran in this run (the others were reused or restored)
# metrics file stem -> MLflow metric prefix; train and eval keep bare names (the report compares them)
METRIC_PREFIX = {"data": "data_", "ocr": "ocr_", "train": "", "sample": "sample_", "eval": ""}
# MLflow 3 opens an experiment on the GenAI "Traces" view unless it is a machine-learning one: this tag
# says so for UIs that read it; 3.17's UI follows its workflow switch instead (see README: ?workflowType=).
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}

T = TypeVar("T")


def repo_root() -> Path:
    """The repository the pipeline runs for: DVC_ROOT, else the working directory; a path inside a
    queued experiment's copy (<repo>/.dvc/tmp/exps/...) is mapped back to <repo>."""
    root = Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    parts = root.parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


def resolve_uri(uri: str, root: Path) -> str:
    """A relative sqlite:///path made absolute under root, with a lock timeout; other URIs unchanged."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return uri
    path, _, query = uri[len("sqlite:///"):].partition("?")
    if not Path(path).is_absolute():
        path = str(root / path)
    if "timeout=" not in query:
        query = "&".join(q for q in (query, f"timeout={SQLITE_TIMEOUT_S}") if q)
    return f"sqlite:///{path}?{query}"


def tracking_uri(cfg: TrackingConfig) -> str:
    """MLFLOW_TRACKING_URI when set, else params' `tracking.uri`; relative sqlite paths under repo_root()."""
    return resolve_uri(os.environ.get("MLFLOW_TRACKING_URI") or cfg.uri, repo_root())


def git_commit() -> str:
    """The checkout's commit hash, or 'nogit'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "nogit"
    except (OSError, subprocess.SubprocessError):
        return "nogit"


def params_hash(params: Mapping[str, Any]) -> str:
    """12 hex digits identifying a whole (flattened) params.yaml."""
    text = json.dumps(dict(params), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_identity(params: Mapping[str, Any]) -> tuple[str, str]:
    """(key, name) of this pipeline execution's run: the DVC experiment, else commit + params."""
    digest, exp = params_hash(params), os.environ.get("DVC_EXP_NAME")
    origin = f"exp:{exp}" if exp else f"git:{git_commit()}"
    key = hashlib.sha256(f"{origin}|{digest}".encode()).hexdigest()[:32]
    return key, exp or f"devagen-{git_commit()[:7]}-{digest[:6]}"


def _retrying(fn: Callable[[], T]) -> T:
    """fn(), again after a pause when it lost a race to another process (sqlite lock, duplicate create)."""
    for attempt in range(RETRIES):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - MLflow wraps the driver's errors
            text = str(exc).lower()
            raced = any(s in text for s in ("locked", "unique constraint", "already exists", "busy"))
            if not raced or attempt == RETRIES - 1:
                raise
            time.sleep(0.5 * 2 ** attempt)
    raise AssertionError("unreachable")


def number(value: Any) -> float | None:
    """A finite float from an int/float (bools and everything else: None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def file_metrics(files: Mapping[str, Path]) -> dict[str, float]:
    """Numeric top-level values of each existing metrics file, named with METRIC_PREFIX[stem]."""
    out: dict[str, float] = {}
    for stem, path in files.items():
        try:
            values = read_json(path) if Path(path).is_file() else {}
        except ValueError:
            continue  # a broken file is the report's to complain about
        for key, value in values.items():
            if number(value) is not None:
                out[METRIC_PREFIX.get(stem, f"{stem}_") + key] = number(value)
    return out


_OPEN: list["Tracker"] = []  # runs a stage of this process holds RUNNING


class Tracker:
    """A handle on one MLflow run; every call is a no-op once tracking is disabled or has failed."""

    def __init__(self, client: Any, run_id: str | None, name: str | None = None, created: bool = False) -> None:
        self.client, self.run_id, self.name = client, run_id, name
        self.created = created  # this stage created the run (the first stage of the experiment to open it)

    @property
    def active(self) -> bool:
        return self.client is not None and self.run_id is not None

    def _safely(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call client.<method>(run_id, ...); on a failure other than a lost race warn once and stop tracking."""
        if not self.active:
            return
        try:
            _retrying(lambda: getattr(self.client, method)(self.run_id, *args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - tracking must never stop the pipeline
            click.echo(f"warning: MLflow {method} failed ({type(exc).__name__}: {str(exc)[:200]}); "
                       "going on without tracking", err=True)
            self.client = None

    def tag(self, key: str) -> str:
        """The run's tag `key` ('' if unset or tracking is off)."""
        if not self.active:
            return ""
        try:
            return self.client.get_run(self.run_id).data.tags.get(key, "")
        except Exception:  # noqa: BLE001 - a tag we cannot read counts as unset
            return ""

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric metrics (non-numbers are skipped) at an optional step."""
        if not self.active:  # disabled tracking must work without mlflow installed
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, number(v), now, step or 0) for k, v in metrics.items() if number(v) is not None]
        for i in range(0, len(rows), 1000):
            self._safely("log_batch", metrics=rows[i:i + 1000])

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (values stringified), in batches MLflow accepts."""
        if not self.active:
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._safely("log_batch", params=items[i:i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags."""
        for k, v in tags.items():
            self._safely("set_tag", k, str(v))

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Upload a file (or a directory's files) to the run's artifacts."""
        if path.is_dir():
            self._safely("log_artifacts", str(path), folder)
        elif path.is_file():
            self._safely("log_artifact", str(path), folder)

    def log_datasets(self, splits: Sequence[Mapping[str, Any]]) -> None:
        """Log dataset inputs: each a dict with name, digest, source (URL), context and a profile dict."""
        if not self.active or not splits:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [DatasetInput(Dataset(s["name"], s["digest"], "http", json.dumps({"url": s["source"]}),
                                       profile=json.dumps(s["profile"])),
                               [InputTag("mlflow.data.context", s["context"])]) for s in splits]
        self._safely("log_inputs", datasets=inputs)

    def log_metrics_files(self, metrics_files: Mapping[str, Path]) -> None:
        """Log every stage's metrics file that exists (restored and skipped stages too)."""
        self.log_metrics(file_metrics(metrics_files))

    def end_stage(self, metrics_files: Mapping[str, Path]) -> None:
        """Log every stage's metrics file that exists, then mark the run FINISHED."""
        self.log_metrics_files(metrics_files)
        self.close("FINISHED")

    def close(self, status: str) -> None:
        """Set the run's status (FINISHED, FAILED, KILLED): no stage of this process runs in it any more."""
        self._safely("set_terminated", status)
        if self in _OPEN:
            _OPEN.remove(self)

    def fail(self, stage: str, error: str, status: str = "FAILED") -> None:
        """End the run FAILED (or KILLED) with the stage and the one-line error as tags and description."""
        self.set_tags({FAILED_STAGE_TAG: stage, ERROR_TAG: error[:4000],
                       NOTE_TAG: f"{status} in stage `{stage}`: {error[:4000]}"})
        self.close(status)


def close_open_runs(status: str, stage: str = "", error: str = "") -> int:
    """Mark the runs this process's stage still holds (it stopped on an error) FAILED or KILLED; how many."""
    held = list(_OPEN)
    for tracker in held:
        tracker.fail(stage or "unknown", error or "stopped", status)
    return len(held)


def _client(cfg: TrackingConfig) -> Any:
    """An MLflow client on the configured store; MLflow's and alembic's INFO lines (store creation,
    migrations) are kept off stderr, where a stage's output and its one-line errors go."""
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=tracking_uri(cfg))


def _experiment_id(client: Any, cfg: TrackingConfig) -> str:
    """cfg.experiment's id, created (artifacts beside a local sqlite store, runs-table kind) if missing."""
    experiment = client.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        uri = tracking_uri(cfg)
        local = uri.startswith("sqlite:///")
        store_dir = Path(uri[len("sqlite:///"):].split("?")[0]).parent
        artifacts = (store_dir / "mlruns" / cfg.experiment).as_uri() if local else None
        return client.create_experiment(cfg.experiment, artifact_location=artifacts, tags=EXPERIMENT_TAGS)
    if experiment.tags.get("mlflow.experimentKind") is None:
        for k, v in EXPERIMENT_TAGS.items():
            client.set_experiment_tag(experiment.experiment_id, k, v)
    return experiment.experiment_id


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned(run: Any) -> bool:
    """A RUNNING run whose process ran on this machine and is gone (killed without closing the run)."""
    tags = run.data.tags
    pid = tags.get(PID_TAG, "")
    return (run.info.status == "RUNNING" and tags.get(HOST_TAG) == socket.gethostname()
            and pid.isdigit() and not process_alive(int(pid)))


def _mark_killed(client: Any, experiment_id: str, keep: str | None) -> None:
    """Runs of the experiment left RUNNING by a dead process of this machine (other than `keep`): KILLED."""
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=200)
    for run in running:
        if run.info.run_id != keep and orphaned(run):
            stage = run.data.tags.get("devagen.last_stage", "unknown")
            error = f"process {run.data.tags[PID_TAG]} ended without closing the run (killed)"
            for k, v in {FAILED_STAGE_TAG: stage, ERROR_TAG: error, NOTE_TAG: f"KILLED in stage `{stage}`: {error}"}.items():
                client.set_tag(run.info.run_id, k, v)
            client.set_terminated(run.info.run_id, "KILLED")


def _rejoin(client: Any, run: Any) -> None:
    """Reopen an existing run for a new stage; an interrupted or failed attempt is kept as a tag."""
    tags, run_id = run.data.tags, run.info.run_id
    earlier = None
    if orphaned(run):
        earlier = f"{tags.get('devagen.last_stage', 'unknown')} was killed (process {tags[PID_TAG]}), then continued"
    elif run.info.status in ("FAILED", "KILLED") and FAILED_STAGE_TAG in tags:
        earlier = f"{run.info.status} in {tags[FAILED_STAGE_TAG]}: {tags.get(ERROR_TAG, '')}"
        for key in (FAILED_STAGE_TAG, ERROR_TAG):
            client.delete_tag(run_id, key)
        client.set_tag(run_id, NOTE_TAG, f"Earlier attempt {earlier}")
    if earlier:
        client.set_tag(run_id, "devagen.earlier_attempt", earlier[:4000])
    client.update_run(run_id, status="RUNNING")


def _open(client: Any, cfg: TrackingConfig, params: Mapping[str, Any], stage: str) -> tuple[str, str, bool]:
    """(run id, name, created) of this execution's run, found by its key tag or created; RUNNING."""
    key, name = run_identity(params)
    experiment_id = _experiment_id(client, cfg)
    found = client.search_runs([experiment_id], filter_string=f"tags.{KEY_TAG} = '{key}'", max_results=1)
    _mark_killed(client, experiment_id, keep=found[0].info.run_id if found else None)
    if found:
        _rejoin(client, found[0])
        return found[0].info.run_id, name, not found[0].data.params
    tags = {"mlflow.runName": name, "mlflow.source.git.commit": git_commit(), KEY_TAG: key,
            "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
            "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""), "devagen.first_stage": stage}
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id, name, True


def stage_run(cfg: TrackingConfig, params: Mapping[str, Any], stage: str,
              tags: Mapping[str, Any] | None = None) -> Tracker:
    """This experiment's run, opened for `stage`: found by its key or created with every param; RUNNING."""
    if not cfg.enabled:
        return Tracker(None, None)
    try:
        client = _client(cfg)
        run_id, name, fresh = _retrying(lambda: _open(client, cfg, params, stage))
    except Exception as exc:  # noqa: BLE001
        click.echo(f"warning: MLflow at {tracking_uri(cfg)} unavailable ({type(exc).__name__}: {str(exc)[:200]}); "
                   "going on without tracking", err=True)
        return Tracker(None, None)
    tracker = Tracker(client, run_id, name, created=fresh)
    _OPEN.append(tracker)
    if fresh:
        tracker.log_params(params)
    tracker.set_tags({"devagen.last_stage": stage, PID_TAG: os.getpid(), HOST_TAG: socket.gethostname(),
                      STAGES_TAG: _with(tracker.tag(STAGES_TAG), stage), **(tags or {})})
    return tracker


def _with(listed: str, item: str) -> str:
    """'a,b' + 'c' -> 'a,b,c' (an item listed once)."""
    items = [i for i in listed.split(",") if i]
    return ",".join(items if item in items else [*items, item])


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
