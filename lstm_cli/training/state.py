"""Where a training run stands, and its round trip through a checkpoint.

A checkpoint written at an epoch's end or after any step holds enough to continue with
the same result as a run that was never stopped: weights, optimizer, scheduler and
loss-scaler states, the RNG states (torch, CUDA, python, numpy), the shuffling
generator's state at the start of the epoch in progress, how many of that epoch's batches
are done, its running sums and the LSTM state its text streams carry (trainer.tbptt),
the metrics rows so far and the best-so-far tracker.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstm_cli.common.distributed import World, gather_rows, my_rows
from lstm_cli.common.errors import CheckpointError
from lstm_cli.data.splits import PreparedData
from lstm_cli.model.averaged import Network
from lstm_cli.model.network import CarriedState
from lstm_cli.runs.checkpoint import load_checkpoint
from lstm_cli.training.early_stopping import BestTracker
from lstm_cli.training.optim import Scheduler
from lstm_cli.training.step import EpochSums


@dataclass
class RefitProgress:
    """`trainer.refit`: epochs over the training and validation data together, planned
    when validation chose its best epoch (`steps` optimizer steps), and those done."""

    epochs: int
    steps: int
    done: int = 0


@dataclass
class TrainingProgress:
    """Counters of a run; `shuffle_state` is what the epoch in progress is shuffled from,
    `carried` the LSTM state its parallel streams have reached (trainer.tbptt on text).
    `epoch` counts the validated epochs; a refit's epochs count in `refit` alone."""

    shuffle_state: Tensor
    sums: EpochSums
    best: BestTracker
    epoch: int = 0
    global_step: int = 0
    batch_in_epoch: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    carried: CarriedState | None = None
    all_streams: tuple[Tensor, Tensor] | None = None  # every rank's carried rows, to save
    refit: RefitProgress | None = None  # None until the validated epochs are over
    row_texts: list[str] = field(init=False, repr=False)  # `rows` as JSON, for checkpoints

    def __post_init__(self) -> None:
        self.row_texts = [json.dumps(row) for row in self.rows]

    def add_row(self, row: dict[str, Any]) -> None:
        """An epoch's metrics, also kept as JSON: a checkpoint then writes one string, not
        every number of every epoch (pickling those took 23 ms a save at 1500 epochs, and
        a run of small epochs saves at each)."""
        self.rows.append(row)
        self.row_texts.append(json.dumps(row))

    def rows_json(self) -> str:
        return f"[{','.join(self.row_texts)}]"

    def next_epoch(self, shuffle_state: Tensor) -> None:
        """An epoch is over: the next starts at its first batch, shuffled from
        `shuffle_state`, with fresh sums; text streams restart from their beginnings."""
        self.batch_in_epoch, self.shuffle_state = 0, shuffle_state
        self.sums = EpochSums.zeros(self.sums.values.device)
        self.carried = CarriedState() if self.carried else None

    def gather_on_main(self, world: World) -> None:
        """Before a checkpoint, on every rank: rank 0's sums become all ranks', and the
        carried state of every rank's streams is gathered, in stream order, to be saved."""
        self.sums.gather_on_main(world)
        state = self.carried.state if self.carried else None
        self.all_streams = tuple(gather_rows(t, world, 1) for t in state) if state else None


@dataclass
class Trainee:
    """The objects whose states a checkpoint carries."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None
    shuffle: torch.Generator
    scaler: torch.amp.GradScaler | None = None


def agreeing_best(path: Path, recorded: int) -> dict[str, Any]:
    """best.pt's weights, checked against the best epoch last.pt records: best.pt is
    written first, so it is that epoch's or, killed between the writes, the next one's or
    the refit's (which the resumed run redoes). Anything else was changed by hand."""
    if not path.exists():
        if recorded:
            raise CheckpointError(
                f"{path} is missing, but checkpoints/last.pt records a best epoch"
                f" ({recorded}); restore it or start a new run"
            )
        return {}
    best = load_checkpoint(path)
    if best.get("refit"):
        return {}
    if best["epoch"] < recorded:
        raise CheckpointError(
            f"{path} holds epoch {best['epoch']}, but checkpoints/last.pt records the best"
            f" at epoch {recorded}: the two disagree; restore them or start a new run"
        )
    return best["model_state"] if best["epoch"] == recorded else {}


def checkpoint_payload(
    trainee: Trainee,
    network: Network,
    progress: TrainingProgress,
    config: dict[str, Any],
    data: PreparedData,
) -> dict[str, Any]:
    """Everything needed to evaluate, predict or resume, as tensors and plain containers:
    `network` answers (the trainee's, or the validated and refit ones averaged); the rest
    is the trainee's, to resume it."""
    return {
        "model_spec": network.spec.to_dict(),
        "model_state": network.state_dict(),
        "optimizer_state": trainee.optimizer.state_dict(),
        "scheduler_state": trainee.scheduler.state_dict() if trainee.scheduler else None,
        "scaler_state": trainee.scaler.state_dict() if trainee.scaler else None,
        "epoch": progress.epoch,
        "global_step": progress.global_step,
        "batch_in_epoch": progress.batch_in_epoch,
        "rng": {**rng_states(), "shuffle": progress.shuffle_state},
        "epoch_sums": progress.sums.values.cpu(),
        "carried_state": [t.cpu() for t in progress.all_streams or ()],
        "rows": progress.rows_json(),
        "best": asdict(progress.best),
        "refit": asdict(progress.refit) if progress.refit else None,
        "config": config,
        "task": data.task,
        "preprocessing": data.preprocessing,
    }


def rng_states() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, python, numpy) as tensors and tuples."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": position,
            "has_gauss": has_gauss,
            "cached": cached,
        },
    }


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    saved = states["numpy"]
    np.random.set_state(
        (
            saved["kind"],
            saved["keys"].numpy().astype(np.uint32),
            saved["position"],
            saved["has_gauss"],
            saved["cached"],
        )
    )


def restore(
    payload: dict[str, Any], trainee: Trainee, device: torch.device, world: World
) -> TrainingProgress:
    """Load a checkpoint's states into `trainee` and the RNGs; return its progress (under
    torchrun, with this rank's rows of the carried streams)."""
    trainee.model.load_state_dict(payload["model_state"])
    trainee.optimizer.load_state_dict(payload["optimizer_state"])
    if trainee.scheduler is not None and payload["scheduler_state"] is not None:
        trainee.scheduler.load_state_dict(payload["scheduler_state"])
    if trainee.scaler is not None and payload.get("scaler_state"):
        trainee.scaler.load_state_dict(payload["scaler_state"])
    set_rng_states(payload["rng"])
    return TrainingProgress(
        shuffle_state=payload["rng"]["shuffle"],
        sums=EpochSums.restored(payload["epoch_sums"], device),
        best=BestTracker(**payload["best"]),
        epoch=payload["epoch"],
        global_step=payload["global_step"],
        batch_in_epoch=payload["batch_in_epoch"],
        rows=saved_rows(payload["rows"]),
        carried=carried_state(payload.get("carried_state"), device, world),
        refit=RefitProgress(**payload["refit"]) if payload.get("refit") else None,
    )


def saved_rows(saved: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The metrics rows last.pt holds: JSON text, or (written before) a list of rows."""
    try:
        rows = json.loads(saved) if isinstance(saved, str) else list(saved)
    except (ValueError, TypeError) as err:
        reason = str(err).splitlines()[0]
        raise CheckpointError(f"checkpoints/last.pt: unreadable metrics rows ({reason})") from err
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise CheckpointError("checkpoints/last.pt: its metrics rows are not a list of rows")
    return rows


def carried_state(
    saved: list[Tensor] | None, device: torch.device, world: World
) -> CarriedState | None:
    """This rank's rows of a checkpoint's carried (h, c), on `device`; None if none was
    saved (at an epoch's end, without tbptt, or before tbptt existed)."""
    if not saved:
        return None
    h, c = (my_rows(t, world, 1).to(device) for t in saved)
    return CarriedState((h, c))
