"""One training epoch and one evaluation pass: the textbook step, done on whole batches.

Per batch: forward, loss, backward through time, clip (recording the pre-clip gradient
norm), optimizer step. Running sums stay on the device and are read once per epoch, so
the step never waits for the host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lstm_cli.data.batching import batch_order
from lstm_cli.data.splits import PreparedData, Split
from lstm_cli.losses import LossFn
from lstm_cli.metrics import MetricAccumulator
from lstm_cli.optim import clip_gradients


@dataclass
class EpochStats:
    loss: float
    grad_norm: float
    clip_rate: float
    seconds: float
    sequences_per_second: float
    steps: int


def train_epoch(
    model: nn.Module,
    split: Split,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    clip: Any,
    batch_size: int,
    bucket: bool,
    generator: torch.Generator,
    device: torch.device,
    advance: Callable[[Tensor, int], None],
) -> EpochStats:
    """One pass over `split` in a freshly shuffled order."""
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    order = batch_order(
        split.sequence_lengths(), batch_size, shuffle=True, bucket=bucket, generator=generator
    )
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    started = time.perf_counter()
    for index in order:
        batch = split.take(index).to(device)
        optimizer.zero_grad(set_to_none=True)
        outputs = model(batch.x, batch.lengths)
        loss = loss_fn(outputs, batch.y, batch.lengths)
        loss.backward()
        grad_norm, clipped = clip_gradients(clip, parameters)
        optimizer.step()
        sums += torch.stack([loss.detach() * len(index), grad_norm, clipped]).double()
        advance(loss, len(index))
    seconds = time.perf_counter() - started
    loss_sum, norm_sum, clip_count = sums.tolist()
    steps = max(len(order), 1)
    return EpochStats(
        loss=loss_sum / max(len(split), 1),
        grad_norm=norm_sum / steps,
        clip_rate=clip_count / steps,
        seconds=seconds,
        sequences_per_second=len(split) / max(seconds, 1e-9),
        steps=len(order),
    )


@torch.inference_mode()
def evaluate_split(
    model: nn.Module,
    split: Split,
    data: PreparedData,
    loss_fn: LossFn,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Loss and the task's metrics over a whole split (in the data's own units)."""
    model.eval()
    accumulator = MetricAccumulator(data.task, data.output_size, device, data.to_original)
    for index in batch_order(split.sequence_lengths(), batch_size, shuffle=False, bucket=False):
        batch = split.take(index).to(device)
        outputs = model(batch.x, batch.lengths)
        accumulator.update(
            outputs, batch.y, batch.lengths, loss_fn(outputs, batch.y, batch.lengths)
        )
    return accumulator.compute()


@torch.inference_mode()
def predict_outputs(
    model: nn.Module, split: Split, batch_size: int, device: torch.device
) -> Tensor:
    """Raw model outputs for every sample of `split`, in order, on the CPU."""
    model.eval()
    outputs = []
    for index in batch_order(split.sequence_lengths(), batch_size, shuffle=False, bucket=False):
        batch = split.take(index).to(device)
        outputs.append(model(batch.x, batch.lengths).float().cpu())
    return torch.cat(outputs)
