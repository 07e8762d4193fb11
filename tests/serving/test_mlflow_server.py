"""The MLflow UI comparison: a real `mlflow server` on 127.0.0.1 lists two pipeline runs side by side."""

from __future__ import annotations

import json
import os
import signal
import socket
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", store, "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/experiments/get-by-name?experiment_name=devagen", timeout=5) as r:
                    experiment_id = json.loads(r.read())["experiment"]["experiment_id"]
                break
            except Exception:  # noqa: BLE001 - not up yet
                assert time.time() < deadline, "mlflow server did not answer within 120 s"
                assert server.poll() is None, "mlflow server exited"
                time.sleep(1)
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
