"""Padded batches: the order in which a split is cut into batches (shuffled, optionally
length-bucketed, kept within neighbouring shards for a streamed split), the mask of their
real steps, and reading the next batch ahead while the current one trains."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from lstm_cli.common.distributed import World, my_share
from lstm_cli.data.splits import Batch, Split, StreamSplit
from lstm_cli.data.streamed import StreamedSplit

BUCKET_POOL_BATCHES = 50
# A streamed epoch visits its shards in random order, this many at a time, shuffling the
# sequences of those shards together: reads stay within a few neighbouring stretches of
# the file while every batch still mixes sequences from far apart.
SHARD_WINDOW = 8


def batch_order(
    lengths: Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    bucket: bool,
    generator: torch.Generator | None = None,
    shard: int | None = None,
) -> list[Tensor]:
    """Index tensors, one per batch, covering every sample exactly once.

    With `bucket`, samples are shuffled, then sorted by length within pools of
    BUCKET_POOL_BATCHES batches, so each batch holds similar lengths (less padding) while
    the batches themselves still come in random order. With `shard` (and `shuffle`), the
    samples are cut into shards of that many consecutive ones, and the above is done for
    each window of SHARD_WINDOW shards, the windows in random order.
    """
    count = len(lengths)
    if not (shard and shuffle):
        return _batches(lengths, batch_size, shuffle, bucket, generator)
    shards = torch.randperm(-(-count // shard), generator=generator).tolist()
    order = []
    for first in range(0, len(shards), SHARD_WINDOW):
        window = torch.cat(
            [
                torch.arange(s * shard, min((s + 1) * shard, count))
                for s in shards[first : first + SHARD_WINDOW]
            ]
        )
        order += [window[b] for b in _batches(lengths[window], batch_size, True, bucket, generator)]
    return order


def epoch_order(
    split: Split,
    batch_size: int,
    bucket: bool,
    generator: torch.Generator,
    world: World | None = None,
) -> list[Tensor]:
    """One training epoch's batches of `split` (shard by shard when it is streamed).

    Under torchrun every rank draws the same global batches from the same generator and
    keeps its share of each; a batch smaller than the world is dropped, since every rank
    must step on every batch. Parallel text streams come in their order, unshuffled.
    """
    if isinstance(split, StreamSplit):
        order = split.order()
    else:
        shard = split.shard if isinstance(split, StreamedSplit) else None
        lengths = split.sequence_lengths()
        order = batch_order(
            lengths, batch_size, shuffle=True, bucket=bucket, generator=generator, shard=shard
        )
    world = world or World()
    return [my_share(batch, world) for batch in order if len(batch) >= world.size]


def _batches(
    lengths: Tensor,
    batch_size: int,
    shuffle: bool,
    bucket: bool,
    generator: torch.Generator | None,
) -> list[Tensor]:
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


def read_ahead(split: Split, order: list[Tensor], start: int = 0) -> Iterator[tuple[int, Batch]]:
    """(position, batch) for the batches of `order` from `start`. A streamed split reads
    the next batch in a background thread while the caller trains on this one (its reads
    release the GIL); taking a batch held in memory is an index, done in place."""
    if not isinstance(split, StreamedSplit):
        for position in range(start, len(order)):
            yield position, split.take(order[position])
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader:
        pending = reader.submit(split.take, order[start]) if start < len(order) else None
        for position in range(start, len(order)):
            batch = pending.result()
            if position + 1 < len(order):
                pending = reader.submit(split.take, order[position + 1])
            yield position, batch


def padding_mask(lengths: Tensor, steps: int, device: torch.device) -> Tensor:
    """[B, T] True on real steps, False on padding.

    The lengths live on the CPU; their copy is non-blocking, since a blocking host-to-GPU
    copy waits for every queued kernel.
    """
    return torch.arange(steps, device=device) < lengths.to(device, non_blocking=True).unsqueeze(1)
