"""The picture evaluate draws of a model on one split, chosen by the task.

Classification: a confusion matrix. Regression: predicted vs actual and the residuals.
Forecasting: the whole series in the data's own units with the train/val/test boundaries
and the model's forecasts over the split, one horizon after another. Language models get
no picture (their metrics say it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
from torch import nn

from lstm_cli.data.splits import PreparedData, Split, WindowSplit
from lstm_cli.reporting import plots
from lstm_cli.training.evaluation import predict_outputs
from lstm_cli.training.metrics import confusion_counts


def plot_split(
    model: nn.Module,
    data: PreparedData,
    name: str,
    batch_size: int,
    device: torch.device,
    run_dir: Path,
) -> Path | None:
    split: Split = getattr(data, name)
    if data.task == "language_model" or not plots.available():
        return None
    outputs = predict_outputs(model, split, batch_size, device)
    targets = split.take(torch.arange(len(split))).y
    if data.task == "classification":
        classes = data.output_size
        counts = confusion_counts(outputs.argmax(-1), targets, classes).view(classes, classes)
        return plots.confusion_matrix(
            counts.tolist(),
            data.preprocessing["classes"],
            run_dir / "confusion_matrix.png",
        )
    to_original = data.to_original or (lambda y: y)
    if data.task == "regression":
        return plots.regression_fit(
            to_original(outputs.double()).flatten().tolist(),
            to_original(targets.double()).flatten().tolist(),
            run_dir / "fit.png",
        )
    if not isinstance(split, WindowSplit):  # forecasting data is always windowed
        return None
    return _forecast(data, name, split, outputs, to_original, run_dir / "forecast.png")


def _forecast(
    data: PreparedData,
    name: str,
    split: WindowSplit,
    outputs: torch.Tensor,
    to_original: Callable[[torch.Tensor], torch.Tensor],
    path: Path,
) -> Path | None:
    """The first target's series, and forecasts from origins one horizon apart."""
    targets = len(data.preprocessing["targets"])
    series = to_original(split.targets.double().reshape(1, -1)).view(-1, targets)[:, 0]
    predicted = to_original(outputs.double()).view(len(outputs), -1, targets)[:, :, 0]
    starts = (split.starts + split.target_offset).tolist()
    forecasts = [
        (starts[i], predicted[i].tolist()) for i in range(0, len(starts), split.target_length)
    ]
    boundaries = {
        "val": _first_target(cast(WindowSplit, data.val)),
        "test": _first_target(cast(WindowSplit, data.test)),
    }
    target = data.preprocessing["targets"][0]
    title = f"{target}: forecasts over the {name} split"
    column = data.preprocessing["time_column"]
    stamps = (column, data.stamps.spelled()) if data.stamps else None
    return plots.forecast_over_series(
        series.tolist(), boundaries, forecasts, title, path, target, stamps
    )


def _first_target(split: WindowSplit) -> int:
    return int(split.starts[0]) + split.target_offset
