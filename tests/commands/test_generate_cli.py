"""`devagen generate`, each option run once through the command line on tiny random-weight models, and the
installed `devagen` console script itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from devagen.cli import cli
from devagen.sampling.folder import load_unet
from devagen.sampling.students import student_dir, write_student

REPO = Path(__file__).parents[2]


@pytest.fixture()
def workdir(tmp_path: Path, tiny_style_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with models/diffusion (the pen-conditioned tiny model) and its 1-step student."""
    shutil.copytree(tiny_style_model_dir, tmp_path / "models" / "diffusion")
    write_student(load_unet(tiny_style_model_dir, "unet"), tiny_style_model_dir,
                  student_dir(tmp_path / "models" / "distilled", 1))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _generate(*args: str) -> Result:
    return CliRunner().invoke(cli, ["generate", *args, "--params", str(REPO / "params.yaml")])


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_text_writes_a_row(workdir: Path) -> None:
    result = _generate("--text", "क ख १", "--steps", "1", "--out", "word.png")
    assert result.exit_code == 0, result.output
    height, width = _pixels(workdir / "word.png").shape[:2]
    assert width > 2 * height  # three glyphs and a gap side by side


def test_distilled_samples_with_the_student(workdir: Path) -> None:
    result = _generate("--class", "क", "-n", "2", "--distilled", "1", "--out", "student.png")
    assert result.exit_code == 0, result.output
    assert _pixels(workdir / "student.png").size > 0
    missing = _generate("--class", "क", "--distilled", "2", "--out", "none.png")
    assert missing.exit_code == 1 and "no distilled student with 2 steps" in missing.output
    assert not (workdir / "none.png").exists()


def test_distilled_with_guidance_is_refused_in_one_line(workdir: Path) -> None:
    result = _generate("--class", "क", "--distilled", "1", "--guidance", "2", "--out", "x.png")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "--guidance does not apply to a distilled student" in lines[0]
    assert not (workdir / "x.png").exists()


def test_no_slant_shear_keeps_the_networks_own_slant(workdir: Path) -> None:
    for name, flag in (("shear.png", "--slant-shear"), ("own.png", "--no-slant-shear")):
        result = _generate("--text", "क", "--slant", "20", "--steps", "1", flag, "--out", name)
        assert result.exit_code == 0, result.output
    assert not np.array_equal(_pixels(workdir / "shear.png"), _pixels(workdir / "own.png"))  # the shear was skipped


def test_classifier_guidance_lets_an_unconditional_model_draw_a_class(tmp_path: Path, tiny_uncond_model_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """sample.guidance: classifier loads models/noisy_classifier; a distilled student is drawn without it."""
    from devagen.core.config import DiffusionConfig, NoisyClassifierConfig
    from devagen.diffusion.noisy_classifier import NoisyClassifier, save_classifier, schedule_of

    shutil.copytree(tiny_uncond_model_dir, tmp_path / "models" / "diffusion")
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("sample:\n  guidance: classifier\n  steps: 2\nnoisy_classifier:\n  enabled: true\n"
                                   "tracking:\n  enabled: false\n")
    cli_args = ["generate", "--class", "क", "-n", "2", "--out", "ka.png"]
    missing = CliRunner().invoke(cli, cli_args)
    assert missing.exit_code == 1 and "no trained noisy classifier" in missing.output, missing.output
    save_classifier(NoisyClassifier(4, 16), Path("models/noisy_classifier"), NoisyClassifierConfig(width=4),
                    schedule_of(DiffusionConfig()))
    result = CliRunner().invoke(cli, cli_args)
    assert result.exit_code == 0, result.output
    assert _pixels(tmp_path / "ka.png").size > 0
    write_student(load_unet(tiny_uncond_model_dir, "unet"), tiny_uncond_model_dir,
                  student_dir(tmp_path / "models" / "distilled", 1))
    student = CliRunner().invoke(cli, ["generate", "-n", "2", "--distilled", "1", "--out", "student.png"])
    assert student.exit_code == 0, student.output


def test_the_installed_console_script_runs() -> None:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    script = shutil.which("devagen", path=path)
    assert script, f"no devagen console script beside {sys.executable} (pip install -e .)"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PATH": path}
    top = subprocess.run([script, "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert top.returncode == 0, top.stderr
    assert {"train", "sample", "generate", "evaluate"} <= set(top.stdout.split())
