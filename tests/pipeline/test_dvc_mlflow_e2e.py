"""One DVC experiment = one complete MLflow run, through real DVC at tiny sizes: three queued
experiments on two workers, and an experiment whose train stage DVC skips (same train params)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dvc_repo import TINY, make_repo, run

from devagen.core.config import TrackingConfig
from devagen.core.params import flatten, load_params

LRS = {"q1": "0.001", "q2": "0.003", "q3": "0.004"}  # not params.yaml's 0.002: that experiment would reproduce nothing


def _wait_for_queue(repo: Path, env: dict, timeout_s: float = 1500) -> str:
    """Poll `dvc queue status` until nothing is queued or running; return the last status table."""
    deadline = time.time() + timeout_s
    while True:
        status = run(["dvc", "queue", "status"], repo, env)
        if not any(word in status for word in ("Queued", "Running")):
            return status
        assert time.time() < deadline, f"queue still busy after {timeout_s} s:\n{status}"
        time.sleep(10)


def _runs(store: Path) -> dict:
    """run name -> mlflow Run, from the repository's own store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name(TrackingConfig().experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    names = [r.info.run_name for r in runs]
    assert len(names) == len(set(names)), f"one run per experiment, got {names}"
    return {r.info.run_name: r for r in runs}


@pytest.mark.slow
def test_queued_and_skipped_stage_experiments_each_get_one_complete_run(tmp_path: Path) -> None:
    repo, env = make_repo(tmp_path, TINY)  # params keep the relative sqlite:///mlflow.db
    code = run(["git", "rev-parse", "HEAD"], repo, env).strip()
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline results"], repo, env)
    baseline = run(["git", "rev-parse", "HEAD"], repo, env).strip()

    for name, lr in LRS.items():
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.lr={lr}"], repo, env)
    run(["dvc", "queue", "start", "-j", "2"], repo, env)
    status = _wait_for_queue(repo, env)
    assert status.count("Success") == 3, status
    for name in LRS:
        logs = run(["dvc", "queue", "logs", name], repo, env)
        assert "warning: MLflow" not in logs and "locked" not in logs, logs[-3000:]

    # Same train params as the baseline: DVC skips train; sample, evaluate and report run.
    out = run(["dvc", "exp", "run", "-n", "more-samples", "-S", "sample.per_class=3"], repo, env)
    assert "'train' didn't change, skipping" in out

    runs = _runs(repo / "mlflow.db")
    assert not list((repo / ".dvc").rglob("mlflow.db")), "a store inside a queue copy"
    experiments = {*LRS, "more-samples"}
    assert experiments < set(runs) and len(runs) == 5  # + the baseline's `dvc repro`
    for name, r in runs.items():
        assert r.info.status == "FINISHED", (name, r.info.status)
        assert r.data.tags["mlflow.source.git.commit"] == (baseline if name in experiments else code)
        assert {"final_loss", "sample_images", "fid", "ocr_accuracy", "data_train", "ocr_test_accuracy"} <= set(
            r.data.metrics), (name, sorted(r.data.metrics))
        whole = set(flatten(load_params(repo / "params.yaml")))  # the whole params.yaml, and the shape train built
        shape = {"unet.block_out_channels", "unet.attention_levels"} if name != "more-samples" else set()
        assert whole | shape <= set(r.data.params) and all(k.startswith("unet.") for k in set(r.data.params) - whole)
    for name, lr in LRS.items():
        r = runs[name]
        assert r.data.params["train.lr"] == lr and r.data.tags["dvc.exp_name"] == name
        assert r.data.tags["dvc.baseline_rev"] == baseline and r.data.tags["devagen.first_stage"] == "train"
        assert r.data.metrics["sample_images"] == 92 and "train/loss" in r.data.metrics
    [base] = [r for n, r in runs.items() if n not in experiments]
    more = runs["more-samples"]
    assert more.data.params["sample.per_class"] == "3" and base.data.params["sample.per_class"] == "2"
    assert more.data.tags["devagen.first_stage"] == "sample"
    assert more.data.metrics["n_generated"] == 138 and base.data.metrics["n_generated"] == 92
    assert more.data.metrics["final_loss"] == base.data.metrics["final_loss"]  # train's numbers, from its file
