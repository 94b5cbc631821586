"""Padded batches: the order in which a split is cut into batches (shuffled, optionally
length-bucketed) and the mask of their real steps."""

from __future__ import annotations

import torch
from torch import Tensor

BUCKET_POOL_BATCHES = 50


def batch_order(
    lengths: Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    bucket: bool,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Index tensors, one per batch, covering every sample exactly once.

    With `bucket`, samples are shuffled, then sorted by length within pools of
    BUCKET_POOL_BATCHES batches, so each batch holds similar lengths (less padding) while
    the batches themselves still come in random order.
    """
    count = len(lengths)
    order = torch.randperm(count, generator=generator) if shuffle else torch.arange(count)
    if bucket:
        pool = batch_size * BUCKET_POOL_BATCHES
        pools = [order[i : i + pool] for i in range(0, count, pool)]
        order = torch.cat(
            [p[torch.argsort(lengths[p], descending=True, stable=True)] for p in pools]
        )
    batches = list(torch.split(order, batch_size))
    if bucket and shuffle:
        shuffled = torch.randperm(len(batches), generator=generator)
        batches = [batches[i] for i in shuffled]
    return batches


def padding_mask(lengths: Tensor, steps: int, device: torch.device) -> Tensor:
    """[B, T] True on real steps, False on padding.

    The lengths live on the CPU; their copy is non-blocking, since a blocking host-to-GPU
    copy waits for every queued kernel.
    """
    return torch.arange(steps, device=device) < lengths.to(device, non_blocking=True).unsqueeze(1)
