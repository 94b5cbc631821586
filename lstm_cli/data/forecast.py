"""`csv_forecast`: one CSV of time series in columns, cut into (window -> horizon) samples.

The last `test_size` steps are the test part and the `val_size` before them validation;
a sample belongs to the part its targets fall in (its inputs may reach back, as they would
at forecast time). The log transform and the scaler are fitted on the training part only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lstm_cli.common.errors import DataError
from lstm_cli.config.dataset_schema import ForecastDatasetConfig, SineDatasetConfig
from lstm_cli.data.files import resolve_path
from lstm_cli.data.missing import forward_fill, read_columns
from lstm_cli.data.scaling import Scaler
from lstm_cli.data.splits import PreparedData, WindowSplit
from lstm_cli.data.table import Table
from lstm_cli.data.timeindex import TimeIndex


@dataclass
class Windowing:
    """How a series is cut into samples and split, whatever produced the series."""

    window: int
    horizon: int
    val_size: int
    test_size: int
    scaler: str
    transform: list[str]

    @classmethod
    def of(cls, cfg: ForecastDatasetConfig | SineDatasetConfig) -> Windowing:
        """The windowing keys of a forecasting dataset config (read or generated)."""
        return cls(
            cfg.window,
            cfg.horizon,
            cfg.val_size,
            cfg.test_size,
            cfg.scaler,
            transforms(cfg.transform),
        )


def target_columns(target: Any) -> list[str]:
    targets = [target] if isinstance(target, str) else list(target or [])
    if not targets or not all(isinstance(t, str) for t in targets):
        raise DataError(f"dataset.target={target!r}: name one column or a list of columns")
    return targets


def transforms(transform: str | list[str]) -> list[str]:
    """`transform` as a list: none -> [], log -> [log], [log, diff] stays, auto -> [auto]."""
    named = [transform] if isinstance(transform, str) else list(transform)
    return [name for name in named if name != "none"]


def resolve_auto(transform: list[str], values: Tensor, season: int, window: int) -> list[str]:
    """`auto`: read every window relative to its last value, in logs when every value is
    positive (a window then reads growth rates, whatever the series' level), and forecast
    changes from last season's values plus the last seasonal change (`seasonal_diff`) when
    the series has a season the window covers."""
    if transform != ["auto"]:
        return transform
    logs = ["log"] if bool((values > 0).all()) else []
    return logs + (["seasonal_diff"] if 1 < season < window else ["diff"])


def relative_reading(state: dict[str, Any], target_index: list[int], where: str) -> dict:
    """PreparedData's `relative_inputs` and `anchor_season` for the state's transform."""
    transform, season = state["transform"], state["season"]
    if "seasonal_diff" in transform:
        if not 1 < season < state["window"]:
            raise DataError(
                f"{where}: transform=seasonal_diff needs a season (dataset.season, or a"
                f" time_column) shorter than dataset.window={state['window']}, got"
                f" season {season}"
            )
        return {"relative_inputs": target_index, "anchor_season": season}
    return {"relative_inputs": target_index if "diff" in transform else [], "anchor_season": 1}


def read_series(path: Path, state: dict[str, Any], key: str) -> tuple[Tensor, TimeIndex | None]:
    """The state's columns of a CSV as a [steps, columns] tensor, and its time stamps."""
    table, values = read_columns(
        Table.read(path, text=(state["time_column"],)), state["columns"], key, state["missing"]
    )
    values = forward_fill(values, table.where)
    stamps = None
    column = state["time_column"]
    if column:
        spelled = table.strings(column, "dataset.time_column")
        stamps = TimeIndex.parse(spelled, column, table.where, state.get("time_format"))
    return values, stamps


def encode(values: Tensor, state: dict[str, Any], where: str) -> Tensor:
    """Raw values -> model units: the log transform if asked, then the fitted scaler.

    (`diff` is not applied here: the network differences its own inputs, see
    `ModelSpec.relative_inputs`, so its outputs stay in level units.)
    """
    if "log" in state["transform"]:
        bad = (values <= 0).nonzero()
        if len(bad):
            step, column = bad[0].tolist()
            raise DataError(
                f"{where}, step {step + 1}, column {state['columns'][column]!r}: transform=log"
                f" needs positive values, got {values[step, column].item():g}"
            )
        values = values.log()
    return Scaler(**state["scaler"]).transform(values)


def decode_targets(targets: Tensor, state: dict[str, Any]) -> Tensor:
    """Model units -> original units for target values [..., n_targets]."""
    target_index = [state["columns"].index(t) for t in state["targets"]]
    values = Scaler(**state["scaler"]).select(target_index).inverse(targets)
    return values.exp() if "log" in state["transform"] else values


def identity_scaler(columns: int) -> dict[str, Any]:
    """The scaler that changes nothing, in force while the real one is being fitted."""
    return Scaler("none", [0.0] * columns, [1.0] * columns).to_dict()


def targets_to_original(state: dict[str, Any]) -> Callable[[Tensor], Tensor]:
    """Flattened [samples, horizon x targets] model outputs -> the data's own units."""
    targets = len(state["targets"])

    def to_original(y: Tensor) -> Tensor:
        per_step = y.reshape(len(y), -1, targets)
        return decode_targets(per_step, state).reshape(len(y), -1)

    return to_original


def naive_scale(train_parts: list[Tensor], season: int) -> float:
    """MASE's denominator: the mean absolute error of the one-step seasonal naive forecast
    (naive without a season) within the training part of each series, pooled."""
    errors = []
    for part in train_parts:
        lag = season if len(part) > season else 1
        errors.append((part[lag:] - part[:-lag]).abs().flatten())
    pooled = torch.cat(errors)
    scale = float(pooled.mean()) if len(pooled) else 0.0
    return scale if scale > 0 else 1.0


def prepare(cfg: ForecastDatasetConfig, fitted: dict[str, Any] | None) -> PreparedData:
    """Read the CSV named by the config and window it (see `prepare_series`)."""
    targets = target_columns(cfg.target)
    state = fitted or {
        "kind": "csv_forecast",
        "columns": targets + [c for c in cfg.covariates if c not in targets],
        "targets": targets,
        "time_column": cfg.time_column,
        "time_format": cfg.time_format,
        "missing": cfg.missing,
    }
    path = resolve_path(cfg.path, "dataset.path")
    values, stamps = read_series(path, state, "dataset.target")
    if fitted is None:
        state["season"] = cfg.season or (stamps.season() if stamps else 1)
    prepared = prepare_series(values, state, Windowing.of(cfg), str(path), fitted is not None)
    return dataclasses.replace(prepared, stamps=stamps)


def prepare_series(
    values: Tensor, state: dict[str, Any], cut: Windowing, where: str, fitted: bool
) -> PreparedData:
    """Split a [steps, columns] series three ways, fit the preprocessing, make the windows."""
    steps = len(values)
    train_end = steps - cut.test_size - cut.val_size
    if train_end < cut.window + cut.horizon:
        raise DataError(
            f"{where}: {steps} time steps are too few for window={cut.window} +"
            f" horizon={cut.horizon} of training plus val_size={cut.val_size} and"
            f" test_size={cut.test_size}"
        )
    target_index = [state["columns"].index(t) for t in state["targets"]]
    if not fitted:
        transform = resolve_auto(cut.transform, values, state["season"], cut.window)
        state |= {"window": cut.window, "horizon": cut.horizon, "transform": transform}
        state["scaler"] = identity_scaler(values.shape[1])
        train_part = encode(values[:train_end], state, where)
        state["scaler"] = Scaler.fit(cut.scaler, train_part, state["columns"]).to_dict()
        state["naive_scale"] = naive_scale([values[:train_end, target_index]], state["season"])
    series = encode(values, state, where).float()
    window, horizon = state["window"], state["horizon"]

    def windows(first_target: int, last_target: int) -> WindowSplit:
        first_start = max(first_target - window, 0)
        last_start = last_target - window - horizon
        return WindowSplit(
            inputs=series,
            targets=series[:, target_index],
            starts=torch.arange(first_start, last_start + 1),
            window=window,
            target_offset=window,
            target_length=horizon,
            flatten_targets=True,
        )

    return PreparedData(
        task="forecasting",
        train=windows(0, train_end),
        val=windows(train_end, train_end + cut.val_size),
        test=windows(steps - cut.test_size, steps),
        input_size=values.shape[1],
        output_size=horizon * len(target_index),
        token_input=False,
        preprocessing=state,
        to_original=targets_to_original(state),
        **relative_reading(state, target_index, where),
    )
