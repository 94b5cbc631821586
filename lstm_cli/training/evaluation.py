"""Scoring a trained network: a split's loss and metrics, or its raw outputs, in order."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstm_cli.common.distributed import World, my_share
from lstm_cli.data.batching import batch_order, read_ahead
from lstm_cli.data.splits import PreparedData, Split, StreamSplit
from lstm_cli.model.network import CarriedState
from lstm_cli.training.losses import LossFn
from lstm_cli.training.metrics import MetricAccumulator


@torch.inference_mode()
def evaluate_split(
    model: nn.Module,
    split: Split,
    data: PreparedData,
    loss_fn: LossFn,
    batch_size: int,
    device: torch.device,
    world: World | None = None,
) -> dict[str, float]:
    """Loss and the task's metrics over a whole split (in the data's own units).

    Under torchrun each rank scores its share of every batch and the sums are added up.
    Parallel text streams (trainer.tbptt) are read with the state carried through them.
    """
    world = world or World()
    model.eval()
    accumulator = MetricAccumulator(data.task, data.output_size, device, data.to_original)
    carried = CarriedState() if isinstance(split, StreamSplit) else None
    order = (
        split.order()
        if carried is not None
        else batch_order(split.sequence_lengths(), batch_size, shuffle=False, bucket=False)
    )
    shares = [share for share in (my_share(whole, world) for whole in order) if len(share)]
    for _, taken in read_ahead(split, shares):
        batch = taken.to(device)
        outputs = model(batch.x, batch.lengths, carried)
        accumulator.update(
            outputs, batch.y, batch.lengths, loss_fn(outputs, batch.y, batch.lengths)
        )
    accumulator.reduce_across_ranks()
    return accumulator.compute()


@torch.inference_mode()
def predict_outputs(
    model: nn.Module, split: Split, batch_size: int, device: torch.device
) -> Tensor:
    """Raw model outputs for every sample of `split`, in order, on the CPU."""
    model.eval()
    outputs = []
    order = batch_order(split.sequence_lengths(), batch_size, shuffle=False, bucket=False)
    for _, taken in read_ahead(split, order):
        batch = taken.to(device)
        outputs.append(model(batch.x, batch.lengths).float().cpu())
    return torch.cat(outputs)
