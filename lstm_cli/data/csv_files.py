"""CSV files read by Arrow: parsed a piece at a time on every core, typed by Arrow, and its
complaints put in the terms of the file (the line of a ragged row, bad UTF-8).

A CSV is parsed on every core into Arrow buffers (no Python object per cell): the columns a
caller names as text (ids, time stamps, labels) keep their spelling, the others are typed
by Arrow, so numbers arrive as numbers. Should a later block hold a cell that breaks a
column's type, the file is read again all as text, for `Table.numbers` to name the cell.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from lstm_cli.common.errors import DataError

MISSING_TEXT = ["", "nan", "na", "n/a", "null", "none"]
# The spellings Arrow reads as missing while typing a column (it compares exactly; a rarer
# case such as `nAn` makes the column text, converted here case-blind).
MISSING_SPELLINGS = [
    spelled for word in MISSING_TEXT for spelled in {word, word.upper(), word.capitalize()}
] + ["NaN"]
PIECE_BYTES = 64 << 20  # a CSV is parsed this many bytes at a time (see `_read_pieces`)


def read_csv(path: Path, text: set[str]) -> pa.Table:
    """`text` columns as text, the others typed by Arrow (missing cells null); all as text
    when a column's cells break the type Arrow gave it."""
    import pyarrow.csv as pv

    names = pv.open_csv(path).schema.names  # reads only the first block
    try:
        data = _read_pieces(
            path, {name: pa.string() for name in names if name.strip() in text}, typed=True
        )
    except pa.ArrowInvalid as err:
        if "conversion error" not in str(err):
            raise
    else:
        binary = [f.name for f in data.schema if pa.types.is_binary(f.type)]
        if binary:  # what Arrow makes of a column with bytes that are not UTF-8
            raise DataError(f"{path}, column {binary[0].strip()!r}: not UTF-8 text")
        return data
    return _read_pieces(path, {name: pa.string() for name in names}, typed=False)


def _read_pieces(path: Path, types: dict[str, pa.DataType], typed: bool) -> pa.Table:
    """The CSV parsed a piece at a time, each piece on every core, the columns' types those
    Arrow gave the first piece (or `types`). Arrow's own `read_csv` of a whole file holds
    its raw and half-converted blocks until the end: a 1.6 GB CSV peaked at 5.0 GB for a
    1.7 GB table; read in pieces, at 2.1 GB, and no slower (benchmarks/scale.py)."""
    import pyarrow.csv as pv

    def options(types: dict[str, pa.DataType]) -> pv.ConvertOptions:
        if not typed:
            return pv.ConvertOptions(column_types=types, strings_can_be_null=False)
        return pv.ConvertOptions(
            column_types=types, null_values=MISSING_SPELLINGS, strings_can_be_null=False
        )

    pieces: list[pa.Table] = []
    for piece in _csv_pieces(path):
        if not pieces:  # the first piece holds the header
            pieces.append(pv.read_csv(piece, convert_options=options(types)))
            continue
        first = pieces[0].schema
        pieces.append(
            pv.read_csv(
                piece,
                read_options=pv.ReadOptions(column_names=first.names),
                convert_options=options(dict(zip(first.names, first.types, strict=True))),
            )
        )
    return pa.concat_tables(pieces)


def _csv_pieces(path: Path) -> Iterator[pa.Buffer]:
    """The (decompressed) bytes of a CSV in pieces of about PIECE_BYTES that each end at the
    end of a line. Arrow splits its own blocks at line ends as well: a CSV value may not
    hold a line break, in a piece or in a whole-file read."""
    carry = b""  # the start of a line that the last piece cut
    with pa.input_stream(str(path)) as stream:
        while True:
            piece = bytearray(len(carry) + PIECE_BYTES)  # each piece's own: Arrow may keep it
            piece[: len(carry)] = carry
            size = len(carry) + stream.readinto(memoryview(piece)[len(carry) :])
            if size == len(carry):
                break
            end = piece.rfind(b"\n", 0, size) + 1
            carry = bytes(piece[end:size])
            if end:
                yield pa.py_buffer(memoryview(piece)[:end])
    if carry:
        yield pa.py_buffer(carry)


def complaint(path: Path, err: Exception) -> str:
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


def csv_cell(path: Path, position: int, column: int) -> str:
    """The cell of data row `position` (blank lines skipped) in column `column`."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        records = (record for record in csv.reader(handle) if record)
        next(records, None)
        for _ in range(position):
            next(records)
        return next(records)[column].strip()


def data_lines(path: Path) -> list[int]:
    """The line of each data row (blank lines skipped, as Arrow skips them)."""
    lines = []
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for record in reader:
            if record:
                lines.append(reader.line_num)
    return lines
