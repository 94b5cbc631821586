"""Training on several processes with torchrun and DistributedDataParallel.

`torchrun --nproc-per-node=N -m lstm_cli train ...` starts N copies; torchrun tells each
its RANK and WORLD_SIZE. All ranks share one run directory (rank 0 picks its name and
broadcasts it) and one process group (gloo for CPU tensors, NCCL for CUDA ones). Each
rank trains on its share of every global batch; DDP averages the gradients, so the
update equals that of one process on the whole batch. Rank 0 alone writes checkpoints,
metrics and results; every rank logs to its own file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def current_world() -> World:
    """This process's place among torchrun's workers (a single process: rank 0 of 1)."""
    return World(
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


@cache
def join_process_group() -> World:
    """Join the process group once per process; gloo serves CPU tensors, NCCL CUDA ones."""
    world = current_world()
    if world.active and not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return world


def leave_process_group() -> None:
    """Tear the group down before the process exits; a rank that exits with the group still
    up can abort in gloo's threads ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def agree_on(value: str) -> str:
    """Rank 0's `value`, on every rank (the run directory's name)."""
    if not join_process_group().active:
        return value
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def sum_across_ranks(tensor: Tensor) -> Tensor:
    """All ranks' `tensor` added together (in place), for metric sums."""
    if current_world().active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is true on any: all ranks stop at the same step."""
    if not current_world().active:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def my_share(index: Tensor, world: World) -> Tensor:
    """This rank's part of a global batch (every size-th sample from its rank)."""
    return index[world.rank :: world.size] if world.active else index


def gather_rows(tensor: Tensor, world: World, dim: int) -> Tensor:
    """Every rank's share of rows (`my_share`: rank r holds rows r, r + size, ...) along
    `dim`, put back in their global order; shares may differ by a row. One process: itself."""
    if not world.active:
        return tensor
    count = torch.tensor([tensor.shape[dim]], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(world.size)]
    dist.all_gather(counts, count)
    sizes = [int(c) for c in counts]
    shape = list(tensor.shape)
    shape[dim] = max(sizes)  # all_gather wants equal shapes: pad every share to the largest
    padded = tensor.new_zeros(shape)
    padded.narrow(dim, 0, sizes[world.rank]).copy_(tensor)
    shares = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(shares, padded)
    shape[dim] = sum(sizes)
    whole = tensor.new_empty(shape)
    for rank, (share, size) in enumerate(zip(shares, sizes, strict=True)):
        rows = torch.arange(rank, sum(sizes), world.size, device=tensor.device)
        whole.index_copy_(dim, rows, share.narrow(dim, 0, size))
    return whole


def my_rows(tensor: Tensor, world: World, dim: int) -> Tensor:
    """This rank's share of rows along `dim` (the inverse of `gather_rows`)."""
    if not world.active:
        return tensor
    rows = torch.arange(world.rank, tensor.shape[dim], world.size, device=tensor.device)
    return tensor.index_select(dim, rows)


def wrap_for_ranks(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """The model that training steps call: under torchrun wrapped in DDP, which averages the
    gradients across ranks during backward; the plain model otherwise.

    On CUDA the convolutional block's batch norms become SyncBatchNorm (in place), so they
    see the whole batch as one process would; torch has no CPU version, so CPU ranks
    normalise by their own share of each batch.
    """
    if not world.active:
        return model
    if device.type != "cuda":
        return nn.parallel.DistributedDataParallel(model)
    nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
