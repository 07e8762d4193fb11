"""Faults of long runs, injected for real on a tiny model: a damaged checkpoint, SIGTERM/SIGINT, a full disk,
damaged stage inputs. Each test checks the message and the state left behind (steps done, files intact)."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import yaml
from model_fixture import make_model_dir
from test_training import DATA_CODE, IMAGES, LABELS, TINY, _assert_same_weights

from devagen import cli
from devagen.commands.prepare import measured
from devagen.core import integrity
from devagen.core.config import AugmentConfig, DiffusionConfig, OcrConfig, TrainConfig
from devagen.core.errors import DevagenError
from devagen.core.params import load_params
from devagen.data import prepared as data
from devagen.judges import legibility
from devagen.judges.ocr import build_judge, save_judge
from devagen.pen.conditions import measure_pen
from devagen.training import loop as training
from devagen.training.checkpoints import DAMAGED_DIR, META_NAME, list_checkpoints
from devagen.training.loop import train_diffusion
from devagen.training.preemption import Preempted, StopRequests

REPO = Path(__file__).parents[2]


pytestmark = pytest.mark.usefixtures("cpu_one_thread")


class _Crash(Exception):
    """Raised from log_fn: a run that dies after some step."""


def _cfg(**overrides) -> TrainConfig:
    values = dict(batch_size=4, max_steps=6, warmup_steps=2, checkpoint_every=2, keep_checkpoints=3,
                  log_every=1, ema_decay=0.9)
    return TrainConfig(**{**values, **overrides})


def _train(root: Path, cfg: TrainConfig = _cfg(), log_fn: Callable | None = None) -> dict:
    return train_diffusion(cfg, TINY, DiffusionConfig(), AugmentConfig(), IMAGES, LABELS, root / "out", root / "ck",
                           log_fn=log_fn, progress=False)


def _crash_after(step: int) -> Callable:
    def log_fn(stats: dict, i: int) -> None:
        if i == step:
            raise _Crash

    return log_fn


def _steps(checkpoint_dir: Path) -> list[int]:
    return [s for s, _, _ in list_checkpoints(checkpoint_dir)]


def _intact(checkpoint: Path) -> bool:
    meta = json.loads((checkpoint / META_NAME).read_text())
    return "files" in meta and integrity.find_damage(checkpoint, meta["files"]) is None


def _cut(path: Path) -> None:
    """Truncate a file to a third, as a bad copy or a full disk leaves it."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _flip(path: Path) -> None:
    """Invert one byte in the middle: same size, different content."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted 6-step run every interrupted one must match exactly."""
    root = tmp_path_factory.mktemp("whole")
    _train(root)
    return root / "out"


# ---------------------------------------------------------------- checksums


def test_checksums_known_answer_and_damage_reasons(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "sub" / "b.bin").write_bytes(b"")
    sums = integrity.file_checksums(tmp_path)
    assert sums == {"a.bin": {"bytes": 3, "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
                    "sub/b.bin": {"bytes": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}
    assert integrity.find_damage(tmp_path, sums) is None
    (tmp_path / "a.bin").write_bytes(b"abd")
    assert integrity.find_damage(tmp_path, sums) == "a.bin fails its sha256 check"
    (tmp_path / "a.bin").write_bytes(b"ab")
    assert integrity.find_damage(tmp_path, sums) == "a.bin has 2 bytes, 3 were written"
    (tmp_path / "sub" / "b.bin").unlink()
    assert integrity.find_damage(tmp_path, sums) == "a.bin has 2 bytes, 3 were written"  # sizes first, in order
    (tmp_path / "a.bin").write_bytes(b"abc")
    assert integrity.find_damage(tmp_path, sums) == "sub/b.bin is missing"


# ---------------------------------------------------------------- a damaged checkpoint

DAMAGE = {
    "truncated": (lambda ck: _cut(ck / "model.safetensors"), r"model.safetensors has \d+ bytes, \d+ were written"),
    "tampered": (lambda ck: _flip(ck / "optimizer.bin"), r"optimizer.bin fails its sha256 check"),
    "file gone": (lambda ck: (ck / "random_states_0.pkl").unlink(), r"random_states_0.pkl is missing"),
    "metadata torn": (lambda ck: _cut(ck / META_NAME), rf"{META_NAME} is missing or unreadable"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_newest_checkpoint_is_set_aside_and_the_one_before_resumed(
        tmp_path: Path, whole: Path, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    with pytest.raises(_Crash):
        _train(tmp_path, log_fn=_crash_after(5))
    inject, why = DAMAGE[damage]
    inject(tmp_path / "ck" / "step_0000004")
    metrics = _train(tmp_path)
    assert metrics["resumed_from_step"] == 2 and metrics["steps"] == 6
    warning = next(r.getMessage() for r in caplog.records if "is damaged" in r.getMessage())
    assert re.fullmatch(rf"train: checkpoint \S+/step_0000004 is damaged \({why}\); moved to \S+/{DAMAGED_DIR}/"
                        r"step_0000004", warning), warning
    assert (tmp_path / "ck" / DAMAGED_DIR / "step_0000004").is_dir()  # kept for a post-mortem, not deleted
    assert _steps(tmp_path / "ck") == [2, 4, 6] and all(_intact(p) for _, p, _ in list_checkpoints(tmp_path / "ck"))
    _assert_same_weights(whole, tmp_path / "out")  # the re-done steps drew exactly what the lost ones did


def test_no_intact_checkpoint_starts_fresh(tmp_path: Path, whole: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(_Crash):
        _train(tmp_path, log_fn=_crash_after(5))
    _cut(tmp_path / "ck" / "step_0000004" / "model.safetensors")
    _flip(tmp_path / "ck" / "step_0000002" / "custom_checkpoint_0.pkl")
    metrics = _train(tmp_path)
    assert metrics["resumed_from_step"] == 0 and metrics["steps"] == 6
    assert caplog.text.count("is damaged") == 2 and "no intact checkpoint of this run is left" in caplog.text
    assert sorted(p.name for p in (tmp_path / "ck" / DAMAGED_DIR).iterdir()) == ["step_0000002", "step_0000004"]
    _assert_same_weights(whole, tmp_path / "out")


def test_checkpoint_without_checksums_that_fails_to_load_is_set_aside(tmp_path: Path, whole: Path) -> None:
    """Checkpoints written before checksums existed are trusted until they fail to load."""
    with pytest.raises(_Crash):
        _train(tmp_path, log_fn=_crash_after(5))
    newest = tmp_path / "ck" / "step_0000004"
    meta = json.loads((newest / META_NAME).read_text())
    del meta["files"]
    (newest / META_NAME).write_text(json.dumps(meta))
    _cut(newest / "model.safetensors")
    with pytest.raises(DevagenError, match=r"checkpoint \S+step_0000004 does not load \(SafetensorError: .*\); "
                                           r"moved to \S+damaged/step_0000004; re-run to resume"):
        _train(tmp_path)
    assert _train(tmp_path)["resumed_from_step"] == 2
    _assert_same_weights(whole, tmp_path / "out")


# ---------------------------------------------------------------- preemption


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_checkpoints_the_current_step_and_the_rerun_loses_nothing(tmp_path: Path, whole: Path, sig: int) -> None:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def send(stats: dict, step: int) -> None:
        if step == 3:
            os.kill(os.getpid(), sig)

    name = signal.Signals(sig).name
    with pytest.raises(Preempted, match=rf"^train: stopped by {name} after step 3 of 6, saved in \S+/step_0000003; "
                                        r"resume with `dvc repro` \(or `dvc exp run`, or this command again\)$") as err:
        _train(tmp_path, log_fn=send)
    assert err.value.exit_code == 128 + sig
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the caller's handlers are back
    assert _steps(tmp_path / "ck") == [2, 3] and _intact(tmp_path / "ck" / "step_0000003")
    assert not (tmp_path / "out").exists()
    metrics = _train(tmp_path)
    assert metrics["resumed_from_step"] == 3 and metrics["steps"] == 6
    _assert_same_weights(whole, tmp_path / "out")


def test_a_repeated_signal_aborts_only_after_a_pause() -> None:
    # The abort goes to the handler that was there before StopRequests: pin that one to Python's own
    # (KeyboardInterrupt), whatever an earlier test in this process left installed
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopRequests(num_processes=1, every=5) as stop:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # a launcher forwarding the same Ctrl-C: still one request
            assert stop.agreed(1) == signal.SIGINT
            stop.at -= 10  # as if the first came 10 s ago: now the user insists
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                # Python runs handlers in the main thread between bytecodes. The signal (and the handler's own
                # re-sent one) may land on another thread (torch's, the checkpoint sealer's), so one sleep is not
                # always interrupted: wait in short slices, inside this block, until the abort arrives
                for _ in range(200):
                    time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, before)


# ---------------------------------------------------------------- a full disk


def _enospc_after(real: Callable, calls: list, fail_at: int) -> Callable:
    """A writer that works `fail_at - 1` times, then writes a few bytes and fails as a full disk does."""
    def writer(obj, target, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(str(target))
        if len(calls) < fail_at:
            return real(obj, target, *args, **kwargs)
        Path(target).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    return writer


def test_full_disk_at_a_checkpoint_keeps_the_previous_one(tmp_path: Path, whole: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    # torch.save writes optimizer.bin, scheduler.bin, the EMA and RNG states: 4 calls per checkpoint.
    monkeypatch.setattr(torch, "save", _enospc_after(torch.save, calls, fail_at=6))
    with pytest.raises(DevagenError, match=r"^\S+/step_0000004: no space left on device \(\S+ \S+ free, "
                                           r"about [\d.]+ MB needed\); \S+/step_0000002 is intact; free some space, "
                                           r"then re-run$"):
        _train(tmp_path)
    monkeypatch.undo()
    assert _steps(tmp_path / "ck") == [2] and _intact(tmp_path / "ck" / "step_0000002")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step_0000002"]  # no half-written temp dir
    assert _train(tmp_path)["resumed_from_step"] == 2
    _assert_same_weights(whole, tmp_path / "out")


def test_full_disk_seen_only_as_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save reports a full disk as RuntimeError ('file write failed'): free space decides."""
    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", failing)
    monkeypatch.setattr(integrity, "free_bytes", lambda path: 1234)
    with pytest.raises(DevagenError, match=r"step_0000002: no space left on device \(1.2 kB free, about [\d.]+ MB "
                                           r"needed\); no earlier checkpoint; free some space"):
        _train(tmp_path)
    monkeypatch.setattr(integrity, "free_bytes", lambda path: 1 << 40)  # plenty of space: not a full disk
    with pytest.raises(RuntimeError, match="unexpected pos"):
        _train(tmp_path)


def test_full_disk_at_the_model_save_keeps_the_checkpoints(tmp_path: Path, whole: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", _enospc_after(safetensors.torch.save_file, [], fail_at=1))
    with pytest.raises(DevagenError, match=r"^\S+/out: no space left on device \(.* free, about [\d.]+ MB needed\); "
                                           r"the checkpoints are intact; free some space, then re-run$"):
        _train(tmp_path, _cfg(checkpoint_every=3))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no out/, no .tmp-out
    assert _steps(tmp_path / "ck") == [3, 6] and _intact(tmp_path / "ck" / "step_0000006")
    assert _train(tmp_path, _cfg(checkpoint_every=3))["resumed_from_step"] == 6
    _assert_same_weights(whole, tmp_path / "out")


def test_cli_turns_any_full_disk_oserror_into_one_line(capsys: pytest.CaptureFixture) -> None:
    group = cli._Group()

    @group.command()
    def write() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "reports/metrics/train.json")

    with pytest.raises(SystemExit) as exit_:
        group.main(args=["write"], prog_name="devagen")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == ("error: reports/metrics/train.json: no space left on device; "
                                       "free some space, then re-run\n")


# ---------------------------------------------------------------- damaged inputs of every stage after prepare

TINY_PARAMS = {
    "train_ocr": {"epochs": 1, "batch_size": 32, "width": 8},
    "model": {"preset": "tiny", "conditional": True},
    "train": {"max_steps": 2, "batch_size": 8, "warmup_steps": 1, "checkpoint_every": 2, "log_every": 1},
    "sample": {"steps": 1, "per_class": 1, "batch_size": 64, "tone_reference": 46},
    "tracking": {"enabled": False},
}


def _write_params(root: Path, overrides: dict) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_archive: Path) -> Path:
    """Every input a stage after prepare reads, as the stages write them (model dirs with checksums)."""
    root = tmp_path_factory.mktemp("project")
    _write_params(root, TINY_PARAMS)
    prepared = measured(data.prepare(tiny_archive, 32))
    data.save_split(prepared.train, root / "data/prepared/train.npz")
    data.save_split(prepared.test, root / "data/prepared/test.npz")
    judge = build_judge(OcrConfig(width=8), 32)
    legibility.save_ood(legibility.fit_judge_ood(judge, prepared.train.images, prepared.train.labels, 0.3, 0),
                        root / "models/ocr")
    save_judge(judge, root / "models/ocr", OcrConfig(width=8), 32)
    integrity.write_manifest(make_model_dir(root / "models/diffusion", image_size=32))
    (root / "samples").mkdir()
    np.savez(root / "samples/samples.npz", images=prepared.test.images, labels=prepared.test.labels)
    (root / "reports/details").mkdir(parents=True)
    (root / "reports/details/eval.json").write_text(json.dumps({"fid": 1.5, "ocr_accuracy": 0.5}))
    return root


def _malformed(path: Path) -> None:
    """A valid .npz whose arrays are wrong: float images, as a hand edit or a foreign writer would leave."""
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["images"] = arrays["images"].astype(np.float32)
    np.savez(path, **arrays)


# (stage command, input it reads, the stage that writes that input)
INPUTS = [
    ("train_ocr", "data/prepared/train.npz", "prepare"),
    ("train_ocr", "data/prepared/test.npz", "prepare"),
    ("train", "data/prepared/train.npz", "prepare"),
    ("sample", "models/diffusion/unet/diffusion_pytorch_model.safetensors", "train"),
    ("sample", "models/diffusion/devagen.json", "train"),
    ("sample", "data/prepared/test.npz", "prepare"),
    ("evaluate", "samples/samples.npz", "sample"),
    ("evaluate", "models/ocr/judge.safetensors", "train_ocr"),
    ("evaluate", "models/ocr/judge.json", "train_ocr"),
    ("evaluate", "models/ocr/ood.safetensors", "train_ocr"),
    ("evaluate", "data/prepared/train.npz", "prepare"),
    ("style_net", "data/prepared/train.npz", "prepare"),
    ("evaluate", "data/prepared/test.npz", "prepare"),
    ("report", "reports/details/eval.json", "evaluate"),
]
CASES = [(*case, damage) for case in INPUTS for damage in ("truncated", "tampered")] + \
        [(*case, "malformed") for case in INPUTS if case[1].endswith(".npz")]


def test_every_stage_after_prepare_is_covered() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    # vae, distill, noisy_classifier and human_study are off by default, and then read no input (their own tests
    # cover them on)
    assert {stage for stage, _, _ in INPUTS} == set(stages) - {"fetch", "prepare", "vae", "distill", "noisy_classifier",
                                                               "human_study"}


@pytest.mark.parametrize("stage,target,writer,damage", CASES)
def test_damaged_input_names_the_file_and_the_stage_to_rerun(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        stage: str, target: str, writer: str, damage: str) -> None:
    root = Path(shutil.copytree(project, tmp_path / "p"))
    {"truncated": _cut, "tampered": _flip, "malformed": _malformed}[damage](root / target)
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit) as exit_:
        cli.main([stage.replace("_", "-")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 1 and len(errors) == 1 and "Traceback" not in err, err
    parts = target.split("/")  # a model folder is named with the file inside it that fails
    named = ["/".join(parts[:2]), "/".join(parts[2:])] if parts[0] == "models" else [target]
    assert all(n in errors[0] for n in named) and f"`dvc repro -f -s {writer}`" in errors[0], errors[0]


# ---------------------------------------------------------------- for real: other processes, signals, a small disk

SCRIPT = """
import os, sys, time
from pathlib import Path
import numpy as np
from devagen.training import loop as training
from devagen.core.config import AugmentConfig, DiffusionConfig, TrainConfig
from devagen.core.shape import ModelConfig
from devagen.core.errors import DevagenError
{data}
ck, out, steps, delay = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rank = int(os.environ.get("RANK", "0"))
(ck.parent / f"rank{{rank}}.pid").write_text(str(os.getpid()))
cfg = TrainConfig(batch_size=4, max_steps=steps, warmup_steps=2, checkpoint_every=2, keep_checkpoints=3, log_every=1,
                  ema_decay=0.9)
try:
    training.train_diffusion(cfg, ModelConfig(preset="tiny"), DiffusionConfig(), AugmentConfig(), images, labels,
                             out, ck, log_fn=lambda stats, step: time.sleep(delay), progress=False)
except DevagenError as exc:
    (ck.parent / f"rank{{rank}}.error").write_text(str(exc))
    print(f"error: {{exc}}", file=sys.stderr)
    sys.exit(getattr(exc, "exit_code", 1))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true"}


def _script(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "train_tiny.py"
    path.write_text(SCRIPT.format(data=DATA_CODE))
    return path


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before the fault was injected"
        time.sleep(0.02)


# `devagen train` as dvc runs it, held after optimizer step `at` until the test has signalled: so the signal always
# arrives mid-run (a fast machine could otherwise finish every step first) and at a known step.
HELD_TRAIN = """
import sys, time
from pathlib import Path
from devagen.training import loop
at, ready, go = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
step = loop._optimizer_step
def held(run, index):
    loss = step(run, index)
    if index + 1 == at:
        ready.touch()
        while not go.exists():  # the signal's handler runs in this loop, before go is seen
            time.sleep(0.01)
    return loss
loop._optimizer_step = held
from devagen.cli import main
main(["train"])
"""


@pytest.mark.slow
def test_sigterm_to_the_stage_command_at_a_random_step(tmp_path: Path) -> None:
    """`devagen train` as dvc runs it: SIGTERM at a random step, exit 143, one line; the re-run ends equal."""
    steps = 60
    _write_params(tmp_path, {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "max_steps": steps,
                                                        "checkpoint_every": 10},
                             "prepare": {"image_size": IMAGES.shape[-1]}})  # the stage trains at the data's own side
    pen = measure_pen(IMAGES)  # the default model is pen-conditioned: prepare stores each image's pen
    data.save_split(data.Split(IMAGES, LABELS, pen), tmp_path / "data/prepared/train.npz")
    command = [sys.executable, "-c", "from devagen.cli import main; main(['train'])"]
    at, ready, go = random.Random(16).randrange(3, 40), tmp_path / "ready", tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-c", HELD_TRAIN, str(at), str(ready), str(go)], cwd=tmp_path,
                            env=_env(), stderr=subprocess.PIPE, text=True)
    _wait_for(ready.is_file, proc)
    proc.send_signal(signal.SIGTERM)
    go.touch()
    _, err = proc.communicate(timeout=120)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert proc.returncode == 143 and len(errors) == 1, err
    match = re.fullmatch(rf"error: train: stopped by SIGTERM after step (\d+) of {steps}, saved in "
                         r"models/checkpoints/step_(\d{7}); resume with `dvc repro` .*", errors[0])
    assert match and int(match.group(1)) == int(match.group(2)) == at, errors[0]
    assert _intact(tmp_path / "models/checkpoints" / f"step_{match.group(2)}")
    done = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "reports/details/train.json").read_text())
    assert metrics["steps"] == steps and metrics["resumed_from_step"] == int(match.group(1))
    rows = (tmp_path / "reports/train/log.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == list(range(1, steps + 1))  # every step logged once
    params = load_params(tmp_path / "params.yaml")
    train_diffusion(params.train, params.model, params.diffusion, params.augment, IMAGES, LABELS,
                    tmp_path / "whole", tmp_path / "whole_ck", progress=False, pen=pen)
    _assert_same_weights(tmp_path / "whole", tmp_path / "models/diffusion")


def _launch(script: Path, root: Path, steps: int, delay: float) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
            str(script), str(root / "ck"), str(root / "out"), str(steps), str(delay)]


@pytest.mark.slow
def test_two_processes_stop_at_the_same_step_and_resume_exactly(tmp_path: Path) -> None:
    """SIGTERM to rank 1 only: the all-reduce stops rank 0 at the same step; the re-run ends as a whole run."""
    steps, whole, cut = 16, tmp_path / "whole", tmp_path / "cut"
    subprocess.run(_launch(_script(whole), whole, steps, 0), env=_env(), check=True, timeout=300)
    proc = subprocess.Popen(_launch(_script(cut), cut, steps, 0.3), env=_env(), stderr=subprocess.DEVNULL)
    _wait_for(lambda: (cut / "rank1.pid").is_file() and max(_steps(cut / "ck"), default=0) >= 2, proc)
    os.kill(int((cut / "rank1.pid").read_text()), signal.SIGTERM)
    assert proc.wait(timeout=120) != 0
    messages = {(cut / f"rank{r}.error").read_text() for r in range(2)}
    assert len(messages) == 1, messages  # both ranks stopped after the same step
    stopped = int(re.search(r"after step (\d+) of", messages.pop()).group(1))
    assert stopped % training.STOP_CHECK_EVERY == 0 and stopped < steps
    assert max(_steps(cut / "ck")) == stopped and _intact(cut / "ck" / f"step_{stopped:07d}")
    subprocess.run(_launch(cut / "train_tiny.py", cut, steps, 0), env=_env(), check=True, timeout=300)
    _assert_same_weights(whole / "out", cut / "out")


def _unshare_works() -> bool:
    probe = "mkdir -p /tmp/.devagen-probe && mount -t tmpfs -o size=64k tmpfs /tmp/.devagen-probe"
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("unshare") or not _unshare_works(),
                    reason="needs unprivileged user namespaces to mount a small tmpfs")
def test_a_really_full_small_filesystem(tmp_path: Path) -> None:
    """Checkpoints on a 4 MB tmpfs (one tiny checkpoint is ~2.8 MB): the second fails; the first survives."""
    script, disk = _script(tmp_path), tmp_path / "disk"
    disk.mkdir()
    shell = (f"mount -t tmpfs -o size=4m tmpfs {disk} && mkdir {disk}/ck && "
             f"{sys.executable} {script} {disk}/ck {tmp_path}/out 6 0; echo $? > {tmp_path}/rc; "
             f"cp -a {disk}/ck {tmp_path}/ck")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", shell], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert (tmp_path / "rc").read_text().strip() == "1", proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.fullmatch(
        r"error: \S+/ck/step_0000004: no space left on device \(.* free, about 2.\d MB needed\); "
        r"\S+/ck/step_0000002 is intact; free some space, then re-run", errors[0]), proc.stderr
    assert _steps(tmp_path / "ck") == [2] and _intact(tmp_path / "ck" / "step_0000002")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step_0000002"]
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "ck"), str(tmp_path / "out"), "6", "0"],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "resuming from" in done.stderr and "step 2 of 6" in done.stderr, done.stderr
