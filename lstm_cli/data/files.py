"""Reading the user's files: locating them, and CSV columns with errors that name the cell."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from lstm_cli.errors import DataError
from lstm_cli.paths import EMBEDDED_DATA_DIR

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


@dataclass
class CsvTable:
    """A CSV file held as a header and rows of strings; line numbers are 1-based in errors."""

    path: Path
    header: list[str]
    rows: list[list[str]]

    @classmethod
    def read(cls, path: Path) -> CsvTable:
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                records = list(csv.reader(handle))
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
        except csv.Error as err:
            raise DataError(f"{path}: not a readable CSV file ({err})") from err
        records = [r for r in records if r]
        if not records:
            raise DataError(f"{path}: the file is empty")
        header = [name.strip() for name in records[0]]
        if len(records) < 2:
            raise DataError(f"{path}: has a header but no data rows")
        for offset, row in enumerate(records[1:], start=2):
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {offset}: {len(row)} fields where the header has {len(header)}"
                )
        return cls(path, header, records[1:])

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

    def numbers(self, column: str, key: str) -> list[float]:
        """A numeric column; a non-number, NaN or infinity names its line and column."""
        position = self.index(column, key)
        values = []
        for line, row in enumerate(self.rows, start=2):
            text = row[position].strip()
            try:
                value = float(text)
            except ValueError:
                raise DataError(
                    f"{self.path}, line {line}, column {column!r}: {text!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise DataError(
                    f"{self.path}, line {line}, column {column!r}: {text} is not a finite number"
                )
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
