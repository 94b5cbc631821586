"""Checks that span several config groups: a loss that fits the task, a monitor that exists."""

from __future__ import annotations

import importlib
from typing import Any

from lstm_cli.common.errors import ConfigError
from lstm_cli.config.dataset_schema import ForecastDatasetConfig, SineDatasetConfig
from lstm_cli.config.schema import ExportConfig, ModelConfig, SGDConfig, TrainConfig
from lstm_cli.config.tasks import (
    HIGHER_IS_BETTER,
    METRICS,
    Task,
    losses_for,
    task_of_dataset,
    usual_loss,
)
from lstm_cli.config.validate import build, composed


def validate_train_config(values: dict[str, Any]) -> tuple[TrainConfig, Task]:
    """The typed train config and its task; raises ConfigError naming the culprit key."""
    cfg = build(TrainConfig, values)
    task = task_of_dataset(cfg.dataset.kind, getattr(cfg.dataset, "task", None))
    if cfg.loss.name not in losses_for(task):
        raise ConfigError(
            f"loss={cfg.loss.name} does not fit the {task} task of dataset={cfg.dataset.name};"
            f" use one of: {', '.join(sorted(losses_for(task)))}"
        )
    check_monitor(cfg.trainer.monitor, cfg.trainer.mode, task)
    if isinstance(cfg.dataset, ForecastDatasetConfig | SineDatasetConfig):
        for key in ("val_size", "test_size"):
            if getattr(cfg.dataset, key) < cfg.dataset.horizon:
                raise ConfigError(
                    f"dataset.{key}={getattr(cfg.dataset, key)} is shorter than"
                    f" dataset.horizon={cfg.dataset.horizon}: no sample would fit in it"
                )
    if (
        isinstance(cfg.optimizer, SGDConfig)
        and cfg.optimizer.nesterov
        and cfg.optimizer.momentum == 0
    ):
        raise ConfigError("optimizer.nesterov=true needs optimizer.momentum > 0")
    check_model(cfg.model)
    check_tbptt(cfg, task)
    check_augment(cfg, task)
    spans_nothing = cfg.scheduler.name == "onecycle" and cfg.scheduler.steps is None
    if spans_nothing and cfg.trainer.min_steps == 0:  # null: settled to 1000 or 3000
        raise ConfigError(
            "scheduler=onecycle with scheduler.steps=null spans trainer.min_steps, which is 0:"
            " give scheduler.steps=N"
        )
    from lstm_cli.common.runtime import resolve_device  # torch: only once a run is starting

    device = resolve_device(cfg.trainer.device)  # cuda on a machine without: refused here
    check_precision(cfg.trainer.precision, device.type)
    if cfg.data.streaming is True and not cfg.data.cache:
        raise ConfigError(
            "data.streaming=true reads batches from the prepared-data cache; set data.cache=true"
        )
    if cfg.data.streaming is True and getattr(cfg.dataset, "missing", None) == "ffill":
        raise ConfigError(
            "dataset.missing=ffill needs the whole table in memory; with data.streaming=true"
            " use error or drop"
        )
    if cfg.logger.name == "tensorboard":
        require_package("tensorboard", "logger=tensorboard", extra="tensorboard")
    return cfg, task


def loss_for_task(values: dict[str, Any], command_line: list[str]) -> dict[str, Any]:
    """A dataset preset picks the loss of its usual task; when the task is changed
    (`dataset=csv_sequences dataset.task=regression`) and the command line names no loss,
    the loss follows the task instead of refusing it."""
    dataset = values.get("dataset") or {}
    named = any(override.split("=", 1)[0].lstrip("+") == "loss" for override in command_line)
    try:
        task = task_of_dataset(dataset.get("kind", ""), dataset.get("task"))
    except ValueError:  # no such kind: the schema check names it
        return values
    if named or (values.get("loss") or {}).get("name") in losses_for(task):
        return values
    return {**values, "loss": composed("train", [f"loss={usual_loss(task)}"])["loss"]}


def validate_export_config(values: dict[str, Any]) -> ExportConfig:
    """The typed export config; ONNX files are written by the `onnx` package."""
    cfg = build(ExportConfig, values)
    if cfg.format == "onnx":
        require_package("onnx", "format=onnx", extra="export")
    return cfg


def require_package(module: str, setting: str, extra: str) -> None:
    """Before any work: a setting that needs an optional package says how to install it."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{setting} needs the {module} package: pip install 'lstm-train[{extra}]'"
        ) from None


def check_model(model: ModelConfig) -> None:
    """Pooling names each kind once; an odd kernel keeps a sequence's length (stride 1)."""
    pooling = model.pooling_kinds()
    if not pooling or len(set(pooling)) != len(pooling):
        raise ConfigError(
            f"model.pooling={pooling}: name one or more of last, mean, max, attention, once each"
        )
    if model.conv_layers and model.conv_kernel % 2 == 0:
        raise ConfigError(
            f"model.conv_kernel={model.conv_kernel} must be odd, so that the convolutions"
            " keep each sequence's steps aligned"
        )


def check_tbptt(cfg: TrainConfig, task: Task) -> None:
    """trainer.tbptt carries the LSTM's state forward in time: one direction only, and not
    for forecasting, whose samples are windows of dataset.window steps already."""
    if cfg.trainer.tbptt is None:
        return
    if cfg.model.bidirectional:
        raise ConfigError(
            f"trainer.tbptt={cfg.trainer.tbptt} carries the state forward in time; the"
            " backward direction of model.bidirectional=true reads each sequence from its"
            " end: set one of them off"
        )
    if task == "forecasting":
        raise ConfigError(
            f"trainer.tbptt={cfg.trainer.tbptt}: a forecaster reads windows of"
            " dataset.window steps, which bound its backpropagation already; set"
            " dataset.window instead"
        )


def check_augment(cfg: TrainConfig, task: Task) -> None:
    """Augmentation changes classification batches only (a regression target may hang on
    amplitude and position, a forecast on alignment): on another task it would do nothing."""
    changed = cfg.augment.changes()
    if task != "classification" and changed:
        key, value = next(iter(changed.items()))
        raise ConfigError(
            f"augment.{key}={value} changes classification batches only, and"
            f" dataset={cfg.dataset.name} is a {task} task: leave augment (and recipe=shapes)"
            " to classification"
        )


def check_precision(precision: str, device_type: str) -> None:
    """float16 needs CUDA: the CPU's LSTM kernel (oneDNN) has no float16 version, and its
    bfloat16 one needs AVX-512 or AMX (on a CPU without, every LSTM call fails)."""
    if precision == "16-mixed" and device_type == "cpu":
        raise ConfigError(
            f"trainer.precision=16-mixed needs a CUDA device, and this run would train on the"
            f" {device_type}; use trainer.precision=bf16-mixed or 32"
        )
    if precision != "bf16-mixed" or device_type != "cpu":
        return
    from lstm_cli.common.runtime import cpu_runs_bfloat16  # torch: only once a run is starting

    if not cpu_runs_bfloat16():
        raise ConfigError(
            "trainer.precision=bf16-mixed: this CPU has no bfloat16 LSTM kernel (oneDNN"
            " needs AVX-512 or AMX); use trainer.precision=32"
        )


def check_monitor(monitor: str, mode: str, task: Task) -> None:
    """The monitored metric must be one the task reports, optimised in the right direction."""
    valid = [f"val/{name}" for name in METRICS[task]]
    if monitor not in valid:
        raise ConfigError(
            f"trainer.monitor={monitor} is not reported for the {task} task;"
            f" choose one of: {', '.join(valid)}"
        )
    wants_max = monitor.split("/", 1)[1] in HIGHER_IS_BETTER
    if wants_max != (mode == "max"):
        raise ConfigError(
            f"trainer.mode={mode} does not fit trainer.monitor={monitor};"
            f" set trainer.mode={'max' if wants_max else 'min'}"
        )
