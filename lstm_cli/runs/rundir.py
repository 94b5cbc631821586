"""Files of a run directory: the `latest` pointer, atomic JSON, the per-epoch metrics CSV."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lstm_cli.common.atomic import atomic_file
from lstm_cli.common.errors import ConfigError

LATEST = "latest"


def current_run_dir() -> Path:
    """This job's directory, which Hydra has made."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def refuse_to_replace(paths: list[Path | None], overwrite: bool, overwrite_key: str) -> None:
    """Before any work: an output file that exists (or a link, even one to nothing) is
    replaced only when asked to."""
    for path in paths:
        if path is not None and (path.exists() or path.is_symlink()) and not overwrite:
            raise ConfigError(f"output={path} exists; set {overwrite_key}=true to replace it")


def mark_latest(run_dir: Path) -> None:
    """Point `<command>/latest` at this run once it has got going.

    Called only when the inputs have loaded, so a run that fails on bad input leaves the
    pointer on the previous good run. Jobs of a multirun sweep are left out: they are
    found through their sweep directory.
    """
    if not in_sweep():
        point_latest(run_dir)


def in_sweep() -> bool:
    """Whether this job is one of a multirun sweep's."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


def command_line() -> list[str]:
    """This job's overrides as given on the command line (a sweep job: its own values)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task)


def point_latest(run_dir: Path) -> None:
    """Make `<run_dir>/../latest` a symlink to `run_dir`, replaced atomically."""
    link = run_dir.parent / LATEST
    temporary = run_dir.parent / f".{LATEST}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(run_dir.name)
    os.replace(temporary, link)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    with atomic_file(path, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=2)
        stream.write("\n")


class MetricsLog:
    """metrics.csv: one row per epoch, appended and flushed as soon as the epoch ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: list[str] | None = None

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace the file atomically with `rows` (a resumed run's rows up to its checkpoint)."""
        if not rows:
            self.path.unlink(missing_ok=True)
            return
        self.columns = list(rows[0])
        with atomic_file(self.path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)

    def append(self, row: Mapping[str, Any]) -> None:
        new_file = not self.path.exists()
        if self.columns is None:
            self.columns = list(row)
        with self.path.open("a", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=self.columns)
            if new_file:
                writer.writeheader()
            writer.writerow({k: _cell(v) for k, v in row.items()})
            stream.flush()
            os.fsync(stream.fileno())


def _cell(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def checkpoint_path(run_dir: str | None, checkpoint: str | None, which: str) -> Path:
    """The checkpoint that `run_dir=` / `checkpoint=` name; exactly one must be given."""
    if bool(run_dir) == bool(checkpoint):
        raise ConfigError("give exactly one of run_dir=DIR or checkpoint=FILE")
    if checkpoint:
        return Path(checkpoint).expanduser()
    directory = Path(run_dir).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"run_dir={run_dir}: no such directory")
    return directory / "checkpoints" / f"{which}.pt"
