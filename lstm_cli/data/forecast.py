"""`csv_forecast`: one CSV of time series in columns, cut into (window -> horizon) samples.

The last `test_size` steps are the test part and the `val_size` before them validation;
a sample belongs to the part its targets fall in (its inputs may reach back, as they would
at forecast time). The transform and the scaler are fitted on the training part only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lstm_cli.config.schema import ForecastDatasetConfig
from lstm_cli.data.files import CsvTable, resolve_path
from lstm_cli.data.scaling import Scaler
from lstm_cli.data.splits import PreparedData, WindowSplit
from lstm_cli.data.timeindex import TimeIndex
from lstm_cli.errors import DataError


def target_columns(cfg: ForecastDatasetConfig) -> list[str]:
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target or [])
    if not targets or not all(isinstance(t, str) for t in targets):
        raise DataError(f"dataset.target={cfg.target!r}: name one column or a list of columns")
    return targets


def read_series(
    path: Any, columns: list[str], time_column: str | None, key: str
) -> tuple[Tensor, TimeIndex | None]:
    """The named columns of a CSV as a [steps, columns] tensor, and its time stamps."""
    table = CsvTable.read(path)
    values = torch.tensor([table.numbers(c, key) for c in columns], dtype=torch.float64).T
    stamps = None
    if time_column:
        where = f"{path}, column {time_column!r}"
        stamps = TimeIndex.parse(table.strings(time_column, "dataset.time_column"), where)
    return values, stamps


def encode(values: Tensor, state: dict[str, Any], where: str) -> Tensor:
    """Raw values -> model units: the transform, then the fitted scaler."""
    if state["transform"] == "log":
        bad = (values <= 0).nonzero()
        if len(bad):
            step, column = bad[0].tolist()
            raise DataError(
                f"{where}, line {step + 2}, column {state['columns'][column]!r}: transform=log"
                f" needs positive values, got {values[step, column].item():g}"
            )
        values = values.log()
    return Scaler(**state["scaler"]).transform(values)


def decode_targets(targets: Tensor, state: dict[str, Any]) -> Tensor:
    """Model units -> original units for target values [..., n_targets]."""
    target_index = [state["columns"].index(t) for t in state["targets"]]
    values = Scaler(**state["scaler"]).select(target_index).inverse(targets)
    return values.exp() if state["transform"] == "log" else values


def prepare(cfg: ForecastDatasetConfig, fitted: dict[str, Any] | None) -> PreparedData:
    """Read, split, fit (unless `fitted` preprocessing is given) and window the series."""
    targets = target_columns(cfg)
    columns = targets + [c for c in cfg.covariates if c not in targets]
    path = resolve_path(cfg.path, "dataset.path")
    values, _stamps = read_series(path, columns, cfg.time_column, "dataset.target")
    steps = len(values)
    train_end = steps - cfg.test_size - cfg.val_size
    if train_end < cfg.window + cfg.horizon:
        raise DataError(
            f"{path}: {steps} time steps are too few for window={cfg.window} +"
            f" horizon={cfg.horizon} of training plus val_size={cfg.val_size} and"
            f" test_size={cfg.test_size}"
        )
    state = fitted or {
        "kind": "csv_forecast",
        "columns": columns,
        "targets": targets,
        "time_column": cfg.time_column,
        "window": cfg.window,
        "horizon": cfg.horizon,
        "transform": cfg.transform,
        "scaler": {"kind": "none", "offset": [0.0] * len(columns), "scale": [1.0] * len(columns)},
    }
    if fitted is None:
        train_part = encode(values[:train_end], state, str(path))
        state["scaler"] = Scaler.fit(cfg.scaler, train_part).to_dict()
    series = encode(values, state, str(path)).float()
    target_index = [columns.index(t) for t in targets]

    def windows(first_target: int, last_target: int) -> WindowSplit:
        first_start = max(first_target - cfg.window, 0)
        last_start = last_target - cfg.window - cfg.horizon
        return WindowSplit(
            inputs=series,
            targets=series[:, target_index],
            starts=torch.arange(first_start, last_start + 1),
            window=cfg.window,
            target_offset=cfg.window,
            target_length=cfg.horizon,
            flatten_targets=True,
        )

    return PreparedData(
        task="forecasting",
        train=windows(0, train_end),
        val=windows(train_end, train_end + cfg.val_size),
        test=windows(steps - cfg.test_size, steps),
        input_size=len(columns),
        output_size=cfg.horizon * len(targets),
        token_input=False,
        preprocessing=state,
        to_original=lambda y: decode_targets(y.reshape(len(y), -1, len(targets)), state).reshape(
            len(y), -1
        ),
    )
