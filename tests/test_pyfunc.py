"""The trained model as an MLflow pyfunc model: labels or text in, PNG images out, loaded by mlflow.pyfunc."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from devagen import pyfunc_model, tracking
from devagen.config import TrackingConfig
from devagen.pipeline import load_pipeline
from devagen.serving import draw, request_label

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
