"""Graceful stop on SIGTERM, SIGHUP and SIGINT: finish the step, checkpoint, say how to
resume.

Batch schedulers send SIGTERM before they kill; Ctrl-C sends SIGINT. The first one only
sets a flag that the training loop reads after each step; a second SIGINT stops at once.
A job of a sweep run by worker processes (joblib) also stops when the sweep's own process
is gone (killed, even by SIGKILL), rather than train on unwatched: SWEEP_PARENT_ENV names
that process.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from lstm_cli.common.errors import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED

# SIGHUP (a closed terminal or ssh session) stops a run as gracefully as SIGTERM does.
SWEEP_PARENT_ENV = "LSTM_TRAIN_SWEEP_PARENT"

EXIT_CODES = {
    signal.SIGTERM: EXIT_TERMINATED,
    signal.SIGINT: EXIT_INTERRUPTED,
    signal.SIGHUP: EXIT_HANGUP,
}


class StopRequest:
    """Which stopping signal arrived first, if any."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self.orphaned = False
        parent = int(os.environ.get(SWEEP_PARENT_ENV, "0"))
        self._sweep_parent = parent if parent not in (0, os.getpid()) else None

    def requested(self) -> bool:
        """Whether to stop: a signal arrived, or this sweep worker lost its sweep."""
        if self.signal is None and self._sweep_parent and os.getppid() != self._sweep_parent:
            self.signal, self.orphaned = signal.SIGHUP, True
        return self.signal is not None

    @property
    def cause(self) -> str:
        return "the end of its sweep's process" if self.orphaned else self.signal.name

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.signal] if self.signal else 0

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Within the block, SIGTERM and the first SIGINT set a StopRequest instead of killing."""
    request = StopRequest()
    previous = {sig: signal.signal(sig, request._handle) for sig in EXIT_CODES}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
