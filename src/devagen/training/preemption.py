"""Stop training cleanly on SIGTERM or SIGINT (preemption, `scancel`, Ctrl-C) at a step every rank agrees on."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any, Optional

import torch
import torch.distributed as dist

from ..core.errors import DevagenError

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
REPEAT_ABORTS_AFTER_S = 2.0  # a repeat sooner is the same request fanned out (a launcher forwarding Ctrl-C)


class Preempted(DevagenError):
    """Training stopped on a signal after saving its state; exit status 128 + signal, as a shell reports it."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class StopRequests:
    """While entered, SIGTERM/SIGINT only set a flag; `agreed(step)` turns it into one decision for all ranks.

    The same signal again, more than REPEAT_ABORTS_AFTER_S later, acts as it would have before (Ctrl-C
    twice aborts). Several processes compare flags every `every` steps with an all-reduce over a CPU
    (gloo) group, so the check never waits for the GPU; one process checks every step for free.
    """

    def __init__(self, num_processes: int, every: int) -> None:
        self.num_processes, self.every = num_processes, every
        self.signum: Optional[int] = None
        self.at = 0.0
        self.previous: dict[int, Any] = {}
        self.group: Any = None

    def __enter__(self) -> "StopRequests":
        if self.num_processes > 1 and dist.get_backend() != "gloo":
            self.group = dist.new_group(backend="gloo")  # every rank calls this, in the same order
        if threading.current_thread() is threading.main_thread():  # handlers can be set only there
            self.previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        now = time.monotonic()
        if self.signum is None:
            self.signum, self.at = signum, now
            log.warning("train: %s received: writing a checkpoint and stopping at the next step boundary "
                        "(send it again after 2 s to abort at once)", signal.Signals(signum).name)
        elif now - self.at > REPEAT_ABORTS_AFTER_S:
            self._restore()
            os.kill(os.getpid(), signum)  # delivered again, now to the handler that was there before

    def agreed(self, step: int) -> Optional[int]:
        """The signal number every rank stops on after optimizer step `step`, or None to go on."""
        if self.num_processes == 1:
            return self.signum
        if step % self.every:
            return None
        flag = torch.tensor([self.signum or 0], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return int(flag.item()) or None
