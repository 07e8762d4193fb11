"""The MLflow UI comparison: a real `mlflow server` on 127.0.0.1 lists two pipeline runs side by side."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from devagen.core import tracking
from devagen.core.config import TrackingConfig
from devagen.core.params import Params
from devagen.core.params import flatten

COMPARED = ("ocr_accuracy", "fid", "kid", "img_per_s")


def _serve(store: str, log: Path) -> tuple[subprocess.Popen, int]:
    """`mlflow server` on a port the system picks as it binds (--port 0: no other process can take it between a
    choice and the bind), and that port, read from the line uvicorn logs once it serves."""
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", "0",
                                   "--backend-store-uri", store, "--workers", "1"],
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    while not (found := re.search(r"running on http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))):
        if server.poll() is not None or time.time() > deadline:
            os.killpg(server.pid, signal.SIGTERM)
            pytest.fail(f"mlflow server did not start serving within 240 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return server, int(found.group(1))


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _log_two_runs(cfg: TrackingConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, lr, acc in (("baseline", 1e-3, 0.91), ("exp-lr5e5", 5e-5, 0.74)):
        monkeypatch.setenv("DVC_EXP_NAME", name)
        params = {**flatten(Params()), "train.lr": lr}
        run = tracking.stage_run(cfg, params, "train", {"device": "cpu"})
        run.log_metrics({"train/loss": 0.1}, step=1)
        run.log_metrics({"ocr_accuracy": acc, "fid": 5.0, "kid": 0.01, "img_per_s": 30.0})
        run.close("FINISHED")


@pytest.mark.slow
def test_mlflow_server_lists_both_runs_for_comparison(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _log_two_runs(TrackingConfig(experiment="devagen", uri=store), monkeypatch)
    server, port = _serve(store, tmp_path / "server.log")
    try:
        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        with urllib.request.urlopen(f"{base}/experiments/get-by-name?experiment_name=devagen", timeout=30) as r:
            experiment_id = json.loads(r.read())["experiment"]["experiment_id"]  # it serves: _serve saw it say so
        runs = _post(f"{base}/runs/search", {"experiment_ids": [experiment_id]})["runs"]
        names = {r["info"]["run_name"] for r in runs}
        assert names == {"baseline", "exp-lr5e5"}
        keys = [{p["key"] for p in r["data"]["params"]} for r in runs]
        assert keys[0] == keys[1] and "train.lr" in keys[0]
        lrs = {r["info"]["run_name"]: {p["key"]: p["value"] for p in r["data"]["params"]}["train.lr"] for r in runs}
        assert lrs == {"baseline": "0.001", "exp-lr5e5": "5e-05"}
        for run in runs:
            assert set(COMPARED) <= {m["key"] for m in run["data"]["metrics"]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
