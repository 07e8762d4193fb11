"""MLflow tracking: one run per DVC experiment whichever stage opens it, every stage's metrics files,
statuses, the store a queued experiment writes to, an unreachable store, tracking switched off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devagen.core import tracking
from devagen.core.config import TrackingConfig
from devagen.core.io import write_json

PARAMS = {"train.lr": 5e-5, "sample.per_class": 2}


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite file with its tables created (MLflow's migrations take seconds; copying it does not)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    tracking._client(TrackingConfig(uri=f"sqlite:///{path}")).search_experiments()
    return path


@pytest.fixture()
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> TrackingConfig:
    for key in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_ROOT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    monkeypatch.setattr(tracking, "git_commit", lambda: "c0ffee" * 6 + "abcd")
    return TrackingConfig(experiment="t")  # the default relative sqlite:///mlflow.db


def _files(root: Path, **stages: dict) -> dict[str, Path]:
    for stem, values in stages.items():
        write_json(values, root / f"{stem}.json")
    return {stem: root / f"{stem}.json" for stem in ("data", "ocr", "train", "sample", "eval")}


def _run(cfg: TrackingConfig, run_id: str):  # type: ignore[no-untyped-def]
    return tracking._client(cfg).get_run(run_id)


def test_stages_of_one_experiment_share_one_run(cfg: TrackingConfig, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "exp-a")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "b" * 40)
    files = _files(tmp_path / "m", train={"final_loss": 0.5, "steps": 6, "device": "cpu"})
    train = tracking.stage_run(cfg, PARAMS, "train", {"device": "cpu"})
    train.log_metrics({"train/loss": 0.7, "note": "skipped"}, step=3)
    assert _run(cfg, train.run_id).info.status == "RUNNING"
    train.end_stage(files)
    assert _run(cfg, train.run_id).info.status == "FINISHED"  # an experiment that stops here is not left RUNNING
    _files(tmp_path / "m", sample={"images": 92}, eval={"fid": 3.5, "per_class_accuracy": {"a": 1.0}})
    sample = tracking.stage_run(cfg, PARAMS, "sample")
    assert sample.run_id == train.run_id and sample.name == "exp-a"
    sample.end_stage(files)
    run = _run(cfg, train.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "exp-a"
    assert run.data.params == {"train.lr": "5e-05", "sample.per_class": "2"}
    assert run.data.metrics == {"train/loss": 0.7, "final_loss": 0.5, "steps": 6.0, "sample_images": 92.0, "fid": 3.5}
    tags = run.data.tags
    assert tags["dvc.exp_name"] == "exp-a" and tags["dvc.baseline_rev"] == "b" * 40
    assert tags["mlflow.source.git.commit"] == tracking.git_commit() and tags["devagen.last_stage"] == "sample"
    monkeypatch.setenv("DVC_EXP_NAME", "exp-b")
    assert tracking.stage_run(cfg, PARAMS, "sample").run_id != train.run_id
    assert (tmp_path / "mlflow.db").is_file()


def test_a_stage_after_restored_ones_opens_the_run_with_their_metrics(cfg: TrackingConfig, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """DVC skipped train and sample: evaluate is first, and still logs train's and sample's numbers."""
    monkeypatch.setenv("DVC_EXP_NAME", "exp-c")
    files = _files(tmp_path / "m", train={"final_loss": 0.25}, sample={"images": 46}, eval={"ocr_accuracy": 0.9})
    first = tracking.stage_run(cfg, PARAMS, "evaluate")
    first.end_stage(files)
    run = _run(cfg, first.run_id)
    assert run.data.metrics == {"final_loss": 0.25, "sample_images": 46.0, "ocr_accuracy": 0.9}
    assert run.data.tags["devagen.first_stage"] == "evaluate" and run.data.params["train.lr"] == "5e-05"


def test_outside_experiments_the_key_is_commit_and_params(cfg: TrackingConfig) -> None:
    a = tracking.stage_run(cfg, PARAMS, "train")
    a.close("FINISHED")
    assert tracking.stage_run(cfg, PARAMS, "report").run_id == a.run_id
    other = tracking.stage_run(cfg, {**PARAMS, "train.lr": 1e-3}, "train")
    assert other.run_id != a.run_id and other.name.startswith("devagen-c0ffeec-")


def test_a_failed_stage_leaves_its_run_failed(cfg: TrackingConfig) -> None:
    run = tracking.stage_run(cfg, PARAMS, "train")
    tracking.close_open_runs("FAILED")
    assert _run(cfg, run.run_id).info.status == "FAILED"
    tracking.close_open_runs("FAILED")  # nothing open any more: a no-op


def test_experiment_keeps_artifacts_beside_the_store_and_opens_on_runs(cfg: TrackingConfig, tmp_path: Path) -> None:
    tracking.stage_run(cfg, PARAMS, "train").close("FINISHED")
    experiment = tracking._client(cfg).get_experiment_by_name("t")
    assert experiment.artifact_location == (tmp_path / "mlruns" / "t").as_uri()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_relative_store_resolves_to_the_repository_not_the_queue_copy(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    copy = repo / ".dvc" / "tmp" / "exps" / "tmpab12" / "sub"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert tracking.repo_root() == repo.resolve()
    monkeypatch.setenv("DVC_ROOT", str(repo / ".dvc" / "tmp" / "exps" / "tmpab12"))
    assert tracking.repo_root() == repo.resolve()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "elsewhere"))
    assert tracking.repo_root() == (tmp_path / "elsewhere").resolve()
    root = Path("/r")
    assert tracking.resolve_uri("sqlite:///mlflow.db", root) == "sqlite:////r/mlflow.db?timeout=120"
    assert tracking.resolve_uri("sqlite:////abs/m.db?timeout=5", root) == "sqlite:////abs/m.db?timeout=5"
    assert tracking.resolve_uri("http://127.0.0.1:5000", root) == "http://127.0.0.1:5000"


def test_unreachable_server_warns_once_and_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = TrackingConfig(uri="http://127.0.0.1:9")
    run = tracking.stage_run(cfg, {"a": 1}, "train")
    run.log_metrics({"loss": 1.0}, step=1)
    run.end_stage({})
    assert not run.active
    assert capsys.readouterr().err.count("warning: MLflow") == 1


def test_disabled_tracking_needs_no_mlflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """tracking.enabled: false must run on a machine without mlflow (e.g. a bare GPU box)."""
    import sys

    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # any import of mlflow now raises ImportError
    off = TrackingConfig(enabled=False)
    run = tracking.stage_run(off, {"train.lr": 1e-4}, "train", {"device": "cuda"})
    run.log_params({"a": 1})
    run.log_metrics({"loss": 0.5}, step=1)
    run.set_tags({"k": "v"})
    run.log_artifact(tmp_path)
    run.end_stage(_files(tmp_path, train={"final_loss": 0.1}))
    assert not run.active and tracking.recent_runs(off, 3) == []


def test_a_failure_names_its_stage_and_error_and_a_rerun_clears_it(cfg: TrackingConfig) -> None:
    run = tracking.stage_run(cfg, PARAMS, "sample")
    assert tracking.close_open_runs("FAILED", "sample", "NotImplementedError: sigmoid") == 1
    got = _run(cfg, run.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags[tracking.FAILED_STAGE_TAG] == "sample"
    assert got.data.tags[tracking.ERROR_TAG] == "NotImplementedError: sigmoid"
    assert "FAILED in stage `sample`" in got.data.tags[tracking.NOTE_TAG]
    again = tracking.stage_run(cfg, PARAMS, "sample")  # the same experiment, fixed and re-run
    again.end_stage({})
    got = _run(cfg, run.run_id)
    assert again.run_id == run.run_id and got.info.status == "FINISHED"
    assert tracking.FAILED_STAGE_TAG not in got.data.tags
    assert got.data.tags["devagen.earlier_attempt"].startswith("FAILED in sample")


def _dead_pid() -> int:
    """The id of a process that has ended."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_left_running_by_a_dead_process_is_killed_or_continued(cfg: TrackingConfig,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "killed")
    orphan = tracking.stage_run(cfg, PARAMS, "train")
    orphan.set_tags({tracking.PID_TAG: _dead_pid()})  # as if kill -9 had ended it mid-stage
    tracking._OPEN.clear()
    monkeypatch.setenv("DVC_EXP_NAME", "resumed")
    resumed = tracking.stage_run(cfg, PARAMS, "train")
    resumed.set_tags({tracking.PID_TAG: _dead_pid()})
    tracking._OPEN.clear()
    monkeypatch.setenv("DVC_EXP_NAME", "other")
    tracking.stage_run(cfg, PARAMS, "train").close("FINISHED")  # another experiment sweeps the dead one
    killed = _run(cfg, orphan.run_id)
    assert killed.info.status == "KILLED" and "killed" in killed.data.tags[tracking.ERROR_TAG]
    assert _run(cfg, resumed.run_id).info.status == "KILLED"
    monkeypatch.setenv("DVC_EXP_NAME", "resumed")  # resuming the killed experiment continues its run
    again = tracking.stage_run(cfg, PARAMS, "train")
    again.end_stage({})
    got = _run(cfg, resumed.run_id)
    assert again.run_id == resumed.run_id and got.info.status == "FINISHED"
    assert got.data.tags["devagen.earlier_attempt"].startswith("KILLED in train")


def test_a_run_held_by_a_live_process_is_left_running(cfg: TrackingConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "live")
    live = tracking.stage_run(cfg, PARAMS, "train")  # this process: alive
    monkeypatch.setenv("DVC_EXP_NAME", "next")
    tracking.stage_run(cfg, PARAMS, "train")
    assert _run(cfg, live.run_id).info.status == "RUNNING"
    tracking.close_open_runs("FINISHED")


def test_stages_that_ran_are_listed_once(cfg: TrackingConfig) -> None:
    for stage in ("train", "sample", "train", "report"):
        run = tracking.stage_run(cfg, PARAMS, stage)
        run.close("FINISHED")
    assert run.tag(tracking.STAGES_TAG) == "train,sample,report"


def test_dataset_inputs_carry_name_digest_context_and_rows(cfg: TrackingConfig, tmp_path: Path,
                                                           tiny_archive: Path) -> None:
    import shutil

    from devagen.data import prepared as data
    from devagen.data.archive import NATIVE_SIZE
    from devagen.data import lineage
    from devagen.data.fetch import ARCHIVE_NAME

    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    raw.mkdir()
    shutil.copy(tiny_archive, raw / ARCHIVE_NAME)
    split = data.prepare(raw / ARCHIVE_NAME, NATIVE_SIZE, True, progress=False)
    data.save_split(split.train, prepared / "train.npz")
    data.save_split(split.test, prepared / "test.npz")
    splits = lineage.prepared_splits(raw, prepared, True, "https://example.org/dhcd.zip")
    assert [s["name"] for s in splits] == ["DHCD train", "DHCD test"]
    assert splits[0]["profile"]["num_rows"] == len(split.train.labels) and splits[1]["context"] == "evaluation"
    assert lineage.prepared_splits(raw, prepared, True, "x")[0]["digest"] == splits[0]["digest"]
    assert lineage.prepared_splits(raw, prepared, False, "x")[0]["digest"] != splits[0]["digest"]
    run = tracking.stage_run(cfg, PARAMS, "train")
    run.log_datasets(splits)
    run.log_datasets(splits)  # every stage logs them: still one input per split
    run.close("FINISHED")
    inputs = _run(cfg, run.run_id).inputs.dataset_inputs
    assert sorted((i.dataset.name, i.dataset.digest, i.tags[0].value) for i in inputs) == sorted(
        (s["name"], s["digest"], s["context"]) for s in splits)


def test_only_the_stage_that_creates_the_run_logs_its_datasets(cfg: TrackingConfig,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from devagen.commands import common

    hashed: list[str] = []
    monkeypatch.setattr(common.lineage, "prepared_splits", lambda *a: hashed.append("splits") or [])
    first = tracking.stage_run(cfg, PARAMS, "train")
    common.log_splits(first, True, "x")
    first.close("FINISHED")
    joined = tracking.stage_run(cfg, PARAMS, "sample")
    common.log_splits(joined, True, "x")
    joined.close("FINISHED")
    assert first.created and not joined.created and hashed == ["splits"]  # the archive is hashed once per run
