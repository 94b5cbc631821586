"""`lstm-train report DIR`: one row per training run under a sweep or outputs directory.

Each row: the run's directory and overrides, its status (finished, failed, running,
interrupted), epochs done, the best value of its monitored metric, its test metrics and
wall time. Runs are grouped by dataset and monitored metric (a val/loss of one dataset says
nothing against another's, nor against a val/acc), and sorted best first within a group.
`format=table|csv|json`. Reads only; writes nothing.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import sys
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from lstm_cli.common.errors import ConfigError, describe
from lstm_cli.config.schema import ReportConfig
from lstm_cli.config.validate import build, resolve
from lstm_cli.runs.status import read_status

COLUMNS = ("run", "dataset", "overrides", "status", "epochs", "monitor", "best", "wall_seconds")


def run(cfg: DictConfig) -> list[dict[str, Any]]:
    options = build(ReportConfig, resolve(cfg))
    root = Path(options.dir).expanduser()
    if not root.is_dir():
        raise ConfigError(f"dir={options.dir}: no such directory")
    described = [_described_or_warned(path, root) for path in find_runs(root)]
    rows = sorted(
        (row for row in described if row is not None), key=lambda r: (_group(r), _rank(r))
    )
    print(render(rows, options.format), end="")
    return rows


def _described_or_warned(path: Path, root: Path) -> dict[str, Any] | None:
    """One run's row; a damaged run (a cut metrics row, malformed JSON or YAML) is left
    out with a warning naming it, so that it never hides the others."""
    try:
        return describe_run(path, root)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        print(f"warning: skipped {path}: damaged ({describe(err)})", file=sys.stderr)
        return None


def find_runs(root: Path) -> list[Path]:
    """Training runs: directories with a status.json or results.json next to .hydra/."""
    candidates = [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]
    return [
        path
        for path in candidates
        if (path / ".hydra").is_dir()
        and ((path / "status.json").is_file() or (path / "results.json").is_file())
    ]


def describe_run(path: Path, root: Path) -> dict[str, Any]:
    config = _load_yaml(path / ".hydra" / "config.yaml") or {}
    overrides = _load_yaml(path / ".hydra" / "overrides.yaml") or []
    trainer = config.get("trainer", {})
    results = _load_json(path / "results.json")
    rows = _metrics_rows(path / "metrics.csv")
    monitor = trainer.get("monitor", "val/loss")
    mode = trainer.get("mode", "min")
    values = [float(r[monitor]) for r in rows if r.get(monitor) not in (None, "")]
    best = results.get("best_value") if results else None
    if best is None and values:
        best = min(values) if mode == "min" else max(values)
    return {
        "run": str(path.relative_to(root)) if path != root else ".",
        "dataset": config.get("dataset", {}).get("name", "unknown"),
        "overrides": " ".join(overrides),
        "status": read_status(path).get("status", "unknown"),
        "epochs": len(rows),
        "monitor": monitor,
        "mode": mode,
        "best": best,
        "wall_seconds": results.get("wall_seconds") if results else None,
        **(results.get("test", {}) if results else {}),
    }


# Among runs with no best value yet, those that may still get one come first.
_STATUS_ORDER = {"running": 0, "interrupted": 1, "finished": 2, "failed": 3}


def _group(row: dict[str, Any]) -> tuple[str, str, str]:
    """Runs whose monitored values can be compared: same dataset, metric and direction."""
    return (str(row["dataset"]), row["monitor"], row["mode"])


def _rank(row: dict[str, Any]) -> tuple[int, float, int, str]:
    """Best monitored value first; runs without one after them, failed ones last; ties by
    run name, so that the order never depends on the directory walk."""
    best, status = row["best"], _STATUS_ORDER.get(row["status"], len(_STATUS_ORDER))
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return (1, 0.0, status, row["run"])
    return (0, best if row["mode"] == "min" else -best, status, row["run"])


def render(rows: list[dict[str, Any]], form: str) -> str:
    """json and csv: one list, grouped; table: one table per group under its heading."""
    columns = _columns(rows)
    if form == "json":
        return json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=2) + "\n"
    if form == "csv":
        stream = io.StringIO()
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return stream.getvalue()
    if not rows:
        return "no training runs found\n"
    groups = itertools.groupby(rows, key=_group)
    return "\n".join(_heading(key, list(group)) for key, group in groups)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return [*COLUMNS, *sorted({k for row in rows for k in row if k.startswith("test/")})]


def _heading(key: tuple[str, str, str], rows: list[dict[str, Any]]) -> str:
    dataset, monitor, mode = key
    better = "lower" if mode == "min" else "higher"
    runs = f"{len(rows)} run" + ("s" if len(rows) > 1 else "")
    return f"dataset {dataset}, monitor {monitor} ({better} is better), {runs}:\n" + _table(
        rows, [c for c in _columns(rows) if c not in ("dataset", "monitor")]
    )


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _load_yaml(path: Path) -> Any:
    try:
        return OmegaConf.to_container(OmegaConf.load(path))
    except (OSError, yaml.YAMLError):  # missing or half-written: the row shows less
        return None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _metrics_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            return list(csv.DictReader(stream))
    except OSError:
        return []
