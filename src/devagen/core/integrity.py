"""Damage that long runs meet: file checksums, damaged inputs, a full disk. One-line errors, no tracebacks.

A directory's checksums map each file (path relative to it) to {"bytes": size, "sha256": hex}. Model
directories keep them in checksums.json, checkpoints in their metadata file; both are written last, so a
directory without them was either written by an older devagen (not verified) or never finished.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from .errors import FULL_DISK_ERRNOS, DevagenError, one_line

MANIFEST = "checksums.json"
CHUNK = 1 << 20


def rerun(stage: str) -> str:
    """The fix for a damaged stage output: re-run only that stage, even if DVC sees no change."""
    return f"re-run the {stage} stage: `dvc repro -f -s {stage}`"


def damaged(path: Path, why: str, stage: str) -> DevagenError:
    """The one-line error for a damaged input: names the file, why, and the stage that rewrites it."""
    return DevagenError(f"{path}: damaged or unreadable ({why}); {rerun(stage)}")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_checksums(directory: Path, skip: Sequence[str] = ()) -> dict[str, dict]:
    """{relative path: {"bytes", "sha256"}} of every file under directory except the names in skip."""
    out = {}
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        if name not in skip:
            out[name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return out


def find_damage(directory: Path, recorded: dict[str, dict]) -> Optional[str]:
    """Why the files under directory differ from their recorded checksums (sizes first), or None."""
    for name, want in sorted(recorded.items()):
        path = Path(directory) / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != want["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, {want['bytes']} were written"
    for name, want in sorted(recorded.items()):
        if sha256_file(Path(directory) / name) != want["sha256"]:
            return f"{name} fails its sha256 check"
    return None


def write_manifest(directory: Path) -> None:
    """Record the checksums of every file in directory in directory/checksums.json (call it last)."""
    checksums = file_checksums(directory, skip=(MANIFEST,))
    (Path(directory) / MANIFEST).write_text(json.dumps({"files": checksums}, indent=1), encoding="utf-8")


def check_manifest(directory: Path, stage: str) -> None:
    """Raise a one-line error if a file of directory differs from checksums.json (none there: not checked)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["files"]
        why = find_damage(directory, recorded)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = f"{MANIFEST} is unreadable ({type(exc).__name__})"
    if why is not None:
        raise damaged(Path(directory), why, stage)


def read_npz(path: Path, keys: Sequence[str], stage: str) -> dict[str, np.ndarray]:
    """Arrays `keys` of an .npz; a missing, truncated or tampered file (zip CRC) names the stage to re-run."""
    if not Path(path).is_file():
        raise DevagenError(f"{path}: not found; run `dvc repro {stage}` first")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in keys}
    except Exception as exc:  # BadZipFile (truncated, bad CRC), EOFError, ValueError, KeyError (array missing)
        raise damaged(path, one_line(exc), stage) from None


def move_aside(path: Path, into: Path) -> Path:
    """Rename path into the folder `into` (made if needed) under a free name; return the new path."""
    into.mkdir(parents=True, exist_ok=True)
    target, n = into / path.name, 1
    while target.exists():
        target, n = into / f"{path.name}.{n}", n + 1
    path.rename(target)
    return target


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem that holds path (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def _size(n: float) -> str:
    """Bytes for people: '12.3 MB'."""
    if n < 1000:
        return f"{n:.0f} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            break
    return f"{n:.1f} {unit}"


@contextmanager
def full_disk_guard(target: Path, needed: int, tmp: Optional[Path] = None, kept: str = "") -> Iterator[None]:
    """A write of about `needed` bytes to target (via tmp, removed on failure) that fails for lack of space
    becomes one DevagenError naming target, the space needed and what was kept; other failures pass through.

    torch.save and safetensors do not raise OSError on a full disk, so free space below `needed` counts too.
    """
    try:
        yield
    except Exception as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        free = free_bytes(target)
        if not (isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS) and free >= needed:
            raise
        raise DevagenError(f"{target}: no space left on device ({_size(free)} free, about {_size(needed)} needed)"
                           f"{'; ' + kept if kept else ''}; free some space, then re-run") from None


def replace_dir(tmp: Path, final: Path) -> None:
    """Put the finished directory `tmp` in place of `final`: the old one is renamed aside before it is deleted,
    so a kill midway leaves the old directory, or none, never a half-written one under the final name."""
    if final.exists():
        trash = final.with_name(f".trash-{final.name}")
        shutil.rmtree(trash, ignore_errors=True)
        final.rename(trash)
        shutil.rmtree(trash)
    tmp.rename(final)
