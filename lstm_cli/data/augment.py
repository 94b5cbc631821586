"""Random changes to the training batches of sequence classification.

A small set (ArrowHead trains on 29 sequences) is learnt by heart long before its
validation loss says so; a slightly different copy of each sequence at every step keeps
the network learning the shape instead. `scale` multiplies each sequence's channels by
1 + scale x N(0, 1) (a class is seldom its amplitude); `crop` keeps a random stretch of that
fraction of each sequence's length (a class is seldom where it starts). Regression targets
may depend on both, and forecast windows on their alignment, so only classification is
augmented. The draws come from torch's generators, whose states checkpoints keep: a
resumed run draws the same.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lstm_cli.config.schema import AugmentConfig
from lstm_cli.data.splits import Batch, PreparedData, padded_positions

Augmenter = Callable[[Batch], Batch]


def applies(config: AugmentConfig, data: PreparedData) -> bool:
    """Whether `config` changes anything in `data`'s training batches."""
    return data.task == "classification" and not data.token_input and config.active()


def augmenter(config: AugmentConfig, data: PreparedData) -> Augmenter:
    """What becomes of each training batch of `data` (itself, when nothing applies)."""
    if not applies(config, data):
        return lambda batch: batch
    return lambda batch: augment(batch, config.scale, config.crop)


def augment(batch: Batch, scale: float, crop: float) -> Batch:
    """`batch` with each sequence cropped to `crop` of its length at a random start, then
    each channel scaled by its own random factor."""
    x, lengths = batch.x, batch.lengths
    if crop < 1.0:
        x, lengths = _crop(x, lengths, crop)
    if scale > 0.0:
        noise = torch.randn(x.shape[0], 1, x.shape[2], device=x.device, dtype=x.dtype)
        x = x * (1.0 + scale * noise)
    return Batch(x, lengths, batch.y)


def _crop(x: Tensor, lengths: Tensor, fraction: float) -> tuple[Tensor, Tensor]:
    kept = (lengths * fraction).long().clamp(min=1)
    starts = (torch.rand(len(lengths)) * (lengths - kept + 1)).long()
    positions, real = padded_positions(starts, kept)
    rows = positions.to(x.device).unsqueeze(2).expand(-1, -1, x.shape[2])
    return x.gather(1, rows) * real.to(x.device).unsqueeze(2), kept
