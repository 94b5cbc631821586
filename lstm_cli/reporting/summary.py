"""What a training run shows a person: the data and model at its start, results at its end."""

from __future__ import annotations

import logging
from typing import Any

from lstm_cli.config.schema import AugmentConfig
from lstm_cli.data.augment import WARP_STRETCHES, applies
from lstm_cli.data.smoothness import SMOOTH_BELOW
from lstm_cli.data.splits import PreparedData, Split, StreamSplit
from lstm_cli.model.network import layer_summary
from lstm_cli.training.baselines import baseline_rows
from lstm_cli.training.loop import Training
from lstm_cli.training.results import Results

log = logging.getLogger("lstm_cli.train")


def show_start(training: Training, resuming: bool) -> None:
    """The run directory, where a resume picks up, and the data and model tables."""
    progress = training.progress
    log.info("run directory: %s", training.run_dir)
    if resuming:
        log.info(
            "resuming after epoch %d, batch %d (step %d)",
            progress.epoch,
            progress.batch_in_epoch,
            progress.global_step,
        )
    reporter, model = training.reporter, training.trainee.model
    config, data = training.config, training.data
    augmented = (
        {"augmented": _augmentation(config.augment)} if applies(config.augment, data) else {}
    )
    roughness, least_steps = training.roughness, config.trainer.min_steps
    rough = {"roughness": _roughness(roughness, least_steps)} if roughness is not None else {}
    reporter.table("data", {**data_summary(config.dataset.name, data), **rough, **augmented})
    parameters = sum(p.numel() for p in model.parameters())
    reporter.table(
        "model",
        {
            **layer_summary(model),
            "parameters": f"{parameters:,}",
            "device": str(training.device),
            "precision": training.precision.name,
            "data on device": training.data_on_device,
            "threads": training.threads,
        },
    )


def show_results(training: Training, results: Results) -> None:
    """The monitored metric's course, the test scores beside the baseline's, warnings."""
    monitor, best = training.config.trainer.monitor, training.progress.best
    rows = training.progress.rows
    training.reporter.sparkline(monitor, [row[monitor] for row in rows], best.epoch)
    training.reporter.table(
        "results",
        {
            "best epoch": best.epoch,
            monitor: best.value,
            **results.values["test"],
            **_refit_rows(results.values["refit"]),
            **baseline_rows(results.comparison, "test"),
            "run dir": str(training.run_dir),
        },
    )
    for line in results.warnings:
        log.warning("warning: %s", line)


def _refit_rows(refit: dict[str, Any] | None) -> dict[str, Any]:
    """After trainer.refit: what the weights validation chose scored (and, averaged with
    them, the refit's alone), for comparison."""
    if refit is None:
        return {}
    steps = f"{refit['steps']} steps on {refit['sequences']} sequences"
    rows = {"refit": steps, "before refit": _scores(refit["validated_test"])}
    if "refit_test" in refit:
        rows["refit alone"] = _scores(refit["refit_test"])
    return rows


def _scores(scores: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.6g}" for name, value in scores.items())


def _roughness(value: float, least_steps: int | None) -> str:
    """What the training sequences' roughness made of the auto keys (`augment.warp`,
    `augment.mixup` and `trainer.min_steps` at null)."""
    smooth = value < SMOOTH_BELOW
    return (
        f"{value:.2g}, {'smooth' if smooth else 'not smooth'} (bound {SMOOTH_BELOW:g}):"
        f" warp and mixup left to auto {'on' if smooth else 'off'}; least steps {least_steps}"
    )


def _augmentation(config: AugmentConfig) -> str:
    scaled = f"scale x (1 + {config.scale:g} N(0, 1))" if config.scale else ""
    cropped = f"random {config.crop:.0%} of each sequence" if config.crop < 1 else ""
    warped = (
        f"speed x exp({config.warp:g} N(0, 1)) in {WARP_STRETCHES} stretches" if config.warp else ""
    )
    mixed = f"mixup Beta({config.mixup:g}, {config.mixup:g})" if config.mixup else ""
    return ", ".join(part for part in (cropped, scaled, warped, mixed) if part)


def data_summary(name: str, data: PreparedData) -> dict[str, Any]:
    lengths = data.train.sequence_lengths().float()
    return {
        "dataset": name,
        "task": data.task,
        "train": len(data.train),
        "val": len(data.val),
        "test": len(data.test),
        "inputs": data.input_size,
        **_input_names(data),
        "outputs": data.output_size,
        "length min/mean/max": f"{int(lengths.min())}/{lengths.mean():.1f}/{int(lengths.max())}",
        **_streams(data.train),
        **_what_is_predicted(data),
    }


def _streams(split: Split) -> dict[str, str]:
    """How text is read under trainer.tbptt: parallel streams, the state carried."""
    if not isinstance(split, StreamSplit):
        return {}
    return {"read as": f"{split.streams} parallel streams, state carried (trainer.tbptt)"}


def _input_names(data: PreparedData) -> dict[str, str]:
    """The input columns by name, so that a stray id or time column shows at once."""
    state = data.preprocessing
    names = state.get("features") or state.get("columns")
    shown = {"features": ", ".join(str(n) for n in names)} if names else {}
    if "transform" in state:  # forecasting: what `auto` chose
        shown["transform"] = ", ".join(state["transform"]) or "none"
    return shown


def _what_is_predicted(data: PreparedData) -> dict[str, str]:
    """Classes, target columns or vocabulary size, whichever the task has."""
    state = data.preprocessing
    if state.get("classes"):
        return {"classes": ", ".join(str(c) for c in state["classes"][:20])}
    if state.get("targets"):
        return {"targets": ", ".join(state["targets"])}
    if state.get("vocab"):
        return {"vocabulary": f"{len(state['vocab'])} symbols"}
    return {}
