"""One training epoch and one evaluation pass: the textbook step, done on whole batches.

Per batch: forward, loss, backward through time, clip (recording the pre-clip gradient
norm), optimizer step. Running sums stay on the device and are read once per epoch. The
one host read per step is the finiteness check of the gradient norm, which must come
before the optimizer step it guards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lstm_cli.data.batching import batch_order
from lstm_cli.data.splits import PreparedData, Split
from lstm_cli.distributed import World, my_share, sum_across_ranks
from lstm_cli.losses import LossFn
from lstm_cli.metrics import MetricAccumulator
from lstm_cli.optim import clip_gradients


class NonFiniteGradient(Exception):
    """The loss or the gradient of a batch was NaN or infinite (with on_nonfinite=stop)."""


@dataclass
class EpochSums:
    """Running sums of one epoch, on the device; saved in mid-epoch checkpoints.

    Slots: loss x sequences, sequences, gradient norm, steps, clipped steps, skipped batches.
    """

    values: Tensor

    @classmethod
    def zeros(cls, device: torch.device) -> EpochSums:
        return cls(torch.zeros(6, dtype=torch.float64, device=device))

    def gather_on_main(self, world: World) -> None:
        """Under torchrun: rank 0 takes all ranks' loss and sequence sums, the others zero.

        Done before every checkpoint and at the epoch's end, so a checkpoint holds the
        whole run's sums and adding up all ranks still counts every sequence once.
        """
        if not world.active:
            return
        shared = sum_across_ranks(self.values[:2].clone())
        self.values[:2] = shared if world.is_main else 0.0

    def stats(self) -> dict[str, float]:
        loss, sequences, norm, steps, clipped, skipped = self.values.tolist()
        return {
            "train/loss": loss / max(sequences, 1.0),
            "grad_norm": norm / max(steps, 1.0),
            "clip_rate": clipped / max(steps, 1.0),
            "skipped_batches": skipped,
        }


def train_steps(
    model: nn.Module,
    split: Split,
    order: list[Tensor],
    start: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    clip: Any,
    skip_nonfinite: bool,
    sums: EpochSums,
    device: torch.device,
    after_step: Callable[[int, Tensor, int], bool],
) -> int:
    """Train on batches `order[start:]`; return how many of `order` are done.

    `after_step(done, loss, sequences)` runs after each batch (progress, step checkpoints,
    signals) and returns True to stop early. A batch whose gradient norm is not finite is
    skipped (no optimizer step) or raises NonFiniteGradient, before any weight changes.
    """
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    for position in range(start, len(order)):
        index = order[position]
        batch = split.take(index).to(device)
        optimizer.zero_grad(set_to_none=True)
        outputs = model(batch.x, batch.lengths)
        loss = loss_fn(outputs, batch.y, batch.lengths)
        loss.backward()
        grad_norm, clipped = clip_gradients(clip, parameters)
        if not torch.isfinite(grad_norm):
            if not skip_nonfinite:
                raise NonFiniteGradient(position + 1)
            optimizer.zero_grad(set_to_none=True)
            sums.values[5] += 1
        else:
            optimizer.step()
            count = float(len(index))
            sums.values += torch.stack(
                [
                    loss.detach() * count,
                    loss.new_tensor(count),
                    grad_norm,
                    loss.new_tensor(1.0),
                    clipped,
                    loss.new_tensor(0.0),
                ]
            ).double()
        if after_step(position + 1, loss, len(index)):
            return position + 1
    return len(order)


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
    """
    world = world or World()
    model.eval()
    accumulator = MetricAccumulator(data.task, data.output_size, device, data.to_original)
    for whole in batch_order(split.sequence_lengths(), batch_size, shuffle=False, bucket=False):
        index = my_share(whole, world)
        if not len(index):
            continue
        batch = split.take(index).to(device)
        outputs = model(batch.x, batch.lengths)
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
    for index in batch_order(split.sequence_lengths(), batch_size, shuffle=False, bucket=False):
        batch = split.take(index).to(device)
        outputs.append(model(batch.x, batch.lengths).float().cpu())
    return torch.cat(outputs)
