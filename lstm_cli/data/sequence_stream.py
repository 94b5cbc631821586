"""Parse a long-format table larger than memory into a cache entry, block by block.

`data.streaming` reads the file as Arrow record batches (a CSV's blocks, a Parquet file's
row groups, a Feather file's batches) and appends each batch's features to the entry, so
memory holds one batch at a time, whatever the file's size. What that asks of the file:
the rows of a sequence lie together, in step order (as most large exports are written);
a file that breaks this is refused with the row that breaks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lstm_cli.common.errors import DataError
from lstm_cli.data.csv_files import MISSING_SPELLINGS
from lstm_cli.data.table import FEATHER_SUFFIXES, PARQUET_SUFFIXES

BATCH_ROWS = 1 << 16


@dataclass
class Sequences:
    """What has been read so far: each sequence's id, length and label, and where the
    last one stands (it may continue into the next batch)."""

    ids: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    last_step: float = float("-inf")
    rows: int = 0  # data rows read so far, for messages


def stream_sequences(
    path: Path, state: dict[str, Any], stream: IO[bytes]
) -> tuple[np.ndarray, list[str], list[str] | None]:
    """Write every step's features (float64, row after row) to `stream`; return the
    sequences' lengths, ids and labels (None when the file has no label column)."""
    id_column, step_column, label_column = (
        state["id_column"],
        state["step_column"],
        state["label_column"],
    )
    done = Sequences()
    has_labels = None
    for batch in _batches(path, state):
        names = batch.schema.names
        has_labels = label_column in names if has_labels is None else has_labels
        for column in [id_column, *state["features"], *([step_column] if step_column else [])]:
            if column not in names:
                raise DataError(
                    f"{path}: column {column!r} not found; columns are: {', '.join(names)}"
                )
        values = np.stack(
            [_floats(batch.column(names.index(c))) for c in state["features"]], axis=1
        )
        keep = _rows_to_keep(values, path, state, done.rows)
        done.rows += batch.num_rows
        if not keep.all():
            batch, values = batch.filter(pa.array(keep)), values[keep]
        if not batch.num_rows:
            continue
        ids = _text(batch.column(names.index(id_column)))
        labels = _text(batch.column(names.index(label_column))) if has_labels else None
        steps = _floats(batch.column(names.index(step_column))) if step_column else None
        _add(done, ids, labels, steps, path, done.rows - len(keep))
        values.astype(np.float64, copy=False).tofile(stream)
    if not done.ids:
        raise DataError(f"{path}: has a header but no data rows")
    return np.asarray(done.lengths), done.ids, done.labels if has_labels else None


def _batches(path: Path, state: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            # pre_buffer off: on, the reader keeps every row group it has read
            parquet = pq.ParquetFile(path, pre_buffer=False)
            yield from parquet.iter_batches(batch_size=BATCH_ROWS)
        elif suffix in FEATHER_SUFFIXES:
            with pa.memory_map(str(path)) as source:
                reader = pa.ipc.open_file(source)
                for number in range(reader.num_record_batches):
                    yield reader.get_batch(number)
        else:
            import pyarrow.csv as pv

            text = {state["id_column"]: pa.string(), state["label_column"]: pa.string()}
            options = pv.ConvertOptions(
                column_types=text, null_values=MISSING_SPELLINGS, strings_can_be_null=False
            )
            yield from pv.open_csv(path, convert_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
        raise DataError(f"{path}: {str(err).splitlines()[0]}") from None


def _floats(column: pa.Array) -> np.ndarray:
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise DataError(f"holds text where numbers were expected ({column.type})")
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


def _text(column: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(pc.cast(column, pa.string()))


def _rows_to_keep(values: np.ndarray, path: Path, state: dict[str, Any], before: int) -> np.ndarray:
    complete = np.isfinite(values).all(axis=1)
    if state["missing"] == "error" and not complete.all():
        row = before + int(np.flatnonzero(~complete)[0]) + 1
        raise DataError(
            f"{path}, row {row}: missing or infinite feature value"
            " (set dataset.missing=drop to accept it)"
        )
    return complete


def _add(
    done: Sequences,
    ids: pa.Array,
    labels: pa.Array | None,
    steps: np.ndarray | None,
    path: Path,
    first_row: int,
) -> None:
    """Count the batch's rows into sequences, checking that each sequence's rows lie
    together, in step order, with one label."""
    count = len(ids)
    new = np.ones(count, dtype=bool)
    if count > 1:
        new[1:] = pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)
    new[0] = not done.ids or ids[0].as_py() != done.ids[-1]
    starts = np.flatnonzero(new)
    if starts.size == 0 or starts[0] > 0:  # the batch begins inside the last sequence
        done.lengths[-1] += int(starts[0]) if starts.size else count
    for offset, sequence_id in zip(starts, ids.take(starts).to_pylist(), strict=True):
        if sequence_id in done.seen:
            raise DataError(
                f"{path}, row {first_row + int(offset) + 1}: sequence {sequence_id!r} continues"
                " here after other sequences; data.streaming needs each sequence's rows"
                " together (sort the file by id and step, or set data.streaming=false)"
            )
        done.seen.add(sequence_id)
    done.ids += ids.take(starts).to_pylist()
    done.lengths += np.diff(np.append(starts, count)).tolist()
    if steps is not None:
        previous = np.concatenate(([done.last_step], steps[:-1]))
        backwards = np.flatnonzero(~new & (steps < previous))
        if backwards.size:
            raise DataError(
                f"{path}, row {first_row + int(backwards[0]) + 1}: steps go backwards within"
                " a sequence; data.streaming reads rows in file order (sort the file by id"
                " and step, or set data.streaming=false)"
            )
        done.last_step = float(steps[-1])
    if labels is not None:
        first_of_row = np.maximum.accumulate(np.where(new, np.arange(count), 0))
        carried = done.labels[-1] if not new[0] else None
        expected = labels.take(first_of_row).to_numpy(zero_copy_only=False)
        if carried is not None:
            expected[: starts[0] if starts.size else count] = carried
        differing = np.flatnonzero(labels.to_numpy(zero_copy_only=False) != expected)
        if differing.size:
            row = int(differing[0])
            raise DataError(
                f"{path}, row {first_row + row + 1}: label {labels[row].as_py()!r} differs"
                f" from its sequence's first label {expected[row]!r}"
            )
        done.labels += labels.take(starts).to_pylist()
