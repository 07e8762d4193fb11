"""DVC's everyday moves through real `dvc exp run` at tiny sizes, read back from the MLflow store:
a learning-rate sweep that `dvc exp show --only-changed` shows in a few columns; an experiment that fails in
`sample`, one refused at its first stage, one restored from the run cache and then failing, one restored
entirely, one killed mid-training and resumed; switching experiments with `dvc exp apply` and
`git checkout` + `dvc checkout` keeps the model folder whole, and damage after a checkout is still refused."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from dvc_repo import TINY, make_repo, run

from devagen.core import tracking
from devagen.core.config import TrackingConfig

SWEEP = {"lr-a": "0.001", "lr-b": "0.003", "lr-c": "0.004"}  # not params.yaml's own value


def _runs(repo: Path) -> dict:
    """run name -> mlflow Run of the pipeline's experiment in the repository's own store."""
    client = tracking._client(TrackingConfig(uri=f"sqlite:///{repo / 'mlflow.db'}"))
    experiment = client.get_experiment_by_name(TrackingConfig().experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    names = [r.info.run_name for r in runs]
    assert len(names) == len(set(names)), f"one run per experiment, got {names}"
    return {r.info.run_name: r for r in runs}


def _fails(args: list[str], repo: Path, env: dict) -> str:
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode != 0, f"{' '.join(args)} should fail:\n{proc.stdout[-2000:]}"
    return proc.stdout + proc.stderr


def _reset(repo: Path, env: dict) -> None:
    """Back to the committed baseline after a failed experiment left its params in the workspace."""
    run(["git", "checkout", "-f", "HEAD"], repo, env)
    run(["dvc", "checkout", "-f"], repo, env)


def _kill_training(args: list[str], repo: Path, env: dict) -> None:
    """Start `args`, kill -9 the train stage once it has saved a checkpoint, wait for DVC to give up."""
    proc = subprocess.Popen(args, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints, deadline = repo / "models" / "checkpoints", time.time() + 600
    while not list(checkpoints.glob("step_*")):  # a sealed checkpoint (step_XXXXXXX/)
        assert proc.poll() is None and time.time() < deadline, "training ended before a checkpoint was saved"
        time.sleep(0.5)
    pids = [pid for pid in subprocess.run(["pgrep", "-f", "devagen train"], capture_output=True,
                                          text=True).stdout.split() if _runs_in(int(pid), repo)]
    assert pids, "no train process to kill"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    proc.wait(timeout=600)
    assert proc.returncode != 0


def _runs_in(pid: int, repo: Path) -> bool:
    """Whether process `pid` works in `repo` (so that a train stage elsewhere on the machine is left alone)."""
    try:
        return Path(f"/proc/{pid}/cwd").resolve().is_relative_to(repo.resolve())
    except OSError:
        return False


def _inputs(r) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(i.dataset.name, i.tags[0].value) for i in r.inputs.dataset_inputs if i.dataset.digest}


@pytest.mark.slow
def test_experiments_compare_fail_restore_resume_and_switch(tmp_path: Path) -> None:
    repo, env = make_repo(tmp_path, TINY)
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline results"], repo, env)

    for name, lr in SWEEP.items():
        run(["dvc", "exp", "run", "-n", name, "-S", f"train.lr={lr}"], repo, env)
    header = next(csv.reader(io.StringIO(run(["dvc", "exp", "show", "--only-changed", "--csv"], repo, env))))
    shown = [c for c in header if c not in ("rev", "typ")]  # csv-only columns; the terminal table has the rest
    assert len(shown) <= 30 and "train.lr" in shown, header
    full = list(csv.DictReader(io.StringIO(run(["dvc", "exp", "show", "--csv"], repo, env))))
    for column in ("ocr_accuracy", "c2st_accuracy", "precision", "legible_share", "style_stroke_width_ratio",
                   "style_ink_mass_ratio"):  # each a column, shown whenever the sweep changed it
        assert column in full[0], (column, list(full[0]))
        assert column in header or len({row[column] for row in full}) == 1, (column, header)

    # A sample set beyond any machine's memory (46 classes x 10^15 images): params are valid and train runs;
    # only the sample stage meets the limit.
    out = _fails(["dvc", "exp", "run", "-n", "fails-in-sample", "-S", "sample.per_class=1000000000000000"], repo, env)
    assert "'sample'" in out
    _reset(repo, env)
    out = _fails(["dvc", "exp", "run", "-n", "refused", "-S", "train.lr=-1"], repo, env)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors == ["error: params.yaml: train.lr: must be > 0"] and "Traceback" not in out, out[-3000:]
    run(["dvc", "status"], repo, env)  # the refused experiment leaves a workspace DVC still reads; good runs follow
    _reset(repo, env)
    out = _fails(["dvc", "exp", "run", "-n", "restored-then-fails", "-S", f"train.lr={SWEEP['lr-a']}",
                  "-S", "sample.guidance=classifier"], repo, env)  # refused: no noisy classifier
    assert "Stage 'train' is cached - skipping run" in out, out[-3000:]
    _reset(repo, env)
    out = run(["dvc", "exp", "run", "-n", "all-restored", "-S", f"train.lr={SWEEP['lr-a']}"], repo, env)
    killed = ["dvc", "exp", "run", "-n", "killed", "-S", "train.max_steps=400", "-S", "train.checkpoint_every=20"]
    _kill_training(killed, repo, env)
    run(killed, repo, env)  # the same experiment again: training resumes from its checkpoint

    runs = _runs(repo)
    want = {**{name: "FINISHED" for name in SWEEP}, "fails-in-sample": "FAILED", "refused": "FAILED",
            "restored-then-fails": "FAILED", "all-restored": "FINISHED", "killed": "FINISHED"}
    assert {name: runs[name].info.status for name in want} == want
    failed = {name: runs[name].data.tags for name in want if want[name] == "FAILED"}
    assert {name: tags[tracking.FAILED_STAGE_TAG] for name, tags in failed.items()} == {
        "fails-in-sample": "sample", "refused": "train",
        "restored-then-fails": "distill"}  # the first stage after the restored train loads params.yaml and refuses it
    assert "MemoryError" in failed["fails-in-sample"][tracking.ERROR_TAG]
    assert "train.lr" in failed["refused"][tracking.ERROR_TAG]
    # train came from the run cache; sample and evaluate write plain `cache: false` figures, which DVC never
    # restores from its run cache, so they ran again (deterministically: the same numbers as lr-a's)
    assert runs["all-restored"].data.tags["devagen.reused_stages"] == "train"
    assert runs["all-restored"].data.metrics["ocr_accuracy"] == runs["lr-a"].data.metrics["ocr_accuracy"]
    assert "killed" in runs["killed"].data.tags["devagen.earlier_attempt"]
    for name, r in runs.items():
        assert _inputs(r) == {("DHCD train", "training"), ("DHCD test", "evaluation")}, name
    client = tracking._client(TrackingConfig(uri=f"sqlite:///{repo / 'mlflow.db'}"))
    results = {a.path for a in client.list_artifacts(runs["lr-a"].info.run_id, "results")}
    assert {"results/details", "results/per_class.csv"} <= results, results  # MLflow keeps the whole results

    # Switching experiments keeps the model folder whole: the manifest comes back with the files it lists.
    run(["dvc", "exp", "apply", "lr-a"], repo, env)
    run(["dvc", "repro", "-f", "-s", "sample"], repo, env)
    run(["git", "checkout", "-f", "HEAD"], repo, env)
    run(["dvc", "checkout", "-f"], repo, env)
    run(["dvc", "repro", "-f", "-s", "sample"], repo, env)
    weights = next((repo / "models" / "diffusion" / "unet").glob("*.safetensors"))
    with weights.open("ab") as fh:
        fh.write(b"damage")
    out = _fails(["dvc", "repro", "-f", "-s", "sample"], repo, env)
    assert "models/diffusion: damaged or unreadable" in out


@pytest.mark.slow
def test_a_list_valued_shape_key_runs_as_an_experiment_and_the_shape_built_is_recorded(tmp_path: Path) -> None:
    """`-S 'model.block_out_channels=[...]'` as a user types it: DVC writes a YAML list, every stage loads it, and
    the train details, the MLflow run and the model card name the shape that was built."""
    repo, env = make_repo(tmp_path, TINY)
    run(["dvc", "exp", "run", "-n", "wider", "-S", "model.block_out_channels=[16,32,32]",
         "-S", "model.attention_levels=[2]"], repo, env)
    unet = json.loads((repo / "reports" / "details" / "train.json").read_text())["unet"]
    assert unet["block_out_channels"] == [16, 32, 32] and unet["attention_levels"] == [2]
    params = _runs(repo)["wider"].data.params
    assert params["model.block_out_channels"] == params["unet.block_out_channels"] == "[16, 32, 32]"
    assert params["unet.attention_levels"] == "[2]" and params["unet.mid_block"] == "attention"
    card = (repo / "models" / "diffusion" / "README.md").read_text(encoding="utf-8")
    assert "levels of 16/32/32 channels (attention at levels: 2; mid block: attention)" in card
