"""One training epoch and one evaluation pass: the textbook step, done on whole batches.

Per batch: forward (under autocast for mixed precision), loss, backward through time,
clip (recording the pre-clip gradient norm), optimizer step. Running sums stay on the
device and are read once per epoch. The NaN guard before each optimizer step stays on
the device with fused optimizers (the default); others read the device once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lstm_cli.common.distributed import World, my_share, sum_across_ranks
from lstm_cli.data.batching import batch_order
from lstm_cli.data.splits import PreparedData, Split
from lstm_cli.training.losses import LossFn
from lstm_cli.training.metrics import MetricAccumulator
from lstm_cli.training.optim import clip_gradients
from lstm_cli.training.precision import Precision


class NonFiniteGradient(Exception):
    """The loss or the gradient of a batch was NaN or infinite (with on_nonfinite=stop)."""


SLOTS = 7


@dataclass
class EpochSums:
    """Running sums of one epoch, on the device; saved in mid-epoch checkpoints.

    Slots: loss x sequences, sequences, gradient norm, steps, clipped steps, skipped
    batches, and the first batch (1-based) whose loss or gradient was not finite, 0 if none.
    """

    values: Tensor

    @classmethod
    def zeros(cls, device: torch.device) -> EpochSums:
        return cls(torch.zeros(SLOTS, dtype=torch.float64, device=device))

    @classmethod
    def restored(cls, saved: Tensor, device: torch.device) -> EpochSums:
        """Sums from a checkpoint; those written before the last slot existed get a 0."""
        values = torch.zeros(SLOTS, dtype=torch.float64)
        values[: len(saved)] = saved
        return cls(values.to(device))

    def raise_if_halted(self) -> None:
        """A host read: raise NonFiniteGradient if a batch of this epoch halted training."""
        halted_at = int(self.values[6])
        if halted_at:
            raise NonFiniteGradient(halted_at)

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
        loss, sequences, norm, steps, clipped, skipped, _ = self.values.tolist()
        return {
            "train/loss": loss / max(sequences, 1.0),
            "grad_norm": norm / max(steps, 1.0),
            "clip_rate": clipped / max(steps, 1.0),
            "skipped_batches": skipped,
        }


@dataclass
class Update:
    """How a batch's gradients become a weight change.

    `skip_nonfinite` is trainer.on_nonfinite=skip_batch. Under float16 mixed precision an
    overflow of the scaled gradients is routine (the scaler skips that step and lowers its
    scale), so there the policy watches the loss instead of the gradient norm.
    """

    optimizer: torch.optim.Optimizer
    clip: Any
    precision: Precision
    skip_nonfinite: bool

    @property
    def guards_on_device(self) -> bool:
        """Fused optimizers take a device flag that cancels their step: no host read needed.

        (The flag is how torch's GradScaler skips steps; with a scaler it is the scaler's.)
        """
        return bool(self.optimizer.defaults.get("fused")) and self.precision.scaler is None


class _SlotVectors:
    """What one step adds to the first six slots of EpochSums, built on the device.

    Made from device constants and scalar arithmetic: a tensor made from a Python number
    per step would be a host-to-device copy, which on CUDA waits for the queue to drain.
    """

    def __init__(self, device: torch.device) -> None:
        def vector(*values: float) -> Tensor:
            return torch.tensor(values, dtype=torch.float64, device=device)

        self.nothing = vector(0, 0, 0, 0, 0, 0)
        self.skipped = vector(0, 0, 0, 0, 0, 1)
        self.per_sequence = vector(0, 1, 0, 0, 0, 0)
        self.per_step = vector(0, 0, 0, 1, 0, 0)
        self.measured_slots = torch.tensor([0, 2, 4], device=device)

    def taken(self, loss: Tensor, sequences: int, grad_norm: Tensor, clipped: Tensor) -> Tensor:
        """loss x sequences, sequences, gradient norm, one step, clipped or not, not skipped."""
        measured = torch.stack([loss * sequences, grad_norm, clipped]).double()
        filled = self.nothing.index_copy(0, self.measured_slots, measured)
        return filled + self.per_sequence * sequences + self.per_step


def train_steps(
    model: nn.Module,
    split: Split,
    order: list[Tensor],
    start: int,
    update: Update,
    loss_fn: LossFn,
    sums: EpochSums,
    device: torch.device,
    after_step: Callable[[int, Tensor, Tensor, int], bool],
) -> int:
    """Train on batches `order[start:]`; return how many of `order` are done.

    `after_step(done, loss, grad_norm, sequences)` runs after each batch (progress, step
    checkpoints, logging, signals) and returns True to stop early. A batch whose loss or
    gradient norm is not finite changes no weight: it is skipped (skip_nonfinite), or it
    halts training and NonFiniteGradient names it. With a fused optimizer the check stays
    on the device and a halt freezes the weights until the host next looks
    (`EpochSums.raise_if_halted`, before every checkpoint and at the end of these steps);
    otherwise it is read per step.
    """
    model.train()
    optimizer, precision = update.optimizer, update.precision
    parameters = [p for p in model.parameters() if p.requires_grad]
    slots = _SlotVectors(device)
    for position in range(start, len(order)):
        index = order[position]
        batch = split.take(index).to(device)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            outputs = model(batch.x, batch.lengths)
        loss = loss_fn(outputs.float(), batch.y, batch.lengths)
        precision.backward(loss, optimizer)
        grad_norm, clipped = clip_gradients(update.clip, parameters)
        taken = slots.taken(loss.detach(), len(index), grad_norm, clipped)
        watched = loss if precision.scaler is not None else grad_norm
        finite = torch.isfinite(watched)
        if update.guards_on_device:
            if update.skip_nonfinite:
                blocked, instead = ~finite, slots.skipped
            else:
                first_bad = sums.values[6]
                sums.values[6] = torch.where((first_bad > 0) | finite, first_bad, position + 1)
                blocked, instead = sums.values[6] > 0, slots.nothing
            optimizer.found_inf = blocked.float()
            optimizer.step()
            sums.values[:6] += torch.where(blocked, instead, taken)
        elif not finite:  # the host read of a non-fused optimizer
            if not update.skip_nonfinite:
                raise NonFiniteGradient(position + 1)
            optimizer.zero_grad(set_to_none=True)
            sums.values[:6] += slots.skipped
        else:
            precision.step(optimizer)  # a float16 overflow makes the scaler skip this step
            sums.values[:6] += torch.where(torch.isfinite(grad_norm), taken, slots.skipped)
        if after_step(position + 1, loss, grad_norm, len(index)):
            sums.raise_if_halted()
            return position + 1
    sums.raise_if_halted()
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
