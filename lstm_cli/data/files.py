"""Reading the user's files: locating them, and CSV columns with errors that name the cell."""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from lstm_cli.common.errors import DataError
from lstm_cli.common.paths import EMBEDDED_DATA_DIR

EMBEDDED_PREFIX = "embedded:"
MISSING_TEXT = {"", "nan", "na", "n/a", "null", "none"}


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
            digest = hashlib.sha256()
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
            found[f"dataset.{key}"] = {"path": str(path.resolve()), "sha256": digest.hexdigest()}
    return found


def changed_files(trained_on: dict, now: dict) -> list[str]:
    """A warning line for each file whose content differs from the one trained on."""
    return [
        f"{key}={now[key]['path']} is not the file this model was trained on (sha256"
        f" {before['sha256'][:12]} then, {now[key]['sha256'][:12]} now)"
        for key, before in trained_on.items()
        if key in now and now[key]["sha256"] != before["sha256"]
    ]


@dataclass
class CsvTable:
    """A CSV file held as a header and rows of strings, with each row's line in the file."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    @classmethod
    def read(cls, path: Path) -> CsvTable:
        rows, lines = [], []
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:  # a BOM is no name
                reader = csv.reader(handle)
                for record in reader:
                    if record:
                        rows.append(record)
                        lines.append(reader.line_num)
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
        except csv.Error as err:
            raise DataError(f"{path}: not a readable CSV file ({err})") from err
        if not rows:
            raise DataError(f"{path}: the file is empty")
        header = [name.strip() for name in rows[0]]
        if len(rows) < 2:
            raise DataError(f"{path}: has a header but no data rows")
        for line, row in zip(lines[1:], rows[1:], strict=True):
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {line}: {len(row)} fields where the header has {len(header)}"
                )
        return cls(path, header, rows[1:], lines[1:])

    def keep(self, mask: list[bool]) -> CsvTable:
        """The same table with only the rows where `mask` is true (line numbers kept)."""
        if not any(mask):
            raise DataError(f"{self.path}: no rows left after dropping rows with missing values")
        pairs = [(row, line) for row, line, k in zip(self.rows, self.lines, mask, strict=True) if k]
        return CsvTable(self.path, self.header, [r for r, _ in pairs], [n for _, n in pairs])

    def where(self, row: int) -> str:
        return f"{self.path}, line {self.lines[row]}"

    def index(self, column: str, key: str) -> int:
        """Position of `column`; a missing one is reported with the columns that exist."""
        if column not in self.header:
            raise DataError(
                f"{self.path}: {key} column {column!r} not found;"
                f" columns are: {', '.join(self.header)}"
            )
        return self.header.index(column)

    def strings(self, column: str, key: str) -> list[str]:
        position = self.index(column, key)
        return [row[position].strip() for row in self.rows]

    def numbers(self, column: str, key: str, missing_ok: bool = False) -> list[float]:
        """A numeric column; text that is not a number names its line and column.

        Missing cells (empty, NaN, NA, infinite) are NaN when `missing_ok`, else an error.
        """
        position = self.index(column, key)
        values = []
        for line, row in zip(self.lines, self.rows, strict=True):
            text = row[position].strip()
            if text.lower() in MISSING_TEXT:
                value = math.nan
            else:
                try:
                    value = float(text)
                except ValueError:
                    raise DataError(
                        f"{self.path}, line {line}, column {column!r}: {text!r} is not a number"
                    ) from None
            if not math.isfinite(value):
                if not missing_ok:
                    raise DataError(
                        f"{self.path}, line {line}, column {column!r}: missing or infinite value"
                        f" {text!r} (set dataset.missing=drop or ffill to accept it)"
                    )
                value = math.nan
            values.append(value)
        return values

    def numeric_columns(self, exclude: set[str]) -> list[str]:
        """Columns (other than `exclude`) whose first row parses as a number."""
        first = dict(zip(self.header, self.rows[0], strict=True))
        numeric = []
        for name in self.header:
            if name in exclude:
                continue
            try:
                float(first[name])
            except ValueError:
                continue
            numeric.append(name)
        return numeric
