"""The trained model as an MLflow pyfunc model: labels or text in, PNG images out, loaded by mlflow.pyfunc."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from devagen.core import tracking
from devagen.core.config import TrackingConfig
from devagen.sampling.pipeline import load_pipeline
from devagen.serving import pyfunc_model
from devagen.serving.draw import draw, request_label

DEFAULTS = {"seed": 0, "steps": 2, "guidance_scale": 2.0}


def _decode(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def test_request_labels() -> None:
    assert request_label("क") == 0 and request_label("character_2_kha") == 1 and request_label(45) == 45
    assert request_label(" 7 ") == 7 and request_label(None) is None and request_label(float("nan")) is None
    with pytest.raises(ValueError, match="0 to 45"):
        request_label(46)


def test_pyfunc_model_draws_labels_and_text(tiny_model_dir: Path, tmp_path: Path) -> None:
    import mlflow.pyfunc

    saved = pyfunc_model.save_pyfunc_model(tmp_path / "model", tiny_model_dir, "dpmpp", True, DEFAULTS)
    assert not (tmp_path / "weights" / "unet_raw").exists() and (tmp_path / "weights" / "unet").is_dir()
    model = mlflow.pyfunc.load_model(str(saved))
    requests = pd.DataFrame({"label": ["क", "5", None], "text": [None, None, "क ख"]})
    out = model.predict(requests)
    assert list(out.columns) == ["png", "height", "width"] and len(out) == 3
    images = [_decode(text) for text in out["png"]]
    assert [i.shape for i in images] == [(16, 16), (16, 16), (16, 48)]  # text: क, a gap, ख
    assert images[0].dtype == np.uint8 and (images[2][:, 16:32] == 0).all()
    direct = draw(load_pipeline(tiny_model_dir, "dpmpp", device="cpu"), requests.to_dict("records"), **DEFAULTS)
    assert all(np.array_equal(a, b) for a, b in zip(images, direct))  # the served images are the library's
    again = model.predict(requests, params={"seed": 1})
    assert again["png"][0] != out["png"][0] and model.predict(requests)["png"].tolist() == out["png"].tolist()


def test_model_logged_into_the_run_loads_from_it(tiny_uncond_model_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pyfunc

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = tracking.stage_run(cfg, {"a": 1}, "report")
    pyfunc_model.log_model(run, Path(shutil.copytree(tiny_uncond_model_dir, tmp_path / "m")), "ddim", False, DEFAULTS)
    run.end_stage({})
    model = mlflow.pyfunc.load_model(f"runs:/{run.run_id}/model")
    out = model.predict(pd.DataFrame({"label": [None, None]}))  # an unconditional model: no label
    a, b = (_decode(text) for text in out["png"])
    assert a.shape == b.shape == (16, 16) and not np.array_equal(a, b)


def test_typed_predict_saves_without_warning_and_validates_requests(tiny_model_dir: Path, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # MLflow's "Add type hints to the `predict` method" is a UserWarning
        saved = pyfunc_model.save_pyfunc_model(tmp_path / "model", tiny_model_dir, "dpmpp", True, DEFAULTS)
    said = [str(w.message) for w in caught] + caplog.messages
    assert not [m for m in said if "type hint" in m.lower()], said
    model = mlflow.pyfunc.load_model(str(saved))
    hints = typing.get_type_hints(type(model.unwrap_python_model()).predict)
    assert hints["model_input"] is pd.DataFrame and hints["return"] is pd.DataFrame
    with pytest.raises(MlflowException, match="label"):  # the signature's string column refuses a float
        model.predict(pd.DataFrame({"label": [3.5]}))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_ping(url: str, server: subprocess.Popen, log: Path, seconds: float = 240.0) -> None:
    """Return once GET url answers 200; fail with the server's log if it exits or never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1.0)
    pytest.fail(f"no /ping answer in {seconds:.0f} s: " + log.read_text(errors="replace")[-3000:])


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_request_with_pngs(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`mlflow models serve` on the saved model, one POST /invocations as README's request, real PNGs back."""
    saved = pyfunc_model.save_pyfunc_model(tmp_path / "model", tiny_model_dir, "dpmpp", True, DEFAULTS)
    port, log = _free_port(), tmp_path / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1",  # this interpreter's mlflow and the uvicorn it runs come first
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    command = ["mlflow", "models", "serve", "-m", str(saved), "--env-manager", "local",
               "-p", str(port), "--host", "127.0.0.1"]
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                  start_new_session=True)  # its own process group: the workers go with it
    try:
        _wait_for_ping(f"http://127.0.0.1:{port}/ping", server, log)
        body = {"dataframe_split": {"columns": ["label", "text"],
                                    "data": [["क", None], ["character_2_kha", None], [None, "क ख"]]},
                "params": {"seed": 0, "steps": 2, "guidance_scale": 2.0}}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode("utf-8"),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            rows = json.loads(answer.read())["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    assert [(r["height"], r["width"]) for r in rows] == [(16, 16), (16, 16), (16, 48)]
    for row in rows:
        png = base64.b64decode(row["png"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        image = Image.open(io.BytesIO(png))
        image.load()
        assert image.format == "PNG" and image.mode == "L" and image.size == (row["width"], row["height"])
    assert "type hints" not in log.read_text(errors="replace")  # nor when the server unpickles the model
