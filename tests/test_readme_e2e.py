"""README's `dvc exp run` commands, end to end through DVC on the tiny DHCD-shaped archive.

Each line is parsed from README.md and run with its own -S keys; only sizes are overridden (tiny
UNet, 2 sampling steps; the judge and the sample counts shrink in the committed params.yaml), plus
fp16 -> auto on a machine without CUDA, where fp16 cannot run. Then the trained folder loads with
plain diffusers the way the model card says.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dhcd_fixture import make_archive

REPO = Path(__file__).parents[1]
# Sizes only: every README key keeps its value unless it is listed here.
SIZE_OVERRIDES = {"model.preset": "tiny", "sample.steps": "2"}
TINY_PARAMS = {
    "train_ocr": {"epochs": 1, "batch_size": 64, "width": 8},
    "train": {"checkpoint_every": 1000, "log_every": 2},
    "sample": {"per_class": 2, "count": 92, "batch_size": 128},
    "evaluate": {"kid_subset_size": 20, "kid_subsets": 10, "batch_size": 128},
}
LOAD_UNCONDITIONAL = r'''
import sys, torch
from diffusers import DDPMPipeline, DPMSolverMultistepScheduler
pipeline = DDPMPipeline.from_pretrained("models/diffusion")
pipeline.scheduler = DPMSolverMultistepScheduler()
images = pipeline(batch_size=4, generator=torch.Generator().manual_seed(0), num_inference_steps=10).images
assert len(images) == 4 and images[0].size == (32, 32), images
'''
LOAD_CONDITIONAL = r'''
import torch
from diffusers import DiffusionPipeline
pipeline = DiffusionPipeline.from_pretrained("models/diffusion", trust_remote_code=True).use_sampler("dpmpp")
images = pipeline(labels=[0, 1, 2], guidance_scale=3.0, num_inference_steps=2, generator=torch.manual_seed(0))
assert type(pipeline).__name__ == "DevagenPipeline" and images.shape == (3, 32, 32), images.shape
'''


def readme_commands() -> list[list[str]]:
    """Every `dvc exp run` line of README.md, split into arguments."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [shlex.split(line) for line in re.findall(r"^dvc exp run .*$", text, flags=re.MULTILINE)]


def tiny(args: list[str]) -> list[str]:
    """The same command with sizes overridden (and fp16 -> auto without CUDA); -S keys unchanged."""
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key in SIZE_OVERRIDES:
            value = SIZE_OVERRIDES[key]
        if eq and key == "train.mixed_precision" and value == "fp16" and not torch.cuda.is_available():
            value = "auto"
        out.append(f"{key}={value}" if eq else arg)
    return out


def _set_keys(args: list[str]) -> list[str]:
    return [a.partition("=")[0] for a, prev in zip(args[1:], args) if prev == "-S"]


def _run(args: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def make_repo(tmp: Path) -> tuple[Path, dict]:
    """A git + DVC repository with the project's pipeline, tiny params and the tiny archive; its environment."""
    repo = tmp / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "stages", "src"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, repo / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY_PARAMS.items():
        params[section].update(values)
    params["tracking"]["uri"] = f"sqlite:///{tmp / 'mlflow.db'}"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1",
           "DHCD_ARCHIVE": str(make_archive(tmp / "dhcd.zip", train=6, test=3)), "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp / "hf"), "PYTHONPATH": str(REPO / "src"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for key in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_ROOT", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    _run(["git", "init", "-q"], repo, env)
    _run(["dvc", "init", "-q"], repo, env)
    _run(["dvc", "config", "core.autostage", "true"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "tiny pipeline"], repo, env)
    return repo, env


def test_readme_has_the_seed_and_recommended_commands() -> None:
    commands = readme_commands()
    names = [c[c.index("-n") + 1] for c in commands]
    assert names == ["seed-gpu", "gpu-recommended"]
    seed = dict(a.partition("=")[::2] for a in tiny(commands[0]) if "=" in a)
    assert seed["model.conditional"] == "false" and seed["model.preset"] == "tiny"
    assert _set_keys(tiny(commands[1])) == _set_keys(commands[1])


@pytest.mark.slow
def test_readme_dvc_exp_run_lines_run_end_to_end(tmp_path: Path) -> None:
    repo, env = make_repo(tmp_path)
    loads = {"seed-gpu": LOAD_UNCONDITIONAL, "gpu-recommended": LOAD_CONDITIONAL}
    for args in readme_commands():
        name = args[args.index("-n") + 1]
        _run(tiny(args), repo, env)
        ev = json.loads((repo / "reports/metrics/eval.json").read_text())
        conditional = name == "gpu-recommended"
        assert ev["conditional"] is conditional and ev["n_generated"] == 92
        assert ("per_class_accuracy" if conditional else "per_class_read_share") in ev
        for out in ("reports/figures/confusion.png", "reports/eval/per_class.csv", "reports/figures/per_class.png",
                    "reports/report.html", "models/diffusion/README.md", "models/diffusion/samples.png"):
            assert (repo / out).is_file(), f"{name}: {out}"
        card = (repo / "models/diffusion/README.md").read_text(encoding="utf-8")
        assert ("class-conditional" in card) is conditional and "library_name: diffusers" in card
        _run([sys.executable, "-c", loads[name]], repo, env)
    listed = _run(["dvc", "exp", "list", "--name-only"], repo, env).split()
    assert {"seed-gpu", "gpu-recommended"} <= set(listed)
