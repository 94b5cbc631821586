"""A run directory belongs to one run: made fresh, or continued by `resume=` of that run,
and written by one live process at a time.

The lock is an OS file lock (`flock`) on `<run dir>/.lock`, which the kernel releases when
its process dies however it dies, so a killed run never leaves a stale lock behind. The
file records the holder's pid for the message that refuses a second writer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lstm_cli.common.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no flock; a run directory is not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
# What a run leaves in its directory; any of them means the directory holds a run.
RUN_FILES = (".hydra", "status.json", "checkpoints", "metrics.csv", "results.json")


def refuse_foreign_directory(run_dir: Path, key: str, resuming: bool) -> None:
    """Before anything is written: a directory holding another run is refused unless this
    is `resume=` of it, and one whose run is alive is refused in any case."""
    holder = lock_holder(run_dir)
    if holder is not None:
        raise ConfigError(f"{key}={run_dir} is in use by a running lstm-train (pid {holder})")
    if not resuming and any((run_dir / name).exists() for name in RUN_FILES):
        raise ConfigError(
            f"{key}={run_dir} already holds a run; choose a new directory, or continue that"
            f" run with resume={run_dir}"
        )


@contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock for the block; a second holder is refused."""
    if fcntl is None:
        yield
        return
    descriptor = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _recorded_pid(run_dir)
            raise ConfigError(
                f"{run_dir} is in use by a running lstm-train (pid {holder})"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)  # releases the lock


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the live process holding the directory's lock, None if nobody does."""
    path = run_dir / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _recorded_pid(run_dir) or 0  # 0: it has not written its pid yet
    finally:
        os.close(descriptor)
    return None


def _recorded_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / LOCK_FILE).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None
