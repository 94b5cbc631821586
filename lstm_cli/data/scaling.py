"""Per-column scalers fitted on the training part only, stored as plain numbers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from lstm_cli.common.errors import DataError


@dataclass
class Scaler:
    """x -> (x - offset) / scale per column; `kind` is standard, minmax or none."""

    kind: str
    offset: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, kind: str, values: Tensor, names: list[str] | None = None) -> Scaler:
        """Fit on `values` [N, C]; a constant column keeps scale 1 instead of dividing by 0.
        A column whose statistics overflow (values near 1e308) is a DataError naming it."""
        columns = values.shape[-1]
        flat = values.reshape(-1, columns).double()
        if kind == "standard":
            offset, scale = flat.mean(0), flat.std(0, correction=0)
        elif kind == "minmax":
            offset, scale = flat.min(0).values, flat.max(0).values - flat.min(0).values
        else:
            offset, scale = torch.zeros(columns), torch.ones(columns)
        return cls.checked(kind, offset, scale, names)

    @classmethod
    def fit_rows(
        cls, kind: str, values: Tensor, keep: Tensor, names: list[str], rows: int = 1 << 18
    ) -> Scaler:
        """`fit` on `values[keep]` (a mask of rows). Above `rows` kept rows, their moments
        are merged a stretch at a time instead, so that they are never copied whole beside
        the values (the training part of a 1.6 GB CSV: 0.8 GB less at the peak)."""
        if int(keep.sum()) <= rows:
            return cls.fit(kind, values[keep], names)
        starts = range(0, len(values), rows)
        chunks = (values[first : first + rows][keep[first : first + rows]] for first in starts)
        return cls.of_moments(kind, Moments.of_chunks(chunks), names)

    @classmethod
    def of_moments(cls, kind: str, moments: Moments, names: list[str] | None = None) -> Scaler:
        """The scaler `fit` would give on the values `moments` summarise."""
        if kind == "standard":
            return cls.checked(kind, moments.mean, moments.variance.sqrt(), names)
        if kind == "minmax":
            return cls.checked(kind, moments.low, moments.high - moments.low, names)
        columns = len(moments.mean)
        return cls.checked(kind, torch.zeros(columns), torch.ones(columns), names)

    @classmethod
    def checked(cls, kind: str, offset: Tensor, scale: Tensor, names: list[str] | None) -> Scaler:
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        overflowing = ~(torch.isfinite(offset) & torch.isfinite(scale))
        if overflowing.any():
            column = int(overflowing.nonzero()[0])
            name = names[column] if names else f"number {column + 1}"
            raise DataError(
                f"column {name!r}: values too large to scale (its {kind} statistics overflow);"
                " divide the column by a constant first"
            )
        return cls(kind, offset.tolist(), scale.tolist())

    def transform(self, values: Tensor) -> Tensor:
        shifted = values - self._tensor(self.offset, values)
        return shifted.div_(self._tensor(self.scale, values))  # in place: one copy, not two

    def rows_to_float32(self, values: Tensor, rows: Tensor, chunk: int = 1 << 18) -> Tensor:
        """`transform` of `values[rows]` in the values' own precision, `chunk` rows at a time,
        into a float32 result: neither the gathered rows nor a scaled copy of a large float64
        table ever exists whole (the scale benchmark's cached 10x run: 0.5 GB less at the
        peak), and each value is the one `transform` gives."""
        shape = (len(rows), *values.shape[1:])
        scaled = torch.empty(shape, dtype=torch.float32, device=values.device)
        for first in range(0, len(rows), chunk):
            part = slice(first, first + chunk)
            scaled[part] = self.transform(values[rows[part]])
        return scaled

    def inverse(self, values: Tensor) -> Tensor:
        return values * self._tensor(self.scale, values) + self._tensor(self.offset, values)

    def select(self, columns: list[int]) -> Scaler:
        """The scaler of a subset of columns (the targets among the inputs)."""
        return Scaler(
            self.kind, [self.offset[i] for i in columns], [self.scale[i] for i in columns]
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def _tensor(numbers: list[float], like: Tensor) -> Tensor:
        return torch.tensor(numbers, dtype=like.dtype, device=like.device)


@dataclass
class Moments:
    """Per-column count, mean, spread, minimum and maximum of values seen a chunk at a
    time (data that never sits in memory whole); chunks merge as Chan et al. do, which
    keeps the variance exact where summing squares would cancel."""

    count: int
    mean: Tensor
    squares: Tensor  # sum of squared deviations from the mean
    low: Tensor
    high: Tensor

    @classmethod
    def of(cls, values: Tensor) -> Moments:
        values = values.double()
        mean = values.mean(0)
        return cls(
            len(values),
            mean,
            ((values - mean) ** 2).sum(0),
            values.min(0).values,
            values.max(0).values,
        )

    @classmethod
    def of_chunks(cls, chunks: Iterable[Tensor]) -> Moments:
        """The moments of the rows of all `chunks` together, merged a chunk at a time."""
        total: Moments | None = None
        for chunk in chunks:
            if len(chunk):
                moments = cls.of(chunk)
                total = moments if total is None else total.merged(moments)
        if total is None:
            raise DataError("no training steps to fit the feature scaler on")
        return total

    def merged(self, other: Moments) -> Moments:
        count = self.count + other.count
        delta = other.mean - self.mean
        return Moments(
            count,
            self.mean + delta * other.count / count,
            self.squares + other.squares + delta**2 * self.count * other.count / count,
            torch.minimum(self.low, other.low),
            torch.maximum(self.high, other.high),
        )

    @property
    def variance(self) -> Tensor:
        return self.squares / max(self.count, 1)
