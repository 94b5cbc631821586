"""In-memory splits that hand out whole batches by index, never one sample at a time.

A split is a padded tensor of sequences (`SequenceSplit`), sequences of any length end to
end, padded per batch (`RaggedSplit`), or one long series (`WindowSplit`) or many
(`PanelWindowSplit`) cut into windows on demand: no window is copied until it is batched.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import Tensor

from lstm_cli.config.tasks import Task
from lstm_cli.data.timeindex import TimeIndex

Take = Callable[[Tensor, Tensor], Tensor] | None  # (steps, rows) -> those rows, copied
STRETCH_ROWS = 1 << 18  # rows a ragged split copies at a time (see `RaggedSplit.of`)


@dataclass
class Batch:
    """One batch: inputs, true lengths of each sequence, targets.

    `x` is [B, T, F] floats or [B, T] token ids; `lengths` is [B] on the CPU (packing
    needs it there); `y` is [B] class ids, [B, O] regression targets or [B, T] token ids.
    """

    x: Tensor
    lengths: Tensor
    y: Tensor

    def to(self, device: torch.device) -> Batch:
        """Move to `device` (to a GPU through pinned memory: the copy overlaps the last step)."""
        return Batch(_to(self.x, device), self.lengths, _to(self.y, device))


def _to(tensor: Tensor, device: torch.device) -> Tensor:
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


class Split(Protocol):
    """What the training loop needs of a split."""

    def __len__(self) -> int: ...

    def take(self, index: Tensor) -> Batch: ...

    def sequence_lengths(self) -> Tensor: ...

    def nbytes(self) -> int: ...

    def to(self, device: torch.device) -> Split:
        """The same split with its data on `device` (lengths and indices stay on the CPU)."""
        ...


@dataclass
class SequenceSplit:
    """Sequences padded to a common length, with their true lengths."""

    x: Tensor
    lengths: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, index: Tensor) -> Batch:
        lengths = self.lengths[index]
        longest = int(lengths.max()) if len(index) else 0
        return Batch(self.x[index, :longest], lengths, self.y[index])

    def sequence_lengths(self) -> Tensor:
        return self.lengths

    def nbytes(self) -> int:
        return _nbytes(self.x, self.y)

    def to(self, device: torch.device) -> SequenceSplit:
        return replace(self, x=self.x.to(device), y=self.y.to(device))


@dataclass
class RaggedSplit:
    """Sequences of any length end to end: steps [S, F], each one's first step and length. A
    batch is padded to its own longest when taken: memory follows the number of steps."""

    steps: Tensor
    starts: Tensor
    lengths: Tensor
    y: Tensor

    @classmethod
    def of(
        cls, steps: Tensor, lengths: Tensor, y: Tensor, index: Tensor, take: Take = None
    ) -> RaggedSplit:
        """The sequences at `index`, their steps copied end to end (each split holds its own)
        as `steps[rows]`, or as `take(steps, rows)`, which may scale them as it copies; a
        stretch of sequences at a time, so that the row numbers of a large split never
        exist whole (the scale benchmark's 10x: 0.3 GB less at the peak)."""
        copy = take or (lambda values, rows: values[rows])
        chosen = lengths[index]
        starts = (torch.cumsum(lengths, 0) - lengths)[index]
        placed = torch.cumsum(chosen, 0) - chosen  # where each sequence starts in the split
        empty = copy(steps, torch.zeros(0, dtype=torch.long))
        taken = empty.new_empty((int(chosen.sum()), *empty.shape[1:]))
        stretches = torch.searchsorted(placed, torch.arange(0, len(taken), STRETCH_ROWS))
        bounds = [*stretches.tolist(), len(index)]
        for first, end in itertools.pairwise(bounds):
            if end > first:  # a sequence longer than a stretch repeats a bound
                piece = copy(steps, ragged_rows(starts[first:end], chosen[first:end]))
                taken[int(placed[first]) : int(placed[first]) + len(piece)] = piece
        return cls(taken, placed, chosen, y[index])

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, index: Tensor) -> Batch:
        lengths = self.lengths[index]
        positions, real = padded_positions(self.starts[index], lengths)
        device = self.steps.device
        x = self.steps[positions.to(device, non_blocking=True)]
        x.masked_fill_(~real.to(device, non_blocking=True).unsqueeze(2), 0.0)
        return Batch(x, lengths, self.y[index])

    def sequence_lengths(self) -> Tensor:
        return self.lengths

    def nbytes(self) -> int:
        return _nbytes(self.steps, self.y)

    def to(self, device: torch.device) -> RaggedSplit:
        return replace(self, steps=self.steps.to(device), y=self.y.to(device))


def padded_positions(starts: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """For sequences at (starts, lengths): the [B, T] row of each step of a batch padded to
    its longest (padding points at the sequence's first row), and the mask of real steps."""
    steps = torch.arange(int(lengths.max()) if len(lengths) else 0)
    real = steps < lengths.unsqueeze(1)
    return torch.where(real, starts.unsqueeze(1) + steps, starts.unsqueeze(1)), real


def ragged_rows(starts: Tensor, lengths: Tensor) -> Tensor:
    """The row numbers of the sequences (starts[i], lengths[i]), laid end to end."""
    moved_to = torch.cumsum(lengths, 0) - lengths
    return torch.repeat_interleave(starts - moved_to, lengths) + torch.arange(int(lengths.sum()))


@dataclass
class WindowSplit:
    """Windows of a long series, made by index arithmetic when a batch is taken.

    Window i reads inputs[starts[i] : starts[i] + window] and targets [starts[i] +
    target_offset : ... + target_length], flattened to one vector per sample (forecasting)
    or one target per step (language modelling).
    """

    inputs: Tensor
    targets: Tensor
    starts: Tensor
    window: int
    target_offset: int
    target_length: int
    flatten_targets: bool
    _steps: Tensor = field(init=False, repr=False)
    _target_steps: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._steps = torch.arange(self.window)
        self._target_steps = torch.arange(self.target_length) + self.target_offset

    def __len__(self) -> int:
        return len(self.starts)

    def take(self, index: Tensor) -> Batch:
        starts = self.starts[index].unsqueeze(1)
        x = self.inputs[starts + self._steps]
        y = self.targets[starts + self._target_steps]
        if self.flatten_targets:
            y = y.reshape(len(index), -1)
        lengths = torch.full((len(index),), self.window, dtype=torch.long)
        return Batch(x, lengths, y)

    def sequence_lengths(self) -> Tensor:
        return torch.full((len(self.starts),), self.window, dtype=torch.long)

    def first_targets(self, index: Tensor) -> Tensor:
        """The step of the series where each sample's targets begin."""
        return self.starts[index] + self.target_offset

    def series_firsts(self, index: Tensor) -> Tensor:
        """The first step of each sample's series: one series, so 0."""
        return torch.zeros(len(index), dtype=torch.long)

    def nbytes(self) -> int:
        return _nbytes(self.inputs, self.targets)

    def to(self, device: torch.device) -> WindowSplit:
        return replace(self, inputs=self.inputs.to(device), targets=self.targets.to(device))


@dataclass
class StreamSplit:
    """Consecutive windows of one long series read as `streams` parallel streams
    (`trainer.tbptt`): the series is cut into that many stretches, and row i of batch n+1
    continues row i of batch n, so the LSTM state can be carried from one to the next.

    Every window is read once; the last stream may be the shortest, so late batches can
    lack their last rows, never a row in between (a carried state is cut to the rows left).
    """

    windows: WindowSplit
    streams: int

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def targets(self) -> Tensor:
        return self.windows.targets

    def order(self) -> list[Tensor]:
        """The batches of one pass, in stream order (never shuffled: the state carries)."""
        count = len(self.windows)
        per_stream = -(-count // self.streams)
        rows = torch.arange(self.streams) * per_stream
        return [(rows + n)[rows + n < count] for n in range(per_stream)]

    def take(self, index: Tensor) -> Batch:
        return self.windows.take(index)

    def sequence_lengths(self) -> Tensor:
        return self.windows.sequence_lengths()

    def nbytes(self) -> int:
        return self.windows.nbytes()

    def to(self, device: torch.device) -> StreamSplit:
        return replace(self, windows=self.windows.to(device))


@dataclass
class PanelWindowSplit:
    """Forecasting windows of many series laid end to end in one tensor (`id_column`).

    Window i reads inputs[starts[i] : starts[i] + lengths[i]] (its own series only) and
    predicts the `target_length` steps after them; batches are padded to their longest
    window, with each window's length.
    """

    inputs: Tensor
    targets: Tensor
    starts: Tensor
    lengths: Tensor
    series_first: Tensor  # the first step of each window's series
    target_length: int

    def __len__(self) -> int:
        return len(self.starts)

    def take(self, index: Tensor) -> Batch:
        starts, lengths = self.starts[index], self.lengths[index]
        positions, real = padded_positions(starts, lengths)
        x = self.inputs[positions] * real.unsqueeze(2)
        first_target = (starts + lengths).unsqueeze(1)
        y = self.targets[first_target + torch.arange(self.target_length)]
        return Batch(x, lengths, y.reshape(len(index), -1))

    def first_targets(self, index: Tensor) -> Tensor:
        return self.starts[index] + self.lengths[index]

    def series_firsts(self, index: Tensor) -> Tensor:
        return self.series_first[index]

    def sequence_lengths(self) -> Tensor:
        return self.lengths

    def nbytes(self) -> int:
        return _nbytes(self.inputs, self.targets)

    def to(self, device: torch.device) -> PanelWindowSplit:
        return replace(self, inputs=self.inputs.to(device), targets=self.targets.to(device))


def _nbytes(*tensors: Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class PreparedData:
    """Everything the model and loop need to know about a dataset, split three ways.

    `preprocessing` is plain data (lists, numbers, strings) stored in checkpoints so that
    evaluate and predict rebuild the same scalers, vocabularies and class names.
    `to_original` maps regression outputs and targets back to the data's own units.
    `relative_inputs` are the input columns the network should difference (`diff`);
    `anchor_season` > 1 makes the network forecast changes from last season's values plus
    the last seasonal change (`seasonal_diff`) instead of from the last value.
    `stamps`: a single series' time index, which pictures spell as its time column does.
    """

    task: Task
    train: Split
    val: Split
    test: Split
    input_size: int
    output_size: int
    token_input: bool
    preprocessing: dict[str, Any]
    to_original: Callable[[Tensor], Tensor] | None = None
    relative_inputs: list[int] = field(default_factory=list)
    anchor_season: int = 1
    stamps: TimeIndex | None = None
