"""Typed schemas of every config group; `validate.py` checks a composed config against them.

Types and ranges only: every value, default included, lives in the YAML under conf/ (one
source), so a key missing from a composed config is an error, never a silent fallback.
A field's `metadata` holds its range (`ge`, `gt`, `le`, `lt`); `Literal` types list the
allowed choices. Groups whose options take different keys (optimizer, loss, clip, scheduler,
dataset) have one dataclass per option, picked by the option's `name` or `kind`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lstm_cli.config.dataset_schema import DATASETS, bounded

Device = Literal["auto", "cpu", "cuda", "mps"]
Pooling = Literal["last", "mean", "max", "attention"]


# --- model -------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    hidden_size: int = bounded(ge=1)
    num_layers: int = bounded(ge=1)
    bidirectional: bool
    dropout: float = bounded(ge=0.0, lt=1.0)
    embedding_dim: int = bounded(ge=1)
    pooling: Pooling | list[Pooling]
    forget_bias: float | None
    conv_layers: int = bounded(ge=0)
    conv_channels: int = bounded(ge=1)
    conv_kernel: int = bounded(ge=1)
    max_lstm_steps: int | None = bounded(ge=1)

    def pooling_kinds(self) -> list[str]:
        """`pooling` as a list: `mean` -> [mean]; [mean, max] stays."""
        return [self.pooling] if isinstance(self.pooling, str) else list(self.pooling)


# --- optimizer ---------------------------------------------------------------------------
@dataclass
class AdamConfig:
    name: Literal["adam", "adamw"]
    lr: float = bounded(gt=0.0)
    weight_decay: float = bounded(ge=0.0)
    betas: tuple[float, float]
    eps: float = bounded(gt=0.0)


@dataclass
class SGDConfig:
    name: Literal["sgd"]
    lr: float = bounded(gt=0.0)
    weight_decay: float = bounded(ge=0.0)
    momentum: float = bounded(ge=0.0, lt=1.0)
    nesterov: bool


@dataclass
class RMSpropConfig:
    name: Literal["rmsprop"]
    lr: float = bounded(gt=0.0)
    weight_decay: float = bounded(ge=0.0)
    alpha: float = bounded(gt=0.0, lt=1.0)
    momentum: float = bounded(ge=0.0, lt=1.0)
    eps: float = bounded(gt=0.0)


OPTIMIZERS: dict[str, type] = {
    "adam": AdamConfig,
    "adamw": AdamConfig,
    "sgd": SGDConfig,
    "rmsprop": RMSpropConfig,
}


# --- loss --------------------------------------------------------------------------------
@dataclass
class RegressionLossConfig:
    name: Literal["mse", "l1"]


@dataclass
class HuberLossConfig:
    name: Literal["huber"]
    delta: float = bounded(gt=0.0)


@dataclass
class CrossEntropyLossConfig:
    name: Literal["cross_entropy"]
    label_smoothing: float = bounded(ge=0.0, lt=1.0)


LOSSES: dict[str, type] = {
    "mse": RegressionLossConfig,
    "l1": RegressionLossConfig,
    "huber": HuberLossConfig,
    "cross_entropy": CrossEntropyLossConfig,
}


# --- gradient clipping -------------------------------------------------------------------
@dataclass
class ClipNormConfig:
    name: Literal["norm"]
    max_norm: float = bounded(gt=0.0)


@dataclass
class ClipValueConfig:
    name: Literal["value"]
    clip_value: float = bounded(gt=0.0)


@dataclass
class NoClipConfig:
    name: Literal["none"]


CLIPS: dict[str, type] = {"norm": ClipNormConfig, "value": ClipValueConfig, "none": NoClipConfig}


# --- learning-rate scheduler -------------------------------------------------------------
@dataclass
class NoSchedulerConfig:
    name: Literal["none"]


@dataclass
class PlateauSchedulerConfig:
    name: Literal["plateau"]
    factor: float = bounded(gt=0.0, lt=1.0)
    patience: int = bounded(ge=0)
    min_lr: float = bounded(ge=0.0)


@dataclass
class CosineSchedulerConfig:
    name: Literal["cosine"]
    t_max: int | None = bounded(ge=1)
    eta_min: float = bounded(ge=0.0)


@dataclass
class OneCycleSchedulerConfig:
    name: Literal["onecycle"]
    steps: int | None = bounded(ge=1)
    warmup: float = bounded(ge=0.0, lt=1.0)
    peak: float = bounded(ge=1.0)


@dataclass
class StepSchedulerConfig:
    name: Literal["step"]
    step_size: int = bounded(ge=1)
    gamma: float = bounded(gt=0.0, le=1.0)


SCHEDULERS: dict[str, type] = {
    "none": NoSchedulerConfig,
    "plateau": PlateauSchedulerConfig,
    "cosine": CosineSchedulerConfig,
    "step": StepSchedulerConfig,
    "onecycle": OneCycleSchedulerConfig,
}


# --- trainer and batching ----------------------------------------------------------------
@dataclass
class TrainerConfig:
    max_epochs: int = bounded(ge=1)
    batch_size: int = bounded(ge=1)
    seed: int = bounded(ge=0)
    device: Device
    num_threads: int = bounded(ge=0)
    monitor: str
    mode: Literal["min", "max"]
    patience: int | None = bounded(ge=1)
    min_steps: int | None = bounded(ge=0)
    min_delta: float = bounded(ge=0.0)
    checkpoint_every_steps: int = bounded(ge=0)
    on_nonfinite: Literal["stop", "skip_batch"]
    precision: Literal["32", "bf16-mixed", "16-mixed"]
    tbptt: int | None = bounded(ge=1)
    refit: bool | Literal["average"]
    log_every_epochs: int = bounded(ge=1)


@dataclass
class DataConfig:
    packed: bool
    bucket: bool
    on_device: Literal["auto", "always", "never"]
    cache: bool
    cache_dir: str | None
    streaming: bool | Literal["auto"]


@dataclass
class AugmentConfig:
    scale: float = bounded(ge=0.0)
    crop: float = bounded(gt=0.0, le=1.0)
    warp: float | None = bounded(ge=0.0)
    mixup: float | None = bounded(ge=0.0)

    def changes(self) -> dict[str, float]:
        """The keys set to change batches, with their values (0, null (auto: settled once
        the data is loaded) or a crop of 1: off)."""
        on = {
            "scale": self.scale > 0,
            "crop": self.crop < 1,
            "warp": bool(self.warp),
            "mixup": bool(self.mixup),
        }
        return {key: getattr(self, key) for key, changing in on.items() if changing}

    def active(self) -> bool:
        return bool(self.changes())


@dataclass
class SearchConfig:
    trials: int = bounded(ge=1)


@dataclass
class CsvLoggerConfig:
    name: Literal["csv"]


@dataclass
class TensorBoardLoggerConfig:
    name: Literal["tensorboard"]
    every_steps: int = bounded(ge=1)


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
    augment: AugmentConfig
    logger: Any
    plots: bool
    hparams_search: SearchConfig | None
    resume: str | None
    output_root: str


@dataclass
class TrainedRunConfig:
    """Which trained model a command reads (evaluate, predict, export)."""

    run_dir: str | None
    checkpoint: str | None
    which: Literal["best", "last"]
    output_root: str


@dataclass
class InferenceConfig(TrainedRunConfig):
    """evaluate and predict also run the model: in batches of this size, on this device."""

    batch_size: int = bounded(ge=1)
    device: Device


@dataclass
class EvaluateConfig(InferenceConfig):
    split: Literal["train", "val", "test"]
    input: str | None


@dataclass
class PredictOptions:
    steps: int | None = bounded(ge=1)
    prompt: str
    length: int = bounded(ge=1)
    temperature: float = bounded(gt=0.0)
    seed: int = bounded(ge=0)
    overwrite: bool
    plot: bool


@dataclass
class PredictConfig(InferenceConfig):
    input: str | None
    output: str | None
    predict: PredictOptions


@dataclass
class ExportConfig(TrainedRunConfig):
    format: Literal["onnx", "torchscript"]
    output: str | None
    overwrite: bool
    tolerance: float = bounded(gt=0.0)


@dataclass
class ReportConfig:
    dir: str
    format: Literal["table", "csv", "json"]


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
