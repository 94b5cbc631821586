"""How rough a set's sequences are: how far each step lies from the midpoint of its neighbours.

A time warp (`augment.warp`) resamples a sequence between its steps. Where each step lies
close to its neighbours' midpoint (an outline, a spectrum, a slow sensor), a resampled
copy keeps the shape, and the warp teaches the network that a shape drawn a little faster
here and slower there is the same shape. Where it does not (one-step spikes, hours that
jump from one to the next), resampling rubs out what tells the classes apart. The measure
is the mean squared distance from the midpoint over the sequence's variance: 0 for a
straight line or a slow curve, 1.5 for white noise. On the development panel: ArrowHead
0.00033, ItalyPower 0.047, BasicMotions 0.41, ACSF1 1.7 (medians over the training split's
sequences).
"""

from __future__ import annotations

import torch

from lstm_cli.data.splits import Split

SAMPLED = 256  # training sequences measured: the median settles long before (a cheap look)
SMOOTH_BELOW = 0.01  # a step within 1% of its sequence's variance of the midpoint: smooth


def roughness(split: Split) -> float:
    """The median, over the first SAMPLED sequences of `split` and their channels, of the mean
    squared distance of each step from its neighbours' midpoint over the sequence's
    variance (inf when no sequence of at least 3 steps varies)."""
    batch = split.take(torch.arange(min(len(split), SAMPLED)))
    x, lengths = batch.x.detach().to("cpu", torch.float64), batch.lengths.cpu()
    steps = torch.arange(x.shape[1]).unsqueeze(0)
    real = (steps < lengths.unsqueeze(1)).unsqueeze(2).to(x.dtype)  # [B, T, 1]
    count = lengths.clamp(min=1).to(x.dtype).view(-1, 1)
    mean = (x * real).sum(1) / count
    variance = ((x - mean.unsqueeze(1)) ** 2 * real).sum(1) / count  # [B, C]
    inner = real[:, 2:] * real[:, :-2]  # steps with a real neighbour on either side
    off_midpoint = x[:, 1:-1] - (x[:, :-2] + x[:, 2:]) / 2
    distance = (off_midpoint**2 * inner).sum(1) / inner.sum(1).clamp(min=1)
    measured = (variance > 1e-12) & (lengths >= 3).unsqueeze(1)
    if not measured.any():
        return float("inf")
    return (distance[measured] / variance[measured]).median().item()
