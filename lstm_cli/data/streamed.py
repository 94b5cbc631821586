"""`data.streaming`: labelled sequences that stay on disk and are read batch by batch.

The sequences live in a cache entry (see `cache.py`; built block by block by
`sequence_stream.py` when the file itself is larger than memory). A split keeps only each
sequence's place in the entry's steps file, its length and its label; a batch reads its
sequences with one `pread` each and scales them then. The scaler is fitted a chunk at a
time. Memory holds batches and per-sequence numbers, never the steps of a split, and the
batch order (`batching.batch_order` with `shard`) keeps each stretch of an epoch within a
few neighbouring shards of the file, so reads stay local.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lstm_cli.common.errors import DataError
from lstm_cli.common.runtime import memory_available
from lstm_cli.config.dataset_schema import SequenceDatasetConfig
from lstm_cli.data.cache import STEP_TYPE, Entry, cached_entry
from lstm_cli.data.files import resolve_path
from lstm_cli.data.labels import class_names, encode_labels, fit_target_scaler
from lstm_cli.data.scaling import Moments, Scaler
from lstm_cli.data.sequence_stream import stream_sequences
from lstm_cli.data.sequences import SplitPlan, labelled_data, new_state, split_indices
from lstm_cli.data.splits import Batch, PreparedData

log = logging.getLogger("lstm_cli.data")

# Reading a long-format table in memory peaked at 1.4x a 1.6 GB CSV's size and 4.6x a
# Parquet file's (compressed) above the process's baseline (benchmarks/scale.py), so auto
# streams a file whose size times this exceeds the memory available.
IN_MEMORY_BYTES_PER_FILE_BYTE = 5
# Sequences read as one neighbourhood: the batch order shuffles shards, then sequences
# within a window of a few shards (see batching.SHARD_WINDOW).
SHARD_SEQUENCES = 4096
CHUNK_ROWS = 1 << 18  # rows read at a time while fitting the scaler


@dataclass
class StreamedSplit:
    """Sequences in a steps file: for each its first row there, its length and target."""

    path: Path
    feature_count: int
    starts: Tensor
    lengths: Tensor
    y: Tensor
    scaler: Scaler
    shard: int = SHARD_SEQUENCES
    _descriptor: int | None = field(default=None, init=False, repr=False)
    _offset: np.ndarray = field(init=False, repr=False)
    _scale: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._offset = np.asarray(self.scaler.offset, dtype=np.float64)
        self._scale = np.asarray(self.scaler.scale, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, index: Tensor) -> Batch:
        """Read the sequences at `index` (one pread each: safe from any thread), scale them
        and pad them to the batch's longest. numpy only: torch's thread pool stays free for
        the training step that runs meanwhile."""
        lengths = self.lengths[index].numpy()
        starts = self.starts[index].numpy()
        row_bytes = self.feature_count * STEP_TYPE.itemsize
        descriptor = self._open()
        x = np.zeros((len(lengths), int(lengths.max(initial=0)), self.feature_count), np.float32)
        for row, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            steps = np.frombuffer(
                os.pread(descriptor, length * row_bytes, start * row_bytes), STEP_TYPE
            )
            x[row, :length] = (steps.reshape(length, -1) - self._offset) / self._scale
        return Batch(torch.from_numpy(x), torch.from_numpy(lengths), self.y[index])

    def sequence_lengths(self) -> Tensor:
        return self.lengths

    def nbytes(self) -> int:
        return 0  # the steps stay on disk

    def to(self, device: torch.device) -> StreamedSplit:
        return self  # batches move to the device as they are read

    def _open(self) -> int:
        if self._descriptor is None:
            self._descriptor = os.open(self.path, os.O_RDONLY)
        return self._descriptor

    def __del__(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)


def wanted(choice: bool | str, cfg: SequenceDatasetConfig, cache: Path | None) -> bool:
    """Whether `data.streaming` (true, false or auto) streams this dataset: auto does when
    parsing it in memory would take more than the memory available (and its missing
    cells are not forward-filled, which needs the whole table)."""
    if cache is None or choice is False:
        return False  # true without a cache was refused with the config
    if choice is True:
        return True
    available = memory_available()
    size = resolve_path(cfg.path, "dataset.path").stat().st_size
    needed = size * IN_MEMORY_BYTES_PER_FILE_BYTE
    return cfg.missing != "ffill" and available is not None and needed > available


def prepare(cfg: SequenceDatasetConfig, fitted: dict[str, Any] | None, cache: Path) -> PreparedData:
    """The dataset a `csv_sequences` config names, streamed from the cache in `cache`."""
    path = resolve_path(cfg.path, "dataset.path")
    state = fitted or new_state(cfg, path)
    log.info("data: %s streamed from disk batch by batch (data.streaming)", path)

    def entry_of(file: Path) -> Entry:
        return cached_entry(cache, file, state, partial(stream_sequences, file, state))

    test_path = resolve_path(cfg.test_path, "dataset.test_path") if cfg.test_path else None
    plan = SplitPlan(cfg.task, cfg.val_fraction, cfg.test_fraction, cfg.scaler)
    return prepare_streamed(
        entry_of(path),
        entry_of(test_path) if test_path else None,
        state,
        plan,
        fitted is not None,
        cfg.split_seed,
        (str(path), str(test_path) if test_path else None),
    )


def prepare_streamed(
    entry: Entry,
    test_entry: Entry | None,
    state: dict[str, Any],
    plan: SplitPlan,
    fitted: bool,
    seed: int,
    sources: tuple[str, str | None],
) -> PreparedData:
    """Split the entry's sequences as `prepare_labelled` splits sequences in memory."""
    source, test_source = sources
    labelled = _labelled(entry, source)
    classification = plan.task == "classification"
    if not fitted and classification:
        state["classes"] = class_names(labelled.labels, source)
    fit_index, val_index, test_index = split_indices(
        labelled.labels, plan, test_entry is None, seed
    )
    if not fitted:
        moments = _moments(entry, fit_index)
        state["scaler"] = Scaler.of_moments(plan.scaler, moments, state["features"]).to_dict()
        fit_target_scaler(plan.scaler, state, labelled, fit_index)
    scaler = Scaler(**state["scaler"])
    y = encode_labels(labelled.labels, state, source, labelled.ids)
    if test_entry is None:
        test = _split(entry, y, scaler, test_index)
    else:
        test_labelled = _labelled(test_entry, str(test_source))
        test_y = encode_labels(test_labelled.labels, state, test_labelled.source, test_entry.ids)
        test = _split(test_entry, test_y, scaler, torch.arange(len(test_y)))
    train, val = _split(entry, y, scaler, fit_index), _split(entry, y, scaler, val_index)
    return labelled_data(plan, state, (train, val, test), entry.feature_count)


@dataclass
class _Labels:
    ids: list[str]
    labels: list[str]
    source: str


def _labelled(entry: Entry, source: str) -> _Labels:
    if entry.labels is None:
        raise DataError(f"{source}: no label column")
    return _Labels(entry.ids, entry.labels, source)


def _split(entry: Entry, y: Tensor, scaler: Scaler, index: Tensor) -> StreamedSplit:
    lengths = torch.from_numpy(entry.lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    index = index.sort().values  # file order: neighbouring sequences are read together
    return StreamedSplit(
        entry.steps_path, entry.feature_count, starts[index], lengths[index], y[index], scaler
    )


def _moments(entry: Entry, index: Tensor) -> Moments:
    """Statistics of the steps of the sequences at `index`, reading the file a stretch of
    sequences (about CHUNK_ROWS rows) at a time."""
    lengths = entry.lengths
    chosen = np.zeros(len(lengths), dtype=bool)
    chosen[index.numpy()] = True
    ends = np.cumsum(lengths)
    row_bytes = entry.feature_count * STEP_TYPE.itemsize

    def chunks() -> Iterator[Tensor]:
        first_sequence, first_row = 0, 0
        with entry.steps_path.open("rb") as stream:
            while first_sequence < len(lengths):
                last = max(int(np.searchsorted(ends, first_row + CHUNK_ROWS)), first_sequence + 1)
                last = min(last, len(lengths))
                rows = int(ends[last - 1]) - first_row
                stream.seek(first_row * row_bytes)
                chunk = np.fromfile(stream, STEP_TYPE, rows * entry.feature_count)
                keep = np.repeat(chosen[first_sequence:last], lengths[first_sequence:last])
                yield torch.from_numpy(chunk.reshape(rows, entry.feature_count)[keep])
                first_sequence, first_row = last, int(ends[last - 1])

    return Moments.of_chunks(chunks())
