"""Checkpoints of a training run: sealed (checksums hashed in a background thread, metadata written last,
then renamed into place), listed, checked for damage (a damaged one is moved into damaged/, never deleted),
and resumed only by a run with the same fingerprint; the autoguidance guide snapshot lives beside them."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Optional

import torch

from ..core.config import TrainConfig
from ..core.errors import DevagenError, one_line
from ..core.integrity import file_checksums, find_damage, full_disk_guard, move_aside
from ..sampling.folder import GUIDE_FOLDER
from .state import Checkpoints, TrainRun, network_copy

CHECKPOINT_RE = re.compile(r"^step_(\d{7})$")
META_NAME = "devagen_checkpoint.json"  # written last, inside the temp dir, before the rename
GUIDE_META = "devagen_guide.json"  # step and run fingerprint of the guide snapshot in the checkpoint dir
log = logging.getLogger(__name__)
DAMAGED_DIR = "damaged"  # checkpoints that fail their checksums are moved here, never deleted
SEALER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devagen-checkpoint")  # hashing overlaps training


def remove_dir(path: Path) -> None:
    """Delete a directory so that a kill midway never leaves it looking complete (rename, then delete)."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    path.rename(trash)
    shutil.rmtree(trash)


def swap_in(tmp: Path, final: Path) -> None:
    """Rename the finished directory `tmp` to `final`, replacing what was there."""
    if final.exists():
        remove_dir(final)
    tmp.rename(final)


def clear_leftovers(directory: Path) -> None:
    """Delete temp and trash directories that a killed run left behind."""
    for path in directory.glob(".*"):
        if path.is_dir() and path.name.startswith((".tmp-", ".trash-")):
            shutil.rmtree(path, ignore_errors=True)


def list_checkpoints(checkpoint_dir: Path) -> list[tuple[int, Path, str]]:
    """Complete checkpoints as (step, path, fingerprint), oldest first."""
    found = []
    for path in checkpoint_dir.glob("step_*"):
        match = CHECKPOINT_RE.match(path.name)
        meta = read_checkpoint_meta(path) if match else None
        if meta is not None:
            found.append((int(match.group(1)), path, meta.get("fingerprint", "")))
    return sorted(found)


def read_checkpoint_meta(path: Path) -> Optional[dict]:
    """A checkpoint's metadata, or None if it is missing or unreadable."""
    try:
        return json.loads((path / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def state_bytes(run: TrainRun, checkpoint: bool, copies: int = 2) -> int:
    """About the bytes a save writes: `copies` copies of the weights (a model save), or weights + optimizer +
    EMA (checkpoint)."""
    tensors = list(run.model.state_dict().values())
    if checkpoint:
        tensors += [v for s in run.optimizer.state_dict()["state"].values() for v in s.values() if torch.is_tensor(v)]
        tensors += run.ema.shadow_params if run.ema is not None else []
    return sum(t.numel() * t.element_size() for t in tensors) * (1 if checkpoint else copies)


def seal(ckpt: Checkpoints, tmp: Path, final: Path, meta: dict, keep: int, kept: str) -> None:
    """Main process, in the background: file checksums into the metadata (written last), rename, prune."""
    with full_disk_guard(final, 1 << 20, tmp, kept):
        meta["files"] = file_checksums(tmp)
        (tmp / META_NAME).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    swap_in(tmp, final)
    found = list_checkpoints(ckpt.directory)
    ours = [path for _, path, fp in found if fp == ckpt.fingerprint]
    stale = [path for _, path, fp in found if fp != ckpt.fingerprint]
    for path in stale + ours[:-keep]:
        remove_dir(path)


def wait_sealed(ckpt: Checkpoints) -> None:
    """Wait until the newest checkpoint is sealed (renamed into place); re-raise what sealing raised."""
    sealing, ckpt.sealing = ckpt.sealing, None
    if sealing is not None:
        sealing.result()


@contextlib.contextmanager
def sealed_on_exit(ckpt: Checkpoints) -> Iterator[None]:
    """However the block ends, the newest checkpoint is complete on disk afterwards."""
    try:
        yield
    finally:
        wait_sealed(ckpt)


def save_checkpoint(run: TrainRun, ckpt: Checkpoints, step: int, loss: float) -> None:
    """Write ckpt.directory/step_XXXXXXX via a temp dir; keep this run's newest `keep_checkpoints`.

    The state is written here; checksums, metadata, rename and pruning overlap the next steps (a thread).
    """
    acc = run.accelerator
    final = ckpt.directory / f"step_{step:07d}"
    tmp = ckpt.directory / f".tmp-{final.name}"
    kept = f"{ckpt.last} is intact" if ckpt.last else "no earlier checkpoint"
    if acc.is_main_process:
        wait_sealed(ckpt)
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    with full_disk_guard(final, state_bytes(run, True), tmp if acc.is_main_process else None, kept):
        acc.save_state(str(tmp))  # weights, optimizer, lr schedule, EMA, RNG states of every rank
    acc.wait_for_everyone()
    if acc.is_main_process:
        meta = {"step": step, "total_steps": run.total_steps, "loss": loss, "fingerprint": ckpt.fingerprint,
                "facts": ckpt.facts}
        ckpt.sealing = SEALER.submit(seal, ckpt, tmp, final, meta, run.cfg.keep_checkpoints, kept)
    ckpt.last, ckpt.step, ckpt.loss = final, step, loss


def checkpoint_damage(path: Path, meta: Optional[dict]) -> Optional[str]:
    """Why a checkpoint is damaged (meta: its metadata, None if unreadable), or None if it looks intact."""
    if meta is None:
        return f"{META_NAME} is missing or unreadable"
    if "files" not in meta:
        return None  # written before checkpoints carried checksums: loading will tell
    try:
        return find_damage(path, meta["files"])
    except (KeyError, TypeError, AttributeError):
        return f"{META_NAME} holds malformed checksums"


def set_aside_damaged(ckpt: Checkpoints) -> None:
    """Newest first, move this run's damaged checkpoints into damaged/ (one warning each) until an intact one."""
    moved = False
    for path in sorted(ckpt.directory.glob("step_*"), reverse=True):
        meta = read_checkpoint_meta(path)
        if not CHECKPOINT_RE.match(path.name) or (meta is not None and meta.get("fingerprint") != ckpt.fingerprint):
            continue  # not a checkpoint, or another run's (deleted when this run writes its first one)
        why = checkpoint_damage(path, meta)
        if why is None:
            return
        target = move_aside(path, ckpt.directory / DAMAGED_DIR)
        log.warning("train: checkpoint %s is damaged (%s); moved to %s", path, why, target)
        moved = True
    if moved:
        log.warning("train: no intact checkpoint of this run is left in %s; starting fresh", ckpt.directory)


def load_checkpoint(run: TrainRun, path: Path) -> None:
    """Load a checkpoint into the run; one that fails to load is moved into damaged/ and the run stops."""
    acc = run.accelerator
    try:
        acc.load_state(str(path))
    except Exception as exc:  # torch, pickle and safetensors raise many types for damage no checksum covered
        target = path.parent / DAMAGED_DIR / path.name
        if acc.is_main_process:
            target = move_aside(path, path.parent / DAMAGED_DIR)
        raise DevagenError(f"train: checkpoint {path} does not load ({one_line(exc)}); moved to {target}; "
                           "re-run to resume from the checkpoint before it") from None
    if run.ema is not None:
        run.ema.to(acc.device)  # accelerate loads custom state onto the CPU


def resume(run: TrainRun, ckpt: Checkpoints) -> None:
    """Load this run's newest intact checkpoint, if any, into the run and record it in ckpt."""
    acc = run.accelerator
    if acc.is_main_process:
        ckpt.directory.mkdir(parents=True, exist_ok=True)
        clear_leftovers(ckpt.directory)
        set_aside_damaged(ckpt)
    acc.wait_for_everyone()
    found = list_checkpoints(ckpt.directory)
    ours = [(step, path) for step, path, fp in found if fp == ckpt.fingerprint]
    if len(ours) < len(found) and acc.is_main_process:
        log.warning("train: %s holds checkpoints written with different params; starting fresh "
                    "(they are deleted when this run writes its first checkpoint)", ckpt.directory)
    if not ours:
        return
    ckpt.step, ckpt.last = ours[-1]
    load_checkpoint(run, ckpt.last)
    ckpt.loss = json.loads((ckpt.last / META_NAME).read_text(encoding="utf-8")).get("loss", math.nan)
    if acc.is_main_process:
        log.warning("train: resuming from %s (step %d of %d)", ckpt.last, ckpt.step, run.total_steps)


def save_guide(run: TrainRun, ckpt: Checkpoints, step: int) -> None:
    """Snapshot the (EMA) network at `step` as ckpt.directory/guide: the weak model autoguidance guides by."""
    if run.accelerator.is_main_process:
        final = ckpt.directory / GUIDE_FOLDER
        tmp = ckpt.directory / f".tmp-{GUIDE_FOLDER}"
        shutil.rmtree(tmp, ignore_errors=True)
        with full_disk_guard(final, state_bytes(run, False, copies=1), tmp, "the checkpoints are intact"):
            network_copy(run, ema=True).save_pretrained(tmp)
            meta = {"step": step, "fingerprint": ckpt.fingerprint}
            (tmp / GUIDE_META).write_text(json.dumps(meta), encoding="utf-8")
        swap_in(tmp, final)
    run.accelerator.wait_for_everyone()


def guide_at(cfg: TrainConfig, total_steps: int) -> int:
    """The step whose EMA weights become guide/ in a run of total_steps: train.guide_step itself, or its share of
    the run (at least step 1); 0 = no guide."""
    if cfg.guide_step >= 1 or cfg.guide_step == 0:
        return int(cfg.guide_step)
    return max(1, round(cfg.guide_step * total_steps))


def guide_for_run(ckpt: Checkpoints, guide_step: int) -> Path:
    """This run's guide snapshot in the checkpoint dir, or DevagenError saying how to get one."""
    path = ckpt.directory / GUIDE_FOLDER
    try:
        meta = json.loads((path / GUIDE_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    if meta.get("fingerprint") != ckpt.fingerprint or meta.get("step") != guide_step:
        raise DevagenError(f"train: {path} holds no guide snapshot of this run at train.guide_step={guide_step}; "
                           f"delete {ckpt.directory} and re-run `dvc repro train`")
    return path
