"""The user's data files: locating them, naming them absolutely, fingerprinting them."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from lstm_cli.common.errors import DataError
from lstm_cli.common.paths import EMBEDDED_DATA_DIR

EMBEDDED_PREFIX = "embedded:"


def resolve_path(spec: str, key: str) -> Path:
    """The file a config value points to; `embedded:NAME` is a file shipped in the package."""
    if not spec:
        raise DataError(f"{key} is empty: give the path of the data file")
    if spec.startswith(EMBEDDED_PREFIX):
        path = EMBEDDED_DATA_DIR / spec[len(EMBEDDED_PREFIX) :]
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise DataError(f"{key}={spec}: no such file")
    return path


DATA_FILE_KEYS = ("path", "val_path", "test_path")


def absolute_paths(dataset: dict) -> dict:
    """The dataset keys with every file path made absolute, so that a saved run names the
    same files from any directory (embedded files and unset keys stay as they are)."""
    fixed = dict(dataset)
    for key in DATA_FILE_KEYS:
        spec = fixed.get(key)
        if isinstance(spec, str) and spec and not spec.startswith(EMBEDDED_PREFIX):
            fixed[key] = str(Path(spec).expanduser().absolute())
    return fixed


def fingerprints(dataset: object) -> dict[str, dict[str, str]]:
    """Each data file a dataset config names, with the sha256 of its content: what a
    saved run was trained on, to compare with what evaluate reads later."""
    found = {}
    for key in DATA_FILE_KEYS:
        spec = getattr(dataset, key, None)
        if spec:
            path = resolve_path(spec, f"dataset.{key}")
            found[f"dataset.{key}"] = {"path": str(path.resolve()), "sha256": content_digest(path)}
    return found


def content_digest(path: Path) -> str:
    """The sha256 of a file's content, hashed once per process while the file is unchanged
    (the data cache's key and the run's record of its data both need it)."""
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, modified_ns: int) -> str:  # size, time: part of the key
    return file_sha256(Path(path))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def changed_files(trained_on: dict, now: dict) -> list[str]:
    """A warning line for each file whose content differs from the one trained on."""
    return [
        f"{key}={now[key]['path']} is not the file this model was trained on (sha256"
        f" {before['sha256'][:12]} then, {now[key]['sha256'][:12]} now)"
        for key, before in trained_on.items()
        if key in now and now[key]["sha256"] != before["sha256"]
    ]
