"""Tables of the user's data, read by Arrow: CSV, Parquet or Feather (Arrow IPC) by suffix.

A CSV is parsed on every core into Arrow buffers (no Python object per cell): the columns a
caller names as text (ids, time stamps, labels) keep their spelling, the others are typed
by Arrow, so numbers arrive as numbers. Should a later block hold a cell that breaks a
column's type, the file is read again all as text and the column converted here, so that the
error can name the cell. Errors keep the standard of a hand-written reader:
a missing column lists the columns, and a cell that is not a number names its column and
line (the line is looked up in the file only when an error needs it).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lstm_cli.common.errors import DataError

MISSING_TEXT = ["", "nan", "na", "n/a", "null", "none"]
# The spellings Arrow reads as missing while typing a column (it compares exactly; a rarer
# case such as `nAn` makes the column text, converted here case-blind).
MISSING_SPELLINGS = [
    spelled for word in MISSING_TEXT for spelled in {word, word.upper(), word.capitalize()}
] + ["NaN"]
HEAD_ROWS = 1000
PARQUET_SUFFIXES = {".parquet", ".pq"}
FEATHER_SUFFIXES = {".feather", ".arrow", ".ipc"}


@dataclass
class Table:
    """A table's columns (as read), its header, and for each row its position in the file."""

    path: Path
    header: list[str]
    data: pa.Table
    positions: np.ndarray  # 0-based data-row numbers in the file, of the rows kept
    _lines: list[int] | None = field(default=None, repr=False)

    @classmethod
    def read(cls, path: Path, text: Iterable[str | None] = (), head: bool = False) -> Table:
        """The table at `path`; in a CSV, the `text` columns stay text as spelled. `head`:
        only its first rows (a CSV's first block), enough to see what its columns hold."""
        try:
            data = _read(path, {name for name in text if name}, head)
            # Arrow's allocator keeps the reader's freed block buffers (a 159 MiB CSV: about
            # 200 MiB) unless told: given back here, the arrays built next reuse that memory
            # and the load's peak falls by as much (benchmarks/scale.py)
            pa.default_memory_pool().release_unused()
            header = [str(name).strip() for name in data.column_names]
        except UnicodeDecodeError as err:  # in the header, which Arrow hands to Python
            raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
            reason = _reason(path, err)
            joint = ", " if reason.startswith("line ") else ": "
            raise DataError(f"{path}{joint}{reason}") from None
        if data.num_rows == 0:
            raise DataError(f"{path}: has a header but no data rows")
        return cls(path, header, data.rename_columns(header), np.arange(data.num_rows))

    def keep(self, mask: np.ndarray) -> Table:
        """The same table with only the rows where `mask` is true (positions kept)."""
        if not mask.any():
            raise DataError(f"{self.path}: no rows left after dropping rows with missing values")
        kept = self.data.filter(pa.array(mask))
        return Table(self.path, self.header, kept, self.positions[mask], self._lines)

    def where(self, row: int) -> str:
        """`file, line N` (CSV) or `file, row N` (Parquet, Feather) of a row."""
        position = int(self.positions[row])
        if self.path.suffix.lower() in PARQUET_SUFFIXES | FEATHER_SUFFIXES:
            return f"{self.path}, row {position + 1}"
        if self._lines is None:
            self._lines = _data_lines(self.path)
        return f"{self.path}, line {self._lines[position]}"

    def index(self, column: str, key: str) -> int:
        """Position of `column`; a missing one is reported with the columns that exist."""
        if column not in self.header:
            raise DataError(
                f"{self.path}: {key} column {column!r} not found;"
                f" columns are: {', '.join(self.header)}"
            )
        return self.header.index(column)

    def strings(self, column: str, key: str) -> list[str]:
        return self._text(column, key).to_pylist()

    def codes(self, column: str, key: str) -> tuple[np.ndarray, list[str]]:
        """A column as integer codes, numbered in order of first appearance, and the
        distinct values they stand for: grouping rows without a Python object per row."""
        encoded = pc.dictionary_encode(self._text(column, key)).combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return codes, encoded.dictionary.to_pylist()

    def numbers(self, column: str, key: str, missing_ok: bool = False) -> np.ndarray:
        """A numeric column as float64; a cell that is not a number names its line and
        column. Missing cells (empty, NaN, NA, infinite) are NaN when `missing_ok`, else an
        error."""
        raw = self.data.column(self.index(column, key))
        if pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type):
            values = pc.cast(raw, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            text = self._text(column, key)
            missing = pc.is_in(pc.utf8_lower(text), value_set=pa.array(MISSING_TEXT))
            cells = pc.if_else(missing, pa.scalar(None, pa.string()), text)
            try:
                values = pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False)
            except pa.ArrowInvalid:
                row = _first_non_number(cells.to_pylist())
                raise DataError(
                    f"{self.where(row)}, column {column!r}: {cells[row].as_py()!r} is not a number"
                ) from None
        bad = ~np.isfinite(values)
        if bad.any() and not missing_ok:
            row = int(np.flatnonzero(bad)[0])
            shown = self._spelling(row, column, key)
            raise DataError(
                f"{self.where(row)}, column {column!r}: missing or infinite value {shown!r}"
                " (set dataset.missing=drop or ffill to accept it)"
            )
        return np.where(bad, math.nan, values)

    def numeric_columns(self, exclude: set[str]) -> list[str]:
        """Columns (other than `exclude`) whose first row is a number."""
        numeric = []
        for name in self.header:
            if name in exclude:
                continue
            try:  # the first cell only: no conversion of the whole column
                float(str(self.data.column(name)[0].as_py()).strip())
            except (TypeError, ValueError):
                continue
            numeric.append(name)
        return numeric

    def _spelling(self, row: int, column: str, key: str) -> str:
        """A cell as the file spells it (a typed CSV column holds only its value)."""
        if self.path.suffix.lower() in PARQUET_SUFFIXES | FEATHER_SUFFIXES:
            return str(self._text(column, key)[row].as_py())
        return _csv_cell(self.path, int(self.positions[row]), self.index(column, key))

    def _text(self, column: str, key: str) -> pa.ChunkedArray:
        raw = self.data.column(self.index(column, key))
        return pc.utf8_trim_whitespace(pc.cast(raw, pa.string()))


def _read(path: Path, text: set[str], head: bool) -> pa.Table:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        if not head:
            return pq.read_table(path)
        parquet = pq.ParquetFile(path)
        first = next(parquet.iter_batches(batch_size=HEAD_ROWS), None)
        return pa.Table.from_batches([first] if first else [], schema=parquet.schema_arrow)
    if suffix in FEATHER_SUFFIXES:
        import pyarrow.feather as feather

        table = feather.read_table(path, memory_map=head)
        return table.slice(0, HEAD_ROWS) if head else table
    if head:
        import pyarrow.csv as pv

        reader = pv.open_csv(path)
        return pa.Table.from_batches(list(itertools.islice(reader, 1)), schema=reader.schema)
    return _read_csv(path, text)


def _read_csv(path: Path, text: set[str]) -> pa.Table:
    """`text` columns as text, the others typed by Arrow (missing cells null); all as text
    when a column's cells break the type Arrow gave it."""
    import pyarrow.csv as pv

    names = pv.open_csv(path).schema.names  # reads only the first block
    typed = pv.ConvertOptions(
        column_types={name: pa.string() for name in names if name.strip() in text},
        null_values=MISSING_SPELLINGS,
        strings_can_be_null=False,
    )
    try:
        data = pv.read_csv(path, convert_options=typed)
    except pa.ArrowInvalid as err:
        if "conversion error" not in str(err):
            raise
    else:
        binary = [f.name for f in data.schema if pa.types.is_binary(f.type)]
        if binary:  # what Arrow makes of a column with bytes that are not UTF-8
            raise DataError(f"{path}, column {binary[0].strip()!r}: not UTF-8 text")
        return data
    all_text = {name: pa.string() for name in names}
    return pv.read_csv(
        path, convert_options=pv.ConvertOptions(column_types=all_text, strings_can_be_null=False)
    )


def _reason(path: Path, err: Exception) -> str:
    """Arrow's complaint in the terms of the file: the line of a ragged row, bad UTF-8."""
    text = str(err).splitlines()[0]
    if "Empty CSV file" in text:
        return "the file is empty"
    if "invalid UTF8" in text or "UTF-8" in text:
        return "not UTF-8 text"
    if "Expected" in text and "columns, got" in text:
        return _ragged_row(path) or f"not a readable table ({text})"
    return f"not a readable table ({text})"


def _ragged_row(path: Path) -> str | None:
    """The first row whose field count differs from the header's, by its line."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        for record in reader:
            if record and len(record) != len(header):
                return (
                    f"line {reader.line_num}: {len(record)} fields where the header has"
                    f" {len(header)}"
                )
    return None


def _csv_cell(path: Path, position: int, column: int) -> str:
    """The cell of data row `position` (blank lines skipped) in column `column`."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        records = (record for record in csv.reader(handle) if record)
        next(records, None)
        for _ in range(position):
            next(records)
        return next(records)[column].strip()


def _data_lines(path: Path) -> list[int]:
    """The line of each data row (blank lines skipped, as Arrow skips them)."""
    lines = []
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for record in reader:
            if record:
                lines.append(reader.line_num)
    return lines


def _first_non_number(cells: list[str | None]) -> int:
    for row, cell in enumerate(cells):
        if cell is None:
            continue
        try:
            float(cell)
        except ValueError:
            return row
    return 0
