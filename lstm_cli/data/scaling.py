"""Per-column scalers fitted on the training part only, stored as plain numbers."""

from __future__ import annotations

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
