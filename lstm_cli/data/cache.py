"""The prepared-data cache (`data.cache`): parse a long-format table once, then map it.

An entry holds the sequences as read (after parsing, before any scaling, which depends on
the split): every step's features end to end in `steps.bin` (float64, row after row), and
in its manifest the lengths, ids and labels. Later runs, sweep jobs and torchrun ranks map
the entry instead of parsing the file again, and streamed runs read their batches from it.
Its name is a hash of the file's content and of every key that shapes the parsing, so an
edited file or a changed key never meets an old entry. Entries are built in a temporary
folder and renamed into place (a kill leaves none half written); one process builds while
the others wait on a file lock, then map its result. Each file's sha256 is checked on every
use: a damaged entry is rebuilt, never trusted. A run that parses the table in memory does
not wait for its entry: a background thread writes it while the run trains (the disk write,
its sync and its checksum took 0.9-2.4 s of a 1.6 GB CSV's 14-17 s to data ready), holding
the lock so that other processes still wait for the whole entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
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

FORMAT = 2  # bump when the entry layout changes: older entries are then never matched
PARSING_KEYS = ("kind", "features", "id_column", "step_column", "label_column", "missing")
MANIFEST = "manifest.json"
STEPS_FILE = "steps.bin"
STEP_TYPE = np.dtype("<f8")

_filling: list[threading.Thread] = []  # the threads writing this process's new entries


class DamagedEntry(Exception):
    """An entry whose files do not match its manifest."""


@dataclass
class Entry:
    """A checked cache entry: where its steps lie on disk, and what they hold."""

    folder: Path
    lengths: np.ndarray
    ids: list[str]
    labels: list[str] | None
    feature_count: int

    @property
    def steps_path(self) -> Path:
        return self.folder / STEPS_FILE

    def raw(self, source: str) -> RawSequences:
        """The sequences, their steps mapped copy-on-write (read as used, never written)."""
        rows = int(self.lengths.sum())
        steps = np.memmap(self.steps_path, STEP_TYPE, "c", shape=(rows, self.feature_count))
        return RawSequences(
            torch.from_numpy(steps), torch.from_numpy(self.lengths), self.ids, self.labels, source
        )


# What builds an entry: writes the steps to the open file it is given and returns the
# sequences' lengths, ids and labels.
Builder = Callable[[Any], tuple[np.ndarray, list[str], list[str] | None]]


def cache_folder(config: TrainConfig) -> Path | None:
    """The cache's folder (`data.cache_dir`, else `<output_root>/cache`), or None when off."""
    if not config.data.cache:
        return None
    folder = config.data.cache_dir or Path(config.output_root) / "cache"
    return Path(folder).expanduser().absolute()


def cached_sequences(
    folder: Path, path: Path, state: dict[str, Any], read: Callable[[], RawSequences]
) -> RawSequences:
    """The sequences of `path` from the cache in `folder`; on a miss, read into memory by
    `read` and returned at once, while a background thread writes them to the cache."""
    key, parsing, lock = _locked_key(folder, path, state)
    try:
        entry = _checked(folder / key, path)
        raw = entry.raw(str(path)) if entry is not None else read()
    except BaseException:
        _unlock(lock)
        raise
    if entry is not None:
        _unlock(lock)
        return raw
    filling = threading.Thread(
        target=_fill, args=(folder, key, path, parsing, raw, lock), name="cache-fill"
    )
    filling.start()
    _filling.append(filling)
    return raw


def wait_for_fills() -> None:
    """Until every entry this process is writing is in place (its log line said)."""
    while _filling:
        _filling.pop().join()


def _fill(
    folder: Path, key: str, path: Path, parsing: dict[str, Any], raw: RawSequences, lock: int
) -> None:
    """Write `raw` as the entry `key`, then release the lock its reader took."""

    def build(stream: Any) -> tuple[np.ndarray, list[str], list[str] | None]:
        np.ascontiguousarray(raw.steps.numpy(), dtype=STEP_TYPE).tofile(stream)
        return raw.lengths.numpy(), raw.ids, raw.labels

    try:
        _build(folder, key, path, parsing, build)
    except Exception as err:  # a full disk costs the next run a parse, never this run
        log.warning("data: %s could not be cached in %s (%s)", path, folder, err)
    finally:
        _unlock(lock)


def cached_entry(folder: Path, path: Path, state: dict[str, Any], build: Builder) -> Entry:
    """The checked entry of `path` read as `state` says, made by `build` on a miss."""
    key, parsing, lock = _locked_key(folder, path, state)
    try:
        return _checked(folder / key, path) or _build(folder, key, path, parsing, build)
    finally:
        _unlock(lock)


def _locked_key(folder: Path, path: Path, state: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    """The entry's name, the parsing keys it was named by, and its lock, taken."""
    parsing = {key: state[key] for key in PARSING_KEYS}
    key = _entry_name(content_digest(path), parsing)
    folder.mkdir(parents=True, exist_ok=True)
    return key, parsing, _lock(folder / f"{key}.lock")


def _checked(location: Path, path: Path) -> Entry | None:
    """The entry at `location` if there is one and it is whole; a damaged one is removed."""
    if not location.is_dir():
        return None
    try:
        entry = _load(location)
    except DamagedEntry as err:
        log.warning("data: cache entry %s is damaged (%s); parsing again", location, err)
        shutil.rmtree(location, ignore_errors=True)
        return None
    log.info("data: %s mapped from the cache %s", path, location)
    return entry


def _build(folder: Path, key: str, path: Path, parsing: dict[str, Any], build: Builder) -> Entry:
    """Write the entry (the caller holds its lock); a killed build's leftovers go first."""
    for leftover in folder.glob(f".{key}.*"):
        shutil.rmtree(leftover, ignore_errors=True)
    source = str(path.resolve())
    entry = _write(folder / key, build, {"format": FORMAT, "source": source, **parsing})
    _remove_stale(folder, key, source, parsing)
    log.info("data: %s parsed and cached in %s", path, entry.folder)
    return entry


def _entry_name(file_digest: str, parsing: dict[str, Any]) -> str:
    described = json.dumps({"format": FORMAT, "file": file_digest, **parsing}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()[:32]


def _lock(path: Path) -> int:
    """Take the entry's lock: a second process (or call) waits here until it is released."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


def _unlock(descriptor: int) -> None:
    os.close(descriptor)  # releases the lock


def _write(location: Path, build: Builder, described: dict[str, Any]) -> Entry:
    """The steps and the manifest, in a temporary folder renamed into place."""
    building = Path(tempfile.mkdtemp(prefix=f".{location.name}.", dir=location.parent))
    try:
        with (building / STEPS_FILE).open("wb") as stream:
            lengths, ids, labels = build(stream)
            width = stream.tell() // STEP_TYPE.itemsize // max(int(np.sum(lengths)), 1)
            stream.flush()
            os.fsync(stream.fileno())
        manifest = {
            **described,
            "feature_count": int(width),
            "lengths": np.asarray(lengths, dtype=np.int64).tolist(),
            "ids": ids,
            "labels": labels,
            "steps_sha256": file_sha256(building / STEPS_FILE),
        }
        (building / MANIFEST).write_text(json.dumps(manifest))
        os.replace(building, location)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return _entry(location, manifest)


def _load(location: Path) -> Entry:
    try:
        manifest = json.loads((location / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise DamagedEntry(f"format {manifest.get('format')}, expected {FORMAT}")
        entry = _entry(location, manifest)
        expected_size = int(entry.lengths.sum()) * entry.feature_count * STEP_TYPE.itemsize
        if entry.steps_path.stat().st_size != expected_size or len(entry.lengths) != len(entry.ids):
            raise DamagedEntry("its files disagree in size with its manifest")
        if file_sha256(entry.steps_path) != manifest["steps_sha256"]:
            raise DamagedEntry(f"{STEPS_FILE} does not match its checksum")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DamagedEntry(str(err)) from None
    return entry


def _entry(location: Path, manifest: dict[str, Any]) -> Entry:
    """The entry a manifest describes (unchecked: `_load` checks it against the files)."""
    lengths = np.asarray(manifest["lengths"], dtype=np.int64)
    return Entry(location, lengths, manifest["ids"], manifest["labels"], manifest["feature_count"])


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
