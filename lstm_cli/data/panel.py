"""`csv_forecast` with `id_column`: many series in one long-format file, one global model.

Rows are `id, [time], target(s), [covariates]`; each series keeps its rows in file order
(the time column, when given, must increase within each series). Every series is split
like a single one (its last `test_size` steps are test, the `val_size` before them
validation) and cut into windows that never cross into another series: a window's inputs
are the up to `window` steps before its targets, fewer near a series' start, so short
series still train. The transform and scaler are fitted on all series' training parts;
with `transform: [log, diff]` (what `auto` picks for positive data) every window is read
relative to its own last value in logs, so series of any level look alike to the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lstm_cli.common.errors import DataError
from lstm_cli.config.dataset_schema import ForecastDatasetConfig
from lstm_cli.data.files import resolve_path
from lstm_cli.data.forecast import (
    Windowing,
    encode,
    identity_scaler,
    naive_scale,
    relative_reading,
    resolve_auto,
    target_columns,
    targets_to_original,
)
from lstm_cli.data.missing import forward_fill, read_columns
from lstm_cli.data.scaling import Scaler
from lstm_cli.data.splits import PanelWindowSplit, PreparedData
from lstm_cli.data.table import Table
from lstm_cli.data.timeindex import TimeIndex


@dataclass
class Series:
    """One series of a panel: its id, values [steps, columns] and time stamps."""

    id: str
    values: Tensor
    stamps: TimeIndex | None


def read_panel(path: Path, state: dict[str, Any], key: str) -> list[Series]:
    """The state's columns of a long-format CSV, one `Series` per id, in order of first
    appearance; missing cells follow `state["missing"]`, never filled across series."""
    table, values = read_columns(
        Table.read(path, text=(state["id_column"], state["time_column"])),
        state["columns"],
        key,
        state["missing"],
    )
    series_of_row, ids = table.codes(state["id_column"], "dataset.id_column")
    order = np.argsort(series_of_row, kind="stable")  # by series, each in file order
    sizes = torch.from_numpy(np.bincount(series_of_row, minlength=len(ids)))
    ordered = values[torch.from_numpy(order)]
    filled = forward_fill(ordered, lambda n: table.where(int(order[n])), sizes)
    stamps_column = state["time_column"]
    stamps = table.strings(stamps_column, "dataset.time_column") if stamps_column else None
    panel, first = [], 0
    for series_id, size in zip(ids, sizes.tolist(), strict=True):
        rows = order[first : first + size]
        index = None
        if stamps is not None:
            index = TimeIndex.parse(
                [stamps[row] for row in rows],
                stamps_column,
                lambda n, r=rows: table.where(r[n]),
                state.get("time_format"),
            )
        panel.append(Series(series_id, filled[first : first + size], index))
        first += size
    return panel


def prepare(cfg: ForecastDatasetConfig, fitted: dict[str, Any] | None) -> PreparedData:
    """Read the panel named by the config, split every series three ways, fit the
    preprocessing on all training parts, and window each split."""
    state = fitted or new_state(cfg)
    path = resolve_path(cfg.path, "dataset.path")
    panel = read_panel(path, state, "dataset.target")
    cut = Windowing.of(cfg)
    where = str(path)
    held_out = cut.val_size + cut.test_size
    short = [s.id for s in panel if len(s.values) <= held_out]
    if short:
        raise DataError(
            f"{where}: series {', '.join(short[:5])} have no more than val_size + test_size"
            f" = {held_out} steps, so no step is left to forecast from"
        )
    target_index = [state["columns"].index(t) for t in state["targets"]]
    if fitted is None:
        first_stamps = panel[0].stamps
        state["season"] = cfg.season or (first_stamps.season() if first_stamps else 1)
        everything = torch.cat([s.values for s in panel])
        transform = resolve_auto(cut.transform, everything, state["season"], cut.window)
        state |= {"window": cut.window, "horizon": cut.horizon, "transform": transform}
        train_parts = [s.values[: len(s.values) - held_out] for s in panel]
        state["scaler"] = identity_scaler(everything.shape[1])
        train_values = encode(torch.cat(train_parts), state, where)
        state["scaler"] = Scaler.fit(cut.scaler, train_values, state["columns"]).to_dict()
        state["naive_scale"] = naive_scale(
            [p[:, target_index] for p in train_parts], state["season"]
        )
    series = torch.cat([encode(s.values, state, f"{where}, series {s.id}") for s in panel]).float()
    splits = _windows(panel, series, series[:, target_index], state, cut)
    return PreparedData(
        task="forecasting",
        **splits,
        input_size=series.shape[1],
        output_size=state["horizon"] * len(target_index),
        token_input=False,
        preprocessing=state,
        to_original=targets_to_original(state),
        **relative_reading(state, target_index, where),
    )


def new_state(cfg: ForecastDatasetConfig) -> dict[str, Any]:
    targets = target_columns(cfg.target)
    return {
        "kind": "csv_forecast",
        "columns": targets + [c for c in cfg.covariates if c not in targets],
        "targets": targets,
        "id_column": cfg.id_column,
        "time_column": cfg.time_column,
        "time_format": cfg.time_format,
        "missing": cfg.missing,
    }


def _windows(
    panel: list[Series], inputs: Tensor, targets: Tensor, state: dict[str, Any], cut: Windowing
) -> dict[str, PanelWindowSplit]:
    """Every window of each split: targets within the split's part of their own series."""
    window, horizon = state["window"], state["horizon"]
    held_out = cut.val_size + cut.test_size
    parts: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "test": []}
    first = 0
    for s in panel:
        steps = len(s.values)
        train_end = steps - held_out
        bounds = {
            "train": (1, train_end),
            "val": (train_end, train_end + cut.val_size),
            "test": (steps - cut.test_size, steps),
        }
        for name, (first_target, end) in bounds.items():
            parts[name] += [(first, first + t) for t in range(first_target, end - horizon + 1)]
        first += steps
    splits = {}
    for name, pairs in parts.items():
        series_first = torch.tensor([f for f, _ in pairs], dtype=torch.long)
        first_target = torch.tensor([t for _, t in pairs], dtype=torch.long)
        starts = torch.maximum(first_target - window, series_first)
        splits[name] = PanelWindowSplit(
            inputs, targets, starts, first_target - starts, series_first, horizon
        )
    return splits
