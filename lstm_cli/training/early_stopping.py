"""Tracking the best value of the monitored metric, for best checkpoints and early stopping."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from lstm_cli.config.schema import TrainerConfig

log = logging.getLogger("lstm_cli.train")


@dataclass
class BestTracker:
    """The best value so far of `monitor` and how many epochs ago it was reached.

    An epoch improves on the best only by more than `min_delta` in the `mode` direction;
    a NaN never improves.
    """

    monitor: str
    mode: str
    min_delta: float
    value: float = math.nan
    epoch: int = 0
    latest: float = math.nan
    epochs_since_best: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record this epoch's value; return True when it is a new best."""
        self.latest = value
        sign = 1.0 if self.mode == "min" else -1.0
        improved = not math.isnan(value) and (
            math.isnan(self.value) or sign * (self.value - value) > self.min_delta
        )
        if improved:
            self.value, self.epoch, self.epochs_since_best = value, epoch, 0
        else:
            self.epochs_since_best += 1
        return improved


def stops_early(best: BestTracker, trainer: TrainerConfig, global_step: int) -> bool:
    """Patience counts epochs, but a small dataset's epoch is a few steps: no stop
    before `trainer.min_steps` optimizer steps, however many epochs that takes."""
    patience = trainer.patience
    if patience is None or best.epochs_since_best < patience:
        return False
    if global_step < trainer.min_steps:
        return False
    log.info(
        "early stopping: %s has not improved for %d epochs (best %.6g at epoch %d)",
        best.monitor,
        patience,
        best.value,
        best.epoch,
    )
    return True
