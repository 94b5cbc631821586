"""Labelled sequences as read from a file, before any split or scaling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor


@dataclass
class RawSequences:
    """Sequences as read, end to end: steps [S, F] (each sequence's rows together, in
    order), lengths [N], ids, raw labels, and the file they came from. `targets` [N, k]:
    several numbers per sequence (npz regression), which one label column cannot hold."""

    steps: Tensor
    lengths: Tensor
    ids: list[str]
    labels: list[str] | None
    source: str
    targets: Tensor | None = None

    @property
    def feature_count(self) -> int:
        return self.steps.shape[1]


class Labelled(Protocol):
    """Sequences known by id and label, wherever their steps are (memory or disk)."""

    ids: list[str]
    labels: list[str] | None
    source: str
