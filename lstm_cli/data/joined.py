"""Several splits read as one: `trainer.refit` trains on the training and validation data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lstm_cli.data.splits import Batch, Split


@dataclass
class JoinedSplit:
    """Splits read as one (`trainer.refit` trains on the training and validation data):
    index i below the first part's length is the first part's, the next ones the next's.
    A batch drawing on several parts is padded to its longest sequence."""

    parts: list[Split]

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def take(self, index: Tensor) -> Batch:
        batches, offset = [], 0
        for part in self.parts:
            mine = index[(index >= offset) & (index < offset + len(part))] - offset
            if len(mine):
                batches.append(part.take(mine))
            offset += len(part)
        steps = max(batch.x.shape[1] for batch in batches)
        padded = [_pad_steps(batch.x, steps) for batch in batches]
        y = torch.cat([batch.y for batch in batches])
        return Batch(torch.cat(padded), torch.cat([b.lengths for b in batches]), y)

    def sequence_lengths(self) -> Tensor:
        return torch.cat([part.sequence_lengths() for part in self.parts])

    def nbytes(self) -> int:
        return sum(part.nbytes() for part in self.parts)

    def to(self, device: torch.device) -> JoinedSplit:
        return JoinedSplit([part.to(device) for part in self.parts])


def _pad_steps(x: Tensor, steps: int) -> Tensor:
    """`x` ([B, T, F] or [B, T]) padded with zeros to `steps` steps."""
    missing = steps - x.shape[1]
    if not missing:
        return x
    return torch.cat([x, x.new_zeros(x.shape[0], missing, *x.shape[2:])], dim=1)
