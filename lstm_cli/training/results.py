"""A finished run's results: the test split scored by the network the run answers with,
beside its baselines (and, after `trainer.refit`, beside the weights validation chose)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lstm_cli import __version__
from lstm_cli.common.runtime import peak_memory_mib
from lstm_cli.model.averaged import AveragedNetwork, Network
from lstm_cli.runs.rundir import write_json_atomic
from lstm_cli.training.baselines import Comparison, compare, warnings_for
from lstm_cli.training.refit import averages, final_network, validated_network

if TYPE_CHECKING:
    from lstm_cli.training.loop import Training


@dataclass
class Results:
    """What a finished run reports: results.json's content and the baseline comparison."""

    values: dict[str, Any]
    comparison: Comparison
    warnings: list[str]


def finish(training: Training, started: float) -> Results:
    """Score the test split with the final network (the best epoch's, the refit's, or both
    averaged) and its baselines; rank 0 writes results.json (and TensorBoard's
    hyperparameters)."""
    config, progress = training.config, training.progress
    trainer, best = config.trainer, progress.best
    refit = progress.refit
    if refit is None and training.best_state:  # empty only when no epoch improved (NaN)
        training.trainee.model.load_state_dict(training.best_state)
    averaged = averages(trainer, progress)
    network = final_network(
        training.trainee.model, training.checkpoints, averaged, training.data.task
    )
    test = training.score(training.data.test, network)
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
        "settled": {  # what the auto (null) keys became for this data (`auto_defaults.py`)
            "roughness": _json_number(training.roughness),
            "augment.warp": config.augment.warp,
            "augment.mixup": config.augment.mixup,
            "trainer.min_steps": trainer.min_steps,
        },
        "test": {f"test/{name}": value for name, value in test.items()},
        "refit": None if refit is None else _refit_record(training, network),
        **comparison.to_dict("test"),
        "warnings": warnings,
        "parameters": sum(p.numel() for p in network.parameters()),
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


def _json_number(value: float | None) -> float | None:
    """`value`, or null for what JSON cannot spell (no sequence varied: infinitely rough)."""
    return value if value is None or math.isfinite(value) else None


def _refit_record(training: Training, network: Network) -> dict[str, Any]:
    """What the refit did, and what the weights validation chose score on the test split
    (after `trainer.refit=average`, whose `network` holds them, the refit network's alone
    too): what training on the validation data, and averaging, have changed."""
    refit, validated = training.progress.refit, training.checkpoints / "validated.pt"
    assert refit is not None
    model = training.trainee.model
    averaged = isinstance(network, AveragedNetwork)
    first = network.members[0] if averaged else validated_network(model, training.checkpoints)
    record = {
        "epochs": refit.epochs,
        "steps": refit.steps,
        "sequences": len(training.train_split),
        "validated_test": _test_scores(training, first),
        "validated_checkpoint": str(validated.resolve()),
    }
    if averaged:
        record["refit_test"] = _test_scores(training, model)
    return record


def _test_scores(training: Training, network: Network) -> dict[str, float]:
    scores = training.score(training.data.test, network)
    return {f"test/{name}": value for name, value in scores.items()}
