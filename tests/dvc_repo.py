"""Build a throwaway git + DVC repository holding the project's pipeline at tiny sizes, for tests that
run `dvc exp run` / `dvc queue` end to end on the tiny DHCD-shaped archive."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import yaml
from dhcd_fixture import make_archive

REPO = Path(__file__).parents[1]
# Sizes that make every stage take seconds on a CPU.
TINY = {
    "train_ocr": {"epochs": 1, "batch_size": 64, "width": 8},
    "model": {"preset": "tiny"},
    "train": {"max_steps": 6, "batch_size": 8, "warmup_steps": 2, "checkpoint_every": 1000, "log_every": 2},
    "sample": {"steps": 2, "per_class": 2, "count": 92, "batch_size": 128, "tone_reference": 46},
    "evaluate": {"kid_subset_size": 20, "kid_subsets": 10, "batch_size": 128},
}


def run(args: list[str], cwd: Path, env: dict, timeout: int = 1200) -> str:
    """Run a command; fail the test with its output tails if it fails."""
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def make_repo(tmp: Path, sizes: dict, tracking_uri: Optional[str] = None) -> tuple[Path, dict]:
    """tmp/repo: dvc.yaml, src/ and params.yaml updated with `sizes`, committed; and its environment.

    tracking_uri None keeps params.yaml's relative sqlite:///mlflow.db (the repository's own store).
    """
    repo = tmp / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "src"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, repo / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in sizes.items():
        params[section].update(values)
    if tracking_uri:
        params["tracking"]["uri"] = tracking_uri
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text("mlflow.db\nmlruns/\n")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1",
           "DHCD_ARCHIVE": str(make_archive(tmp / "dhcd.zip", train=6, test=3)), "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp / "hf"), "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for key in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_ROOT", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    run(["dvc", "config", "core.autostage", "true"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "tiny pipeline"], repo, env)
    return repo, env
