"""The prepared-data cache (`data.cache`): parse a long-format table once, then map it.

An entry holds the sequences as read (after parsing, before any scaling, which depends on
the split) as .npy arrays that later runs, sweep jobs and torchrun ranks memory-map
instead of parsing the file again. Its name is a hash of the file's content and of every
key that shapes the parsing, so an edited file or a changed key never meets an old entry.
Entries are built in a temporary folder and renamed into place (a kill leaves none half
written); one process builds while the others wait on a file lock, then map its result.
Each array's sha256 is checked on every use: a damaged entry is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstm_cli.config.schema import TrainConfig
from lstm_cli.data.files import content_digest, file_sha256
from lstm_cli.data.raw import RawSequences

try:
    import fcntl
except ImportError:  # Windows: no flock; two processes may then both build an entry
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("lstm_cli.data")

FORMAT = 1  # bump when the entry layout changes: older entries are then never matched
PARSING_KEYS = ("kind", "features", "id_column", "step_column", "label_column", "missing")
MANIFEST = "manifest.json"


class DamagedEntry(Exception):
    """An entry whose files do not match its manifest."""


def cache_folder(config: TrainConfig) -> Path | None:
    """The cache's folder (`data.cache_dir`, else `<output_root>/cache`), or None when off."""
    if not config.data.cache:
        return None
    folder = config.data.cache_dir or Path(config.output_root) / "cache"
    return Path(folder).expanduser().absolute()


def cached_sequences(
    folder: Path, path: Path, state: dict[str, Any], read: Callable[[], RawSequences]
) -> RawSequences:
    """The sequences of `path` from the cache in `folder`, made with `read` on a miss."""
    parsing = {key: state[key] for key in PARSING_KEYS}
    key = _entry_name(content_digest(path), parsing)
    entry = folder / key
    folder.mkdir(parents=True, exist_ok=True)
    with _building(folder / f"{key}.lock"):
        if entry.is_dir():
            try:
                raw = _load(entry, str(path))
                log.info("data: %s mapped from the cache %s", path, entry)
                return raw
            except DamagedEntry as err:
                log.warning(
                    "data: cache entry %s is damaged (%s); parsing %s again", entry, err, path
                )
                shutil.rmtree(entry, ignore_errors=True)
        raw = read()
        _write(entry, raw, {"format": FORMAT, "source": str(path.resolve()), **parsing})
        _remove_stale(folder, key, str(path.resolve()), parsing)
        log.info("data: %s parsed and cached in %s", path, entry)
        return raw


def _entry_name(file_digest: str, parsing: dict[str, Any]) -> str:
    described = json.dumps({"format": FORMAT, "file": file_digest, **parsing}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()[:32]


@contextmanager
def _building(lock: Path) -> Iterator[None]:
    """Hold the entry's lock: a second process waits here until the first has built it."""
    if fcntl is None:
        yield
        return
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _write(entry: Path, raw: RawSequences, described: dict[str, Any]) -> None:
    """The arrays and their manifest, in a temporary folder renamed into place."""
    building = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        arrays = {"steps": raw.steps.numpy(), "lengths": raw.lengths.numpy()}
        files = {}
        for name, array in arrays.items():
            target = building / f"{name}.npy"
            with target.open("wb") as stream:
                np.save(stream, np.ascontiguousarray(array), allow_pickle=False)
                stream.flush()
                os.fsync(stream.fileno())
            files[target.name] = file_sha256(target)
        names = {"ids": raw.ids, "labels": raw.labels}
        manifest = {**described, "files": files, **names}
        (building / MANIFEST).write_text(json.dumps(manifest))
        os.replace(building, entry)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _load(entry: Path, source: str) -> RawSequences:
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise DamagedEntry(f"format {manifest.get('format')}, expected {FORMAT}")
        arrays = {}
        for file, digest in manifest["files"].items():
            if file_sha256(entry / file) != digest:
                raise DamagedEntry(f"{file} does not match its checksum")
            # copy-on-write mapping: pages are read as used, the file is never written
            arrays[file] = np.load(entry / file, mmap_mode="c", allow_pickle=False)
        steps, lengths = arrays["steps.npy"], arrays["lengths.npy"]
        ids, labels = manifest["ids"], manifest["labels"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DamagedEntry(str(err)) from None
    if len(lengths) != len(ids) or int(lengths.sum()) != len(steps):
        raise DamagedEntry("its arrays disagree in size")
    return RawSequences(torch.from_numpy(steps), torch.from_numpy(lengths), ids, labels, source)


def _remove_stale(folder: Path, kept: str, source: str, parsing: dict[str, Any]) -> None:
    """Entries of an earlier content of the same file, read the same way: never matched
    again, so they go (a nightly file that changes does not fill the disk)."""
    for manifest_path in folder.glob(f"*/{MANIFEST}"):
        entry = manifest_path.parent
        if entry.name == kept:
            continue
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("source") == source and all(
            manifest.get(key) == value for key, value in parsing.items()
        ):
            shutil.rmtree(entry, ignore_errors=True)
