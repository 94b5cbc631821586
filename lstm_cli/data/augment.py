"""Random changes to the training batches of sequence classification.

A small set (ArrowHead trains on 30 sequences) is learnt by heart long before its
validation loss says so; a slightly different copy of each sequence at every step keeps
the network learning the shape instead. `mixup` blends each sequence with another of its
batch, and their targets alike, by a weight drawn from Beta(mixup, mixup) (Zhang et al.,
2018): the network learns that between two classes lies something in between, not a
cliff drawn through 30 points. `scale` multiplies each sequence's channels by
1 + scale x N(0, 1) (a class is seldom its amplitude); `crop` keeps a random stretch of that
fraction of each sequence's length (a class is seldom where it starts); `warp` replays each
sequence at a speed that changes along it (an arrowhead is the same drawn a little faster
here, slower there, as Le Guennec et al., 2016 warp a window). Each helps where its premise
holds and hurts where it does not (the README's What the defaults reach). Regression targets
may depend on amplitude and position, and forecast windows on their alignment, so only
classification is augmented. The draws come from torch's generators, whose states
checkpoints keep: a resumed run draws the same.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

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

    def changed(batch: Batch) -> Batch:
        batch = augment(batch, config.scale, config.crop)
        if config.warp > 0.0:
            batch = warp(batch, config.warp)
        if config.mixup > 0.0:
            batch = mix(batch, config.mixup, data.output_size)
        return batch

    return changed


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


def mix(batch: Batch, alpha: float, classes: int) -> Batch:
    """Sequence i becomes w_i x (sequence i) + (1 - w_i) x (sequence p(i)), w_i ~ Beta(alpha,
    alpha) and p a random permutation of the batch; its target, class ids of `classes`, the
    same blend of one-hot rows. A blend of two lengths lasts the longer (the shorter's
    padding is zeros)."""
    x, lengths, y = batch.x, batch.lengths, batch.y
    count = len(lengths)
    weights = torch.distributions.Beta(alpha, alpha).sample((count,))
    partner = torch.randperm(count)
    on_x = weights.to(x.device, x.dtype).view(count, 1, 1)
    mixed = on_x * x + (1.0 - on_x) * x[partner.to(x.device)]
    probabilities = F.one_hot(y, classes).float()
    on_y = weights.to(y.device).view(count, 1)
    targets = on_y * probabilities + (1.0 - on_y) * probabilities[partner.to(y.device)]
    return Batch(mixed, torch.maximum(lengths, lengths[partner]), targets)


WARP_STRETCHES = 4  # stretches of time that each get their own speed


def warp(batch: Batch, strength: float) -> Batch:
    """Each sequence replayed at a speed that changes along it: its time cut into
    WARP_STRETCHES equal stretches, each read exp(strength x N(0, 1)) times as fast, then
    resampled linearly to its own length. Its first and last steps stay put and its shape
    keeps its order; the timing of its features moves."""
    x, lengths = batch.x, batch.lengths
    source = _warped_steps(lengths, x.shape[1], strength)
    before = source.floor().long()
    after = (before + 1).minimum((lengths - 1).clamp(min=0).unsqueeze(1))
    share = (source - before).to(x.device, x.dtype).unsqueeze(2)
    warped = _rows(x, before) * (1.0 - share) + _rows(x, after) * share
    real = torch.arange(x.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    return Batch(warped * real.to(x.device, x.dtype).unsqueeze(2), lengths, batch.y)


def _warped_steps(lengths: Tensor, steps: int, strength: float) -> Tensor:
    """[B, steps]: the fractional step of its sequence that each step of a warped one reads
    (the last real step, past the sequence's end)."""
    count = len(lengths)
    speeds = torch.exp(strength * torch.randn(count, WARP_STRETCHES))
    bounds = torch.cat([torch.zeros(count, 1), torch.cumsum(speeds, dim=1)], dim=1)
    bounds = bounds / bounds[:, -1:]  # where each stretch starts, as a fraction of the length
    last = (lengths - 1).clamp(min=1).float().unsqueeze(1)
    along = (torch.arange(steps).unsqueeze(0) / last).clamp(max=1.0) * WARP_STRETCHES
    stretch = along.floor().long().clamp(max=WARP_STRETCHES - 1)
    start, end = bounds.gather(1, stretch), bounds.gather(1, stretch + 1)
    return (start + (along - stretch) * (end - start)) * last


def _rows(x: Tensor, steps: Tensor) -> Tensor:
    """x[i, steps[i, t]] for every sequence i and step t."""
    return x.gather(1, steps.to(x.device).unsqueeze(2).expand(-1, -1, x.shape[2]))


def _crop(x: Tensor, lengths: Tensor, fraction: float) -> tuple[Tensor, Tensor]:
    kept = (lengths * fraction).long().clamp(min=1)
    starts = (torch.rand(len(lengths)) * (lengths - kept + 1)).long()
    positions, real = padded_positions(starts, kept)
    return _rows(x, positions) * real.to(x.device).unsqueeze(2), kept
