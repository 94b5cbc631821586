"""`trainer.refit`: once validation has chosen how long to train, a fresh network learns
from the training and validation data together for that long. `true` makes it the run's
network; `average` has it answer together with the validated one (`model/averaged.py`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from lstm_cli.config.schema import TrainerConfig
from lstm_cli.config.tasks import Task, is_classification
from lstm_cli.data.splits import PreparedData, StreamSplit
from lstm_cli.data.streamed import StreamedSplit
from lstm_cli.model.averaged import AveragedNetwork, Network
from lstm_cli.model.network import LSTMNetwork
from lstm_cli.runs.checkpoint import load_checkpoint
from lstm_cli.training.state import RefitProgress, TrainingProgress

log = logging.getLogger("lstm_cli.train")


def refit_applies(trainer: TrainerConfig, best_epoch: int, data: PreparedData) -> bool:
    """Whether trainer.refit applies: text read as carried streams and data streamed from
    disk by shard do not join; a language model generates text carrying one network's
    state, so it is not averaged; a run whose validation never improved has no length to
    repeat."""
    if not trainer.refit or not best_epoch:
        return False
    if isinstance(data.train, StreamSplit | StreamedSplit):
        log.info("trainer.refit: not for data read as streams; the validated weights stay")
        return False
    if trainer.refit == "average" and data.task == "language_model":
        log.info("trainer.refit=average: not for language models; the validated weights stay")
        return False
    return len(data.val) > 0


def refit_plan(
    trainer: TrainerConfig, progress: TrainingProgress, sequences: int, ranks: int
) -> RefitProgress:
    """As many optimizer steps as validation chose (at least trainer.min_steps, as early
    stopping waits that long; fewer only when max_epochs ended the run sooner), as whole
    epochs over `sequences` shared by `ranks`."""
    steps_per_epoch = progress.global_step / progress.epoch
    floor = min(trainer.min_steps, progress.global_step)
    steps = max(round(steps_per_epoch * progress.best.epoch), floor)
    batches = math.ceil(sequences / (trainer.batch_size * ranks))
    epochs = math.ceil(steps / batches)
    return RefitProgress(epochs, epochs * batches)


def averages(trainer: TrainerConfig, progress: TrainingProgress) -> bool:
    """Whether the run answers with the validated and refit networks together."""
    return progress.refit is not None and trainer.refit == "average"


def validated_network(like: LSTMNetwork, checkpoints: Path) -> LSTMNetwork:
    """A network built as `like`, with the weights validation chose (validated.pt)."""
    device = next(like.parameters()).device
    network = LSTMNetwork(like.spec, like.packed).to(device)
    network.load_state_dict(load_checkpoint(checkpoints / "validated.pt")["model_state"])
    return network.eval()


def final_network(trained: LSTMNetwork, checkpoints: Path, averaged: bool, task: Task) -> Network:
    """The network a run answers with: the one trained or, `averaged` (trainer.refit=average
    has run), the validated one and it together."""
    if not averaged:
        return trained
    members = [validated_network(trained, checkpoints), trained]
    return AveragedNetwork.of(members, is_classification(task))
