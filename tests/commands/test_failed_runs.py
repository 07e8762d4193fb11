"""A stage that stops on an error leaves its experiment's MLflow run FAILED with the stage and the error,
also when it stopped before opening the run: a params.yaml refused at load, a refusal in the command."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from devagen.cli import cli
from devagen.core import tracking
from devagen.core.config import TrackingConfig

REPO = Path(__file__).parents[2]


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "bad-idea")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _params(root: Path, **changes: dict) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in changes.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def _only_run(root: Path):  # type: ignore[no-untyped-def]
    client = tracking._client(TrackingConfig(uri=f"sqlite:///{root / 'mlflow.db'}"))
    experiment = client.get_experiment_by_name(TrackingConfig().experiment)
    [run] = client.search_runs([experiment.experiment_id])
    return run


def test_params_refused_at_load_still_leave_a_failed_run(workdir: Path) -> None:
    _params(workdir, train={"lr": -1.0})
    result = CliRunner().invoke(cli, ["train"])
    assert result.exit_code == 1 and "train.lr" in result.output
    run = _only_run(workdir)
    assert run.info.status == "FAILED" and run.info.run_name == "bad-idea"
    assert run.data.tags[tracking.FAILED_STAGE_TAG] == "train" and "train.lr" in run.data.tags[tracking.ERROR_TAG]
    assert run.data.params["train.lr"] == "-1.0"  # the values that were refused


def test_a_refusal_inside_a_stage_leaves_a_failed_run(workdir: Path) -> None:
    _params(workdir)  # valid params; the sample stage finds no trained model
    result = CliRunner().invoke(cli, ["sample"])
    assert result.exit_code == 1
    run = _only_run(workdir)
    assert run.info.status == "FAILED" and run.data.tags[tracking.FAILED_STAGE_TAG] == "sample"
    assert "models/diffusion" in run.data.tags[tracking.ERROR_TAG]
    assert f"FAILED in stage `sample`" in run.data.tags[tracking.NOTE_TAG]
