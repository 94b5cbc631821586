"""Atomic file replacement: a kill at any moment leaves the old file or the new one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes 0600 files; give them the usual mode


@contextmanager
def atomic_file(path: Path, mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success flush, fsync and rename it to `path`.

    On any failure (a full disk, an exception, a signal) the temporary file is removed and
    `path` keeps its previous content.
    """
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(temporary, _FILE_MODE)
        with os.fdopen(handle, mode, **open_args) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_leftovers(directory: Path, names: Iterable[str]) -> list[Path]:
    """Remove the temporary files that atomic writes of `names` in `directory` left when
    a kill stopped them (SIGKILL skips the cleanup above); return what was removed."""
    removed = [
        leftover
        for name in names
        for leftover in directory.glob(f".{name}.*")
        if leftover.is_file()
    ]
    for leftover in removed:
        leftover.unlink(missing_ok=True)
    return removed
