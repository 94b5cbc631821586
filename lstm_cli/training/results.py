"""A finished run's results: the test split scored by the final weights, beside its
baselines (and, after `trainer.refit`, beside the weights validation chose)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lstm_cli import __version__
from lstm_cli.common.runtime import peak_memory_mib
from lstm_cli.runs.checkpoint import load_checkpoint
from lstm_cli.runs.rundir import write_json_atomic
from lstm_cli.training.baselines import Comparison, compare, warnings_for

if TYPE_CHECKING:
    from lstm_cli.training.loop import Training


@dataclass
class Results:
    """What a finished run reports: results.json's content and the baseline comparison."""

    values: dict[str, Any]
    comparison: Comparison
    warnings: list[str]


def finish(training: Training, started: float) -> Results:
    """Score the test split with the final weights (the best epoch's, or the refit's) and
    its baselines; rank 0 writes results.json (and the TensorBoard hyperparameters)."""
    config, progress = training.config, training.progress
    trainer, best = config.trainer, progress.best
    refit = progress.refit
    if refit is None and training.best_state:  # empty only when no epoch improved (NaN)
        training.trainee.model.load_state_dict(training.best_state)
    test = training.score(training.data.test)
    batch = trainer.batch_size * 4
    comparison = compare(test, training.data, training.data.test, training.loss_fn, batch)
    warnings = warnings_for(comparison, "test", training.data.task, best.epoch, progress.epoch)
    checkpoints = training.checkpoints
    results = {
        "run_dir": str(training.run_dir.resolve()),
        "dataset": config.dataset.name,
        "task": training.data.task,
        "monitor": trainer.monitor,
        "best_epoch": best.epoch,
        "best_value": best.value,
        "epochs_completed": progress.epoch,
        "stopped_early": progress.epoch < trainer.max_epochs,
        "test": {f"test/{name}": value for name, value in test.items()},
        "refit": None if refit is None else _refit_record(training),
        **comparison.to_dict("test"),
        "warnings": warnings,
        "parameters": sum(p.numel() for p in training.trainee.model.parameters()),
        "wall_seconds": round(time.time() - started, 3),
        "data_load_seconds": training.data_load_seconds,
        **peak_memory_mib(training.device),
        "best_checkpoint": str((checkpoints / "best.pt").resolve()),
        "tool_version": __version__,
    }
    if training.world.is_main:
        write_json_atomic(training.run_dir / "results.json", results)
        if training.tensorboard is not None:
            final = {trainer.monitor: best.value, **results["test"]}
            training.tensorboard.hyperparameters(training.values, final)
    return Results(results, comparison, warnings)


def _refit_record(training: Training) -> dict[str, Any]:
    """What the refit did, and what the weights validation chose score on the test split."""
    refit, validated = training.progress.refit, training.checkpoints / "validated.pt"
    assert refit is not None
    return {
        "epochs": refit.epochs,
        "steps": refit.steps,
        "sequences": len(training.train_split),
        "validated_test": {f"test/{k}": v for k, v in _validated_test(training).items()},
        "validated_checkpoint": str(validated.resolve()),
    }


def _validated_test(training: Training) -> dict[str, float]:
    """The test scores of the weights validation chose, for the record beside the refit's:
    what training on the validation data too has changed."""
    model = training.trainee.model
    refitted = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    model.load_state_dict(load_checkpoint(training.checkpoints / "validated.pt")["model_state"])
    scores = training.score(training.data.test)
    model.load_state_dict(refitted)
    return scores
