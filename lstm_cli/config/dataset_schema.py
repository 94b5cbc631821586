"""Typed schemas of the dataset kinds (the `dataset` group, picked by `kind`).

Types and ranges only, like `schema.py`: the values live in conf/dataset/*.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Scaler = Literal["standard", "minmax", "none"]
Transform = Literal["auto", "none", "log", "diff", "seasonal_diff"]
Missing = Literal["error", "drop", "ffill"]


def bounded(**bounds: float) -> Any:
    """A dataclass field with range bounds (ge, gt, le, lt) and no default."""
    return field(metadata=bounds)


# --- datasets ----------------------------------------------------------------------------
@dataclass
class ForecastDatasetConfig:
    kind: Literal["csv_forecast"]
    name: str
    path: str
    target: Any
    covariates: list[str]
    id_column: str | None
    time_column: str | None
    time_format: str | None
    season: int | None = bounded(ge=1)
    window: int = bounded(ge=1)
    horizon: int = bounded(ge=1)
    val_size: int = bounded(ge=1)
    test_size: int = bounded(ge=1)
    scaler: Scaler
    transform: Transform | list[Literal["log", "diff", "seasonal_diff"]]
    missing: Missing


@dataclass
class SequenceDatasetConfig:
    kind: Literal["csv_sequences"]
    name: str
    path: str
    test_path: str | None
    id_column: str
    step_column: str | None
    label_column: str
    features: list[str] | None
    task: Literal["classification", "regression"]
    val_fraction: float = bounded(gt=0.0, lt=1.0)
    test_fraction: float = bounded(gt=0.0, lt=1.0)
    split_seed: int = bounded(ge=0)
    scaler: Scaler
    missing: Missing


@dataclass
class TextDatasetConfig:
    kind: Literal["text"]
    name: str
    path: str
    val_path: str | None
    test_path: str | None
    val_fraction: float = bounded(gt=0.0, lt=1.0)
    test_fraction: float = bounded(gt=0.0, lt=1.0)
    seq_len: int = bounded(ge=2)


@dataclass
class NpzDatasetConfig:
    kind: Literal["npz"]
    name: str
    path: str
    test_path: str | None
    task: Literal["classification", "regression"]
    val_fraction: float = bounded(gt=0.0, lt=1.0)
    test_fraction: float = bounded(gt=0.0, lt=1.0)
    split_seed: int = bounded(ge=0)
    scaler: Scaler


@dataclass
class SineDatasetConfig:
    kind: Literal["sine"]
    name: str
    length: int = bounded(ge=10)
    period: float = bounded(gt=0.0)
    noise: float = bounded(ge=0.0)
    window: int = bounded(ge=1)
    horizon: int = bounded(ge=1)
    val_size: int = bounded(ge=1)
    test_size: int = bounded(ge=1)
    scaler: Scaler
    transform: Transform | list[Literal["log", "diff", "seasonal_diff"]]
    seed: int = bounded(ge=0)


@dataclass
class AddingDatasetConfig:
    kind: Literal["adding"]
    name: str
    seq_len: int = bounded(ge=2)
    train_size: int = bounded(ge=10)
    val_size: int = bounded(ge=1)
    test_size: int = bounded(ge=1)
    seed: int = bounded(ge=0)


DATASETS: dict[str, type] = {
    "csv_forecast": ForecastDatasetConfig,
    "csv_sequences": SequenceDatasetConfig,
    "text": TextDatasetConfig,
    "npz": NpzDatasetConfig,
    "sine": SineDatasetConfig,
    "adding": AddingDatasetConfig,
}
