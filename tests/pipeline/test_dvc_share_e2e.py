"""Sharing through a DVC remote, as README shows: push once; a fresh clone pulls the trained model and
the report and is up to date, so nothing retrains. The tiny pipeline, a local folder as the remote."""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc_repo import TINY, make_repo, run


@pytest.mark.slow
def test_fresh_clone_pulls_results_and_reproduces_nothing(tmp_path: Path) -> None:
    repo, env = make_repo(tmp_path, TINY)
    run(["dvc", "repro"], repo, env)
    run(["dvc", "remote", "add", "-d", "storage", str(tmp_path / "remote")], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "results and remote"], repo, env)
    run(["dvc", "push"], repo, env)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / "models/diffusion/unet").exists()
    run(["dvc", "pull"], clone, env)
    for path in ("models/diffusion/unet/diffusion_pytorch_model.safetensors", "models/diffusion/README.md",
                 "models/diffusion/model_index.json", "models/ocr", "reports/report.html", "samples/samples.npz"):
        assert (clone / path).exists(), path
    assert "up to date" in run(["dvc", "status"], clone, env)
    assert "didn't change, skipping" in run(["dvc", "repro"], clone, env)
