"""The one exception type users see as a single line (no traceback), the check that raises it for params.yaml, and
how any error is told in one line."""

from __future__ import annotations

import errno

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DevagenError(Exception):
    """A problem the user can fix; the message names the file/param and the fix."""


def check(ok: bool, key: str, why: str) -> None:
    """Raise DevagenError "params.yaml: key: why" unless ok."""
    if not ok:
        raise DevagenError(f"params.yaml: {key}: {why}")


def one_line(exc: BaseException) -> str:
    """'TypeName: first line of the message', for errors that must fit one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def full_disk(exc: BaseException) -> str | None:
    """The one-line message for a write that found no space left, None for any other error."""
    if isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS:
        return f"{exc.filename}: no space left on device; free some space, then re-run"
    return None


def failure_of(exc: BaseException) -> tuple[str, str]:
    """(one-line message, MLflow run status) of an error that stopped a stage: KILLED for Ctrl-C or a
    signal (a DevagenError whose exit_code is 128 + signal), FAILED otherwise."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)", "KILLED"
    if isinstance(exc, DevagenError):
        return str(exc), "KILLED" if getattr(exc, "exit_code", 1) > 128 else "FAILED"
    return full_disk(exc) or one_line(exc), "FAILED"
