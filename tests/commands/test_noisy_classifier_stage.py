"""`devagen noisy-classifier` (DVC stage noisy_classifier) on a tiny DHCD-shaped archive: a note when off (the
default), the network, its measures and its figure when on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from devagen.cli import cli
from devagen.commands.common import headline
from devagen.data import prepared as data
from devagen.diffusion.noisy_classifier import load_classifier

pytestmark = pytest.mark.usefixtures("cpu_one_thread")
TINY = {"enabled": True, "steps": 3, "batch_size": 16, "width": 4}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, tiny_archive: Path) -> Path:
    """data/prepared/ of the tiny archive at DHCD's 32x32."""
    root = tmp_path_factory.mktemp("prepared")
    split = data.prepare(tiny_archive, 32)
    data.save_split(split.train, root / "data/prepared/train.npz")
    data.save_split(split.test, root / "data/prepared/test.npz")
    return root / "data/prepared"


def _project(root: Path, prepared: Path, params: dict) -> None:
    (root / "data").mkdir(parents=True)
    (root / "data/prepared").symlink_to(prepared)
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "tracking": {"enabled": False}}))


def test_off_by_default_it_writes_only_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("tracking:\n  enabled: false\n")
    result = CliRunner().invoke(cli, ["noisy-classifier"])
    assert result.exit_code == 0, result.output
    assert "off (noisy_classifier.enabled: false)" in result.output
    assert [p.name for p in Path("models/noisy_classifier").iterdir()] == ["classifier.json"]
    for folder in ("reports/metrics", "reports/details"):
        assert json.loads(Path(folder, "noisy_classifier.json").read_text()) == {"enabled": False}
    assert Path("reports/figures/noisy_classifier.png").stat().st_size > 0


@pytest.mark.parametrize("image_size", (32, 16))
def test_on_it_trains_saves_and_measures_at_the_models_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            prepared: Path, image_size: int) -> None:
    _project(tmp_path, prepared, {"noisy_classifier": TINY, "prepare": {"image_size": image_size},
                                  "diffusion": {"beta_schedule": "linear"}})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["noisy-classifier"])
    assert result.exit_code == 0, result.output
    details = json.loads(Path("reports/details/noisy_classifier.json").read_text())
    accuracies = [details[f"test_accuracy_t{t}"] for t in (0, 250, 500, 750, 999)]
    assert all(0 <= a <= 1 for a in accuracies) and details["test_images"] == 46 * 2
    assert details["enabled"] and details["steps"] == 3 and np.isfinite(details["final_loss"])
    shown = json.loads(Path("reports/metrics/noisy_classifier.json").read_text())
    assert shown == headline("noisy_classifier", details) and len(shown) == 7
    classifier, schedule = load_classifier(Path("models/noisy_classifier"))
    assert classifier.image_size == image_size and classifier.width == 4
    assert schedule.config.beta_schedule == "linear"  # the diffusion section's schedule
    assert sorted(p.name for p in Path("models/noisy_classifier").iterdir()) == [
        "checksums.json", "classifier.json", "classifier.safetensors"]
    assert Path("reports/figures/noisy_classifier.png").stat().st_size > 1000
    assert not list(Path("models").glob(".tmp-*"))
