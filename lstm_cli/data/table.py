"""Tables of the user's data, read by Arrow: CSV, Parquet or Feather (Arrow IPC) by suffix.

A CSV comes from `csv_files` (typed by Arrow; text where asked). Errors keep the standard
of a hand-written reader: a missing column lists the columns, and a cell that is not a
number names its column and line (the line is looked up in the file only when an error
needs it). Numbers are converted a part of rows at a time, the table letting go of them as
they are (`Table.take_numbers`).
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lstm_cli.common.errors import DataError
from lstm_cli.data.csv_files import MISSING_TEXT, complaint, csv_cell, data_lines, read_csv

# Arrow's default allocator (mimalloc) keeps what Arrow frees for Arrow's own later use: the
# table's numbers, freed as they are converted (`Table.take_numbers`), stayed in the process
# beside the arrays made of them (a 1.6 GB CSV: 4.5 GB at the peak of reading). The system
# allocator gives them back for numpy and torch to reuse (3.0 GB).
pa.set_memory_pool(pa.system_memory_pool())

HEAD_ROWS = 1000
PART_ROWS = 1 << 20  # rows converted to numbers at a time (see `Table.take_numbers`)
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
            reason = complaint(path, err)
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
            self._lines = data_lines(self.path)
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
        """A column as int32 codes, numbered in order of first appearance, and the distinct
        values they stand for: grouping rows without a Python object per row (int32, as
        Arrow numbers them: every array made from the codes is half the size of int64's)."""
        encoded = pc.dictionary_encode(self._text(column, key)).combine_chunks()
        if encoded.null_count:  # an empty cell of a Parquet or Feather file (a CSV's is "")
            row = pc.index(pc.is_null(encoded), True).as_py()
            raise DataError(f"{self.where(row)}, column {column!r}: missing value ({key})")
        return encoded.indices.to_numpy(), encoded.dictionary.to_pylist()

    def release(self, *columns: str) -> None:
        """Let go of columns the caller reads no more: they become null columns, which hold
        no memory (a 1.6 GB CSV's ids, steps and labels: 0.5 GB). The allocator is then
        asked to give back what it keeps of them and of the copies made in reading them
        (held in blocks of a CSV piece's size, too small to go back by themselves: at 10x,
        0.6 GB more at the peak, 0.8 GB more once the splits are made)."""
        for column in columns:
            place = self.header.index(column)
            null = pa.field(self.data.schema.names[place], pa.null())
            self.data = self.data.set_column(place, null, pa.nulls(self.data.num_rows))
        pa.default_memory_pool().release_unused()

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
        return np.where(bad, math.nan, values) if bad.any() else values

    def take_numbers(
        self, columns: list[str], key: str, missing_ok: bool, release: bool
    ) -> np.ndarray:
        """`numbers` of several columns as one [rows, columns] float64 array, converted
        about PART_ROWS rows at a time. `release` (the caller reads these columns no more):
        each part's copy of them then leaves this table (they become null columns) once
        converted, so the table's numbers and the result never sit in memory whole side by
        side (a 1.6 GB CSV: 1.2 GB less at the peak, benchmarks/scale.py). An error leaves
        the table without its rows."""
        places = [self.index(column, key) for column in columns]
        schema = kept_schema = self.data.schema
        if release:
            for place in places:
                kept_schema = kept_schema.set(place, pa.field(schema.names[place], pa.null()))
        values = np.empty((self.data.num_rows, len(columns)))
        pending = collections.deque(self.data.to_batches())
        self.data = schema.empty_table()  # `pending` alone holds the rows now
        kept: list[pa.RecordBatch] = []
        first = 0
        while pending:
            part, rows = [], 0
            while pending and rows < PART_ROWS:
                part.append(pending.popleft())
                rows += part[-1].num_rows
            stretch = slice(first, first + rows)
            part_table = Table(
                self.path, self.header, pa.Table.from_batches(part, schema), self.positions[stretch]
            )
            for n, column in enumerate(columns):
                values[stretch, n] = part_table.numbers(column, key, missing_ok)
            if release:
                part = [_without(batch, places, kept_schema) for batch in part]
            kept.extend(part)
            del part_table, part
            pa.default_memory_pool().release_unused()  # the freed part, for the next to use
            first += rows
        self.data = pa.Table.from_batches(kept, kept_schema)
        return values

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
        return csv_cell(self.path, int(self.positions[row]), self.index(column, key))

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
    return read_csv(path, text)


def _without(batch: pa.RecordBatch, places: list[int], schema: pa.Schema) -> pa.RecordBatch:
    """The batch with its columns at `places` replaced by nulls, which hold no memory."""
    columns = [
        pa.nulls(batch.num_rows) if place in places else column
        for place, column in enumerate(batch.columns)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _first_non_number(cells: list[str | None]) -> int:
    for row, cell in enumerate(cells):
        if cell is None:
            continue
        try:
            float(cell)
        except ValueError:
            return row
    return 0
