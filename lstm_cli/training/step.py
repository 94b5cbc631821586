"""The textbook optimizer step on one padded batch, and the running sums of an epoch.

`train_batch` reads top to bottom: zero the gradients, forward (under autocast for mixed
precision), loss, backward through time, clip (recording the pre-clip gradient norm),
the guarded optimizer step, and the step's figures added to the epoch's sums. The sums
stay on the device and are read once per epoch: a host read per step makes a GPU wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lstm_cli.common.distributed import World, sum_across_ranks
from lstm_cli.data.splits import Batch
from lstm_cli.model.network import CarriedState
from lstm_cli.training.losses import LossFn
from lstm_cli.training.optim import PerStepScheduler, Scheduler, clip_gradients
from lstm_cli.training.precision import Precision


class NonFiniteGradient(Exception):
    """The loss or the gradient of a batch was NaN or infinite (with on_nonfinite=stop);
    `args[0]` is the batch's 1-based position in its epoch."""


# What EpochSums.values holds, in this order (the order checkpoints store).
FIELDS = (
    "loss_x_sequences",
    "sequences",
    "grad_norm",
    "steps",
    "clipped_steps",
    "skipped_batches",
    "halted_at",  # the first batch (1-based) whose loss or gradient was not finite, 0 if none
)
COUNTED = len(FIELDS) - 1  # the fields a step adds to; `halted_at` is set, not added


class StepFigures:
    """What one step adds to the counted fields, built on the device from constants.

    A tensor made from a Python number per step would be a host-to-device copy, which on
    CUDA waits for the queue to drain; these vectors are made once per epoch.
    """

    def __init__(self, device: torch.device) -> None:
        def vector(*values: float) -> Tensor:
            return torch.tensor(values, dtype=torch.float64, device=device)

        self.nothing = vector(0, 0, 0, 0, 0, 0)
        self.skipped = vector(0, 0, 0, 0, 0, 1)
        self._one_sequence = vector(0, 1, 0, 0, 0, 0)
        self._one_step = vector(0, 0, 0, 1, 0, 0)
        self._measured = torch.tensor([0, 2, 4], device=device)

    def taken(self, loss: Tensor, sequences: int, grad_norm: Tensor, clipped: Tensor) -> Tensor:
        """A step taken: loss x sequences, sequences, gradient norm, one step, clipped or not."""
        measured = torch.stack([loss * sequences, grad_norm, clipped]).double()
        filled = self.nothing.index_copy(0, self._measured, measured)
        return filled + self._one_sequence * sequences + self._one_step


@dataclass
class EpochSums:
    """Running sums of one epoch (`FIELDS`), on the device; saved in mid-epoch checkpoints."""

    values: Tensor
    figures: StepFigures = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.figures = StepFigures(self.values.device)

    @classmethod
    def zeros(cls, device: torch.device) -> EpochSums:
        return cls(torch.zeros(len(FIELDS), dtype=torch.float64, device=device))

    @classmethod
    def restored(cls, saved: Tensor, device: torch.device) -> EpochSums:
        """Sums from a checkpoint; those written before `halted_at` existed get a 0."""
        values = torch.zeros(len(FIELDS), dtype=torch.float64)
        values[: len(saved)] = saved
        return cls(values.to(device))

    def add(self, step: Tensor) -> None:
        """Add one step's figures (a `StepFigures` vector) to the counted fields."""
        self.values[:COUNTED] += step

    def halt_unless(self, finite: Tensor, position: int) -> Tensor:
        """On the device: record batch `position` (0-based) as the halt if its figures are
        not finite and nothing halted before; return whether training is halted now."""
        halted_at = self.values[COUNTED]
        keep = (halted_at > 0) | finite
        self.values[COUNTED] = torch.where(keep, halted_at, position + 1)
        return self.values[COUNTED] > 0

    def raise_if_halted(self) -> None:
        """A host read: raise NonFiniteGradient if a batch of this epoch halted training."""
        halted_at = int(self.values[COUNTED])
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

    def leave_to_main(self) -> None:
        """A resumed rank other than 0: the checkpoint's loss sums are all ranks' together,
        and rank 0 holds them."""
        self.values[:2] = 0.0

    def stats(self) -> dict[str, float]:
        named = dict(zip(FIELDS, self.values.tolist(), strict=True))
        steps = max(named["steps"], 1.0)
        return {
            "train/loss": named["loss_x_sequences"] / max(named["sequences"], 1.0),
            "grad_norm": named["grad_norm"] / steps,
            "clip_rate": named["clipped_steps"] / steps,
            "skipped_batches": named["skipped_batches"],
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
    scheduler: Scheduler | None = None  # a PerStepScheduler moves on after every step

    @property
    def guards_on_device(self) -> bool:
        """Fused optimizers take a device flag that cancels their step: no host read needed.

        (The flag is how torch's GradScaler skips steps; with a scaler it is the scaler's.)
        """
        return bool(self.optimizer.defaults.get("fused")) and self.precision.scaler is None


def train_batch(
    model: nn.Module,
    batch: Batch,
    position: int,
    update: Update,
    loss_fn: LossFn,
    sums: EpochSums,
    carried: CarriedState | None = None,
) -> tuple[Tensor, Tensor]:
    """One optimizer step on `batch`, the `position`-th (0-based) of its epoch; returns its
    loss and pre-clip gradient norm, both left on the device. With `carried` (parallel
    streams), the LSTM starts from the state the previous batch left and leaves its own."""
    optimizer, precision = update.optimizer, update.precision
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        outputs = model(batch.x, batch.lengths, carried)
    loss = loss_fn(outputs.float(), batch.y, batch.lengths)
    precision.backward(loss, optimizer)
    parameters = [p for p in model.parameters() if p.requires_grad]
    grad_norm, clipped = clip_gradients(update.clip, parameters)
    taken = sums.figures.taken(loss.detach(), len(batch.lengths), grad_norm, clipped)
    guarded_step(update, sums, loss, grad_norm, taken, position)
    if isinstance(update.scheduler, PerStepScheduler):
        update.scheduler.step()
    return loss, grad_norm


def guarded_step(
    update: Update, sums: EpochSums, loss: Tensor, grad_norm: Tensor, taken: Tensor, position: int
) -> None:
    """The optimizer step, unless the batch's loss or gradient is not finite: then no weight
    changes and the batch is skipped (skip_nonfinite) or halts training.

    With a fused optimizer the check stays on the device: a halt blocks this and every
    later step until the host next looks (`EpochSums.raise_if_halted`, before every
    checkpoint and at the epoch's end). Otherwise it is read on the host here.
    """
    optimizer, figures = update.optimizer, sums.figures
    watched = loss if update.precision.scaler is not None else grad_norm
    finite = torch.isfinite(watched)
    if update.guards_on_device:
        if update.skip_nonfinite:
            blocked, instead = ~finite, figures.skipped
        else:
            blocked, instead = sums.halt_unless(finite, position), figures.nothing
        step_unless(optimizer, blocked)
        sums.add(torch.where(blocked, instead, taken))
    elif not finite:
        if not update.skip_nonfinite:
            raise NonFiniteGradient(position + 1)
        optimizer.zero_grad(set_to_none=True)
        sums.add(figures.skipped)
    else:
        update.precision.step(optimizer)  # a float16 overflow makes the scaler skip this step
        sums.add(torch.where(torch.isfinite(grad_norm), taken, figures.skipped))


def step_unless(optimizer: torch.optim.Optimizer, blocked: Tensor) -> None:
    """A fused optimizer's step, cancelled on the device when `blocked` is true.

    Fused optimizers read a `found_inf` attribute and skip their update when it is nonzero;
    torch's GradScaler sets it just before `step()` and deletes it after, and so do we.
    """
    optimizer.found_inf = blocked.float()
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf
