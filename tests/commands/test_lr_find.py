"""`devagen lr-find`: the geometric sweep, the suggestion's arithmetic on hand-made curves, the sweep over the real
training step, and the command's CSV, PNG, MLflow metrics and refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from devagen.cli import cli
from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig
from devagen.core.shape import ModelConfig
from devagen.data import prepared as data
from devagen.pen.conditions import measure_pen
from devagen.training.lr_find import lr_sweep, suggest, sweep_factor

REPO = Path(__file__).parents[2]
RNG = np.random.default_rng(0)
IMAGES, LABELS = RNG.integers(0, 256, (32, 32, 32), dtype=np.uint8), RNG.integers(0, 46, 32)

pytestmark = pytest.mark.usefixtures("cpu_one_thread")


def test_the_sweep_is_geometric_from_start_to_end() -> None:
    factors = [sweep_factor(step, 5, 1e-4, 1.0) for step in range(5)]
    assert factors == pytest.approx([1.0, 10.0, 100.0, 1e3, 1e4])


def _rows(lrs: list[float], smoothed: list[float]) -> list[dict]:
    return [{"step": i + 1, "lr": lr, "loss": s, "smoothed": s} for i, (lr, s) in enumerate(zip(lrs, smoothed))]


def test_suggestion_is_a_tenth_of_the_min_loss_lr_and_steepest_is_the_sharpest_fall() -> None:
    lrs = [10.0 ** e for e in range(-6, 1)]  # 1e-6 .. 1
    found = suggest(_rows(lrs, [1.0, 0.98, 0.9, 0.5, 0.3, 0.25, 2.0]))
    assert found["min_loss_lr"] == pytest.approx(0.1) and found["suggested_lr"] == pytest.approx(0.01)
    assert found["steepest_lr"] == pytest.approx(1e-3)  # central slopes: -0.06, -0.24, -0.3, -0.125, ...
    early = suggest(_rows(lrs[:3], [0.5, 0.6, 0.7]))  # lowest at the first step: no slope before it
    assert early["min_loss_lr"] == 1e-6 and early["steepest_lr"] is None


def test_sweep_runs_the_training_step_and_stops_when_the_loss_diverges() -> None:
    cfg, model = TrainConfig(batch_size=8), ModelConfig(preset="tiny", style_conditioning=False)
    rows = lr_sweep(cfg, model, DiffusionConfig(), AugmentConfig(), IMAGES, LABELS, 1e-4, 1e4, 40, progress=False)
    assert 3 <= len(rows) < 40  # a tiny UNet at lr in the thousands blows up
    lrs = [r["lr"] for r in rows]
    assert lrs[0] == pytest.approx(1e-4) and np.allclose(np.diff(np.log10(lrs)), 8 / 39)
    last = rows[-1]
    assert last["smoothed"] > 4 * min(r["smoothed"] for r in rows) or not math.isfinite(last["loss"])
    assert all(math.isfinite(r["loss"]) for r in rows) and [r["step"] for r in rows] == list(range(1, len(rows) + 1))


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with params.yaml (tiny pen-conditioned model, tracking into a sqlite file) and a prepared split."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["preset"] = "tiny"
    params["train"]["batch_size"] = 8
    params["tracking"]["uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    data.save_split(data.Split(IMAGES, LABELS, measure_pen(IMAGES)), tmp_path / "data/prepared/train.npz")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return tmp_path


def test_command_writes_csv_png_and_mlflow_and_prints_the_suggestion(project: Path) -> None:
    result = CliRunner().invoke(cli, ["lr-find", "--start", "1e-4", "--end", "1e-2", "--steps", "6"])
    assert result.exit_code == 0, result.output
    assert "suggested train.lr" in result.output and "a tenth of the min-loss lr" in result.output
    lines = (project / "reports/lr_find/lr_find.csv").read_text().splitlines()
    assert lines[0] == "step,lr,loss,smoothed" and len(lines) == 7
    assert Image.open(project / "reports/lr_find/lr_find.png").size[0] > 100
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("devagen").experiment_id])
    metrics = run.data.metrics
    assert metrics["lr_find/suggested_lr"] == pytest.approx(metrics["lr_find/min_loss_lr"] / 10)
    assert 1e-5 <= metrics["lr_find/suggested_lr"] <= 1e-3 and run.data.params["train.lr_schedule"] == "cosine"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "lr_find")} == {"lr_find/lr_find.csv",
                                                                                  "lr_find/lr_find.png"}


def test_command_refuses_an_end_below_the_start_in_one_line(project: Path) -> None:
    result = CliRunner().invoke(cli, ["lr-find", "--start", "1e-2", "--end", "1e-3"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "--end (0.001) must be above --start (0.01)" in result.output
