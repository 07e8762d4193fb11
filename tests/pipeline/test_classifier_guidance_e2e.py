"""Classifier guidance end to end: the noisy_classifier stage trains on a tiny DHCD-shaped archive, then the sample
stage draws with sample.guidance: classifier from a conditional and an unconditional model, both recorded in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from model_fixture import make_model_dir

from devagen.cli import cli
from devagen.core import integrity
from devagen.data import prepared as data

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cpu_one_thread")]
REPO = Path(__file__).parents[2]
TINY = {"prepare": {"image_size": 16},
        "noisy_classifier": {"enabled": True, "steps": 4, "batch_size": 16, "width": 4},
        "sample": {"sampler": "dpmpp", "steps": 2, "per_class": 1, "batch_size": 64, "tone_reference": 46,
                   "guidance": "classifier", "classifier_scale": 5.0, "autoguidance_scale": 1.0}}


@pytest.mark.parametrize("conditional", (True, False))
def test_the_stage_then_classifier_guided_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  tiny_archive: Path, conditional: bool) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    params["model"].update(conditional=conditional, style_conditioning=False, layout_conditioning=False)
    params["tracking"]["uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    split = data.prepare(tiny_archive, 32)
    data.save_split(split.train, tmp_path / "data/prepared/train.npz")
    data.save_split(split.test, tmp_path / "data/prepared/test.npz")
    integrity.write_manifest(make_model_dir(tmp_path / "models/diffusion", conditional=conditional, image_size=16))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", f"classifier-{conditional}")

    for stage in ("noisy-classifier", "sample"):
        result = CliRunner().invoke(cli, [stage])
        assert result.exit_code == 0, result.output
    with np.load("samples/samples.npz") as npz:  # 46 asked classes, from either model
        assert npz["images"].shape == (46, 16, 16) and npz["labels"].tolist() == list(range(46))
    sample = json.loads(Path("reports/details/sample.json").read_text())
    assert sample["guidance"] == "classifier" and sample["classifier_scale"] == 5.0
    cfg_scale = params["sample"]["guidance_scale"] if conditional else 1.0  # CFG on top of the classifier: params.yaml's
    assert sample["guidance_scale"] == cfg_scale and sample["nfe"] == 2 * (1 + conditional)
    tone = json.loads(Path("models/diffusion/tone.json").read_text())["tone"]
    assert tone["fitted_with"]["guidance"] == "classifier" and tone["fitted_with"]["classifier_scale"] == 5.0

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name(params["tracking"]["experiment"]).experiment_id])
    assert run.data.tags["devagen.stages_ran"] == "noisy_classifier,sample"
    assert 0 <= run.data.metrics["noisy_classifier_test_accuracy_t0"] <= 1
    assert run.data.params["sample.guidance"] == "classifier" and run.data.params["noisy_classifier.enabled"] == "True"
    assert "noisy_classifier.png" in {f.path.split("/")[-1] for f in client.list_artifacts(run.info.run_id, "figures")}
