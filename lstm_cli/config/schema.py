"""Typed schemas of every config group; `validate.py` checks a composed config against them.

A field's `metadata` holds its range (`ge`, `gt`, `le`, `lt`); `Literal` types list the
allowed choices. Groups whose options take different keys (optimizer, loss, clip, scheduler,
dataset) have one dataclass per option, picked by the option's `name` or `kind`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Scaler = Literal["standard", "minmax", "none"]
Transform = Literal["auto", "none", "log", "diff"]
Missing = Literal["error", "drop", "ffill"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Pooling = Literal["last", "mean", "max", "attention"]


def bounded(default: Any, **bounds: float) -> Any:
    """A dataclass field with a default and range bounds (ge, gt, le, lt)."""
    return field(default=default, metadata=bounds)


# --- model -------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    hidden_size: int = bounded(64, ge=1)
    num_layers: int = bounded(1, ge=1)
    bidirectional: bool = False
    dropout: float = bounded(0.0, ge=0.0, lt=1.0)
    embedding_dim: int = bounded(32, ge=1)
    pooling: Pooling | list[Pooling] = field(default_factory=lambda: ["mean", "max", "last"])
    forget_bias: float | None = None
    conv_layers: int = bounded(3, ge=0)
    conv_channels: int = bounded(64, ge=1)
    conv_kernel: int = bounded(7, ge=1)
    max_lstm_steps: int | None = bounded(128, ge=1)

    def pooling_kinds(self) -> list[str]:
        """`pooling` as a list: `mean` -> [mean]; [mean, max] stays."""
        return [self.pooling] if isinstance(self.pooling, str) else list(self.pooling)


# --- optimizer ---------------------------------------------------------------------------
@dataclass
class AdamConfig:
    name: Literal["adam", "adamw"] = "adam"
    lr: float = bounded(1e-3, gt=0.0)
    weight_decay: float = bounded(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = bounded(1e-8, gt=0.0)


@dataclass
class SGDConfig:
    name: Literal["sgd"] = "sgd"
    lr: float = bounded(0.1, gt=0.0)
    weight_decay: float = bounded(0.0, ge=0.0)
    momentum: float = bounded(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True


@dataclass
class RMSpropConfig:
    name: Literal["rmsprop"] = "rmsprop"
    lr: float = bounded(1e-3, gt=0.0)
    weight_decay: float = bounded(0.0, ge=0.0)
    alpha: float = bounded(0.99, gt=0.0, lt=1.0)
    momentum: float = bounded(0.0, ge=0.0, lt=1.0)
    eps: float = bounded(1e-8, gt=0.0)


OPTIMIZERS: dict[str, type] = {
    "adam": AdamConfig,
    "adamw": AdamConfig,
    "sgd": SGDConfig,
    "rmsprop": RMSpropConfig,
}


# --- loss --------------------------------------------------------------------------------
@dataclass
class RegressionLossConfig:
    name: Literal["mse", "l1"] = "mse"


@dataclass
class HuberLossConfig:
    name: Literal["huber"] = "huber"
    delta: float = bounded(1.0, gt=0.0)


@dataclass
class CrossEntropyLossConfig:
    name: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: float = bounded(0.0, ge=0.0, lt=1.0)


LOSSES: dict[str, type] = {
    "mse": RegressionLossConfig,
    "l1": RegressionLossConfig,
    "huber": HuberLossConfig,
    "cross_entropy": CrossEntropyLossConfig,
}


# --- gradient clipping -------------------------------------------------------------------
@dataclass
class ClipNormConfig:
    name: Literal["norm"] = "norm"
    max_norm: float = bounded(1.0, gt=0.0)


@dataclass
class ClipValueConfig:
    name: Literal["value"] = "value"
    clip_value: float = bounded(1.0, gt=0.0)


@dataclass
class NoClipConfig:
    name: Literal["none"] = "none"


CLIPS: dict[str, type] = {"norm": ClipNormConfig, "value": ClipValueConfig, "none": NoClipConfig}


# --- learning-rate scheduler -------------------------------------------------------------
@dataclass
class NoSchedulerConfig:
    name: Literal["none"] = "none"


@dataclass
class PlateauSchedulerConfig:
    name: Literal["plateau"] = "plateau"
    factor: float = bounded(0.5, gt=0.0, lt=1.0)
    patience: int = bounded(3, ge=0)
    min_lr: float = bounded(0.0, ge=0.0)


@dataclass
class CosineSchedulerConfig:
    name: Literal["cosine"] = "cosine"
    t_max: int | None = bounded(None, ge=1)
    eta_min: float = bounded(0.0, ge=0.0)


@dataclass
class StepSchedulerConfig:
    name: Literal["step"] = "step"
    step_size: int = bounded(10, ge=1)
    gamma: float = bounded(0.5, gt=0.0, le=1.0)


SCHEDULERS: dict[str, type] = {
    "none": NoSchedulerConfig,
    "plateau": PlateauSchedulerConfig,
    "cosine": CosineSchedulerConfig,
    "step": StepSchedulerConfig,
}


# --- datasets ----------------------------------------------------------------------------
@dataclass
class ForecastDatasetConfig:
    kind: Literal["csv_forecast"] = "csv_forecast"
    name: str = "csv_forecast"
    path: str = ""
    target: Any = None
    covariates: list[str] = field(default_factory=list)
    id_column: str | None = None
    time_column: str | None = None
    season: int | None = bounded(None, ge=1)
    window: int = bounded(24, ge=1)
    horizon: int = bounded(1, ge=1)
    val_size: int = bounded(12, ge=1)
    test_size: int = bounded(12, ge=1)
    scaler: Scaler = "standard"
    transform: Transform | list[Literal["log", "diff"]] = "auto"
    missing: Missing = "error"


@dataclass
class SequenceDatasetConfig:
    kind: Literal["csv_sequences"] = "csv_sequences"
    name: str = "csv_sequences"
    path: str = ""
    test_path: str | None = None
    id_column: str = "series_id"
    step_column: str | None = "auto"
    label_column: str = "label"
    features: list[str] | None = None
    task: Literal["classification", "regression"] = "classification"
    val_fraction: float = bounded(0.2, gt=0.0, lt=1.0)
    test_fraction: float = bounded(0.2, gt=0.0, lt=1.0)
    split_seed: int = bounded(0, ge=0)
    scaler: Scaler = "standard"
    missing: Missing = "error"


@dataclass
class TextDatasetConfig:
    kind: Literal["text"] = "text"
    name: str = "text"
    path: str = ""
    val_path: str | None = None
    test_path: str | None = None
    val_fraction: float = bounded(0.1, gt=0.0, lt=1.0)
    test_fraction: float = bounded(0.1, gt=0.0, lt=1.0)
    seq_len: int = bounded(100, ge=2)


@dataclass
class NpzDatasetConfig:
    kind: Literal["npz"] = "npz"
    name: str = "npz"
    path: str = ""
    test_path: str | None = None
    task: Literal["classification", "regression"] = "classification"
    val_fraction: float = bounded(0.2, gt=0.0, lt=1.0)
    test_fraction: float = bounded(0.2, gt=0.0, lt=1.0)
    split_seed: int = bounded(0, ge=0)
    scaler: Scaler = "standard"


@dataclass
class SineDatasetConfig:
    kind: Literal["sine"] = "sine"
    name: str = "sine"
    length: int = bounded(2000, ge=10)
    period: float = bounded(50.0, gt=0.0)
    noise: float = bounded(0.1, ge=0.0)
    window: int = bounded(50, ge=1)
    horizon: int = bounded(10, ge=1)
    val_size: int = bounded(200, ge=1)
    test_size: int = bounded(200, ge=1)
    scaler: Scaler = "standard"
    transform: Transform | list[Literal["log", "diff"]] = "none"
    seed: int = bounded(0, ge=0)


@dataclass
class AddingDatasetConfig:
    kind: Literal["adding"] = "adding"
    name: str = "adding"
    seq_len: int = bounded(100, ge=2)
    train_size: int = bounded(10000, ge=10)
    val_size: int = bounded(1000, ge=1)
    test_size: int = bounded(1000, ge=1)
    seed: int = bounded(0, ge=0)


DATASETS: dict[str, type] = {
    "csv_forecast": ForecastDatasetConfig,
    "csv_sequences": SequenceDatasetConfig,
    "text": TextDatasetConfig,
    "npz": NpzDatasetConfig,
    "sine": SineDatasetConfig,
    "adding": AddingDatasetConfig,
}


# --- trainer and batching ----------------------------------------------------------------
@dataclass
class TrainerConfig:
    max_epochs: int = bounded(20, ge=1)
    batch_size: int = bounded(32, ge=1)
    seed: int = bounded(0, ge=0)
    device: Device = "auto"
    num_threads: int = bounded(0, ge=0)
    monitor: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    patience: int | None = bounded(None, ge=1)
    min_steps: int = bounded(1000, ge=0)
    min_delta: float = bounded(0.0, ge=0.0)
    checkpoint_every_steps: int = bounded(0, ge=0)
    on_nonfinite: Literal["stop", "skip_batch"] = "stop"
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"


@dataclass
class DataConfig:
    packed: bool = False
    bucket: bool = True
    on_device: Literal["auto", "always", "never"] = "auto"


@dataclass
class SearchConfig:
    trials: int = bounded(20, ge=1)


@dataclass
class CsvLoggerConfig:
    name: Literal["csv"] = "csv"


@dataclass
class TensorBoardLoggerConfig:
    name: Literal["tensorboard"] = "tensorboard"
    every_steps: int = bounded(10, ge=1)


LOGGERS: dict[str, type] = {"csv": CsvLoggerConfig, "tensorboard": TensorBoardLoggerConfig}


@dataclass
class TrainConfig:
    dataset: Any
    model: ModelConfig
    optimizer: Any
    loss: Any
    clip: Any
    scheduler: Any
    trainer: TrainerConfig
    data: DataConfig
    logger: Any = field(default_factory=CsvLoggerConfig)
    hparams_search: SearchConfig | None = None
    resume: str | None = None
    output_root: str = "outputs"


@dataclass
class TrainedRunConfig:
    """Which trained model a command reads (evaluate, predict, export)."""

    run_dir: str | None = None
    checkpoint: str | None = None
    which: Literal["best", "last"] = "best"
    output_root: str = "outputs"


@dataclass
class InferenceConfig(TrainedRunConfig):
    """evaluate and predict also run the model: in batches of this size, on this device."""

    batch_size: int = bounded(256, ge=1)
    device: Device = "auto"


@dataclass
class EvaluateConfig(InferenceConfig):
    split: Literal["train", "val", "test"] = "test"


@dataclass
class PredictOptions:
    steps: int | None = bounded(None, ge=1)
    prompt: str = ""
    length: int = bounded(200, ge=1)
    temperature: float = bounded(1.0, gt=0.0)
    seed: int = bounded(0, ge=0)
    overwrite: bool = False
    plot: bool = True


@dataclass
class PredictConfig(InferenceConfig):
    input: str | None = None
    output: str | None = None
    predict: PredictOptions = field(default_factory=PredictOptions)


@dataclass
class ExportConfig(TrainedRunConfig):
    format: Literal["onnx", "torchscript"] = "onnx"
    output: str | None = None
    overwrite: bool = False
    tolerance: float = bounded(1e-5, gt=0.0)


@dataclass
class ReportConfig:
    dir: str = "outputs"
    format: Literal["table", "csv", "json"] = "table"


# Groups whose schema depends on the chosen option: group -> (selector key, options).
VARIANT_GROUPS: dict[str, tuple[str, dict[str, type]]] = {
    "dataset": ("kind", DATASETS),
    "optimizer": ("name", OPTIMIZERS),
    "loss": ("name", LOSSES),
    "clip": ("name", CLIPS),
    "scheduler": ("name", SCHEDULERS),
    "logger": ("name", LOGGERS),
}


# The typed config of each command.
COMMAND_SCHEMAS: dict[str, type] = {
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "predict": PredictConfig,
    "export": ExportConfig,
    "report": ReportConfig,
}
