"""MLflow tracking: runs named after the DVC experiment, params/metrics logged, resume, unreachable store."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagen import tracking
from devagen.config import TrackingConfig


@pytest.fixture()
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrackingConfig:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return TrackingConfig(experiment="t", uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_run_named_after_dvc_experiment_and_resumed(cfg: TrackingConfig, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "exp-lr5e5")
    run = tracking.start_run(cfg, {"train.lr": 5e-5}, {"device": "cpu"})
    run.log_metrics({"loss": 0.5, "note": "skip-me"}, step=3)
    run.save(tmp_path / "run.json")
    again = tracking.resume_run(cfg, tmp_path / "run.json")
    again.log_metrics({"ocr_accuracy": 0.9})
    again.finish()
    [row] = tracking.recent_runs(cfg, 5)
    assert row["name"] == "exp-lr5e5" and row["params"]["train.lr"] == "5e-05"
    assert row["metrics"] == {"loss": 0.5, "ocr_accuracy": 0.9}


def test_unreachable_server_warns_once_and_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = TrackingConfig(uri="http://127.0.0.1:9")
    run = tracking.start_run(cfg, {"a": 1}, {})
    run.log_metrics({"loss": 1.0}, step=1)
    assert not run.active
    assert capsys.readouterr().err.count("warning: MLflow") == 1


def test_disabled_and_missing_run_file_are_noops(cfg: TrackingConfig, tmp_path: Path) -> None:
    assert not tracking.resume_run(cfg, tmp_path / "none.json").active
    off = TrackingConfig(enabled=False)
    assert not tracking.start_run(off, {}, {}).active and tracking.recent_runs(off, 3) == []


def test_disabled_tracking_needs_no_mlflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """tracking.enabled: false must run on a machine without mlflow (e.g. a bare GPU box)."""
    import sys

    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # any import of mlflow now raises ImportError
    off = TrackingConfig(enabled=False)
    run = tracking.start_run(off, {"train.lr": 1e-4}, {"device": "cuda"})
    run.log_params({"a": 1})
    run.log_metrics({"loss": 0.5}, step=1)
    run.set_tags({"k": "v"})
    run.log_artifact(tmp_path)
    run.finish()
    assert not run.active
