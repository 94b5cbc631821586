"""Pictures of runs: learning curves, confusion matrices, fits and forecasts, as PNG files.

Drawn headless through matplotlib's object interface (no pyplot, no display, no global
figure state), written atomically. matplotlib is the optional `plots` extra: without it
every plot is skipped and the run says once how to get them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

from lstm_cli.common.atomic import atomic_file
from lstm_cli.common.errors import describe

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger("lstm_cli.reporting.plots")
P = ParamSpec("P")

INSTALL_HINT = "pip install 'lstm-train[plots]'"
_hint_given = False


def available() -> bool:
    """Whether matplotlib can be imported; the first time it cannot, say how to get it."""
    global _hint_given
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if not _hint_given:
            log.info("plots skipped: matplotlib is not installed (%s)", INSTALL_HINT)
            _hint_given = True
        return False
    return True


def new_figure(columns: int, rows: int = 1) -> Figure | None:
    """A figure of `columns` x `rows` panels, or None without matplotlib."""
    if not available():
        return None
    from matplotlib.figure import Figure

    return Figure(figsize=(5.0 * columns, 4.0 * rows), layout="constrained")


def save(figure: Figure, path: Path) -> Path:
    with atomic_file(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=100)
    log.info("plot written to %s", path)
    return path


def never_fatal(draw: Callable[P, Path | None]) -> Callable[P, Path | None]:
    """A picture that cannot be drawn (a full disk, odd values) is a warning, never the
    failure of a run whose results are already written."""

    @functools.wraps(draw)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> Path | None:
        try:
            return draw(*args, **kwargs)
        except Exception as err:
            log.warning("%s not drawn: %s", draw.__name__, describe(err))
            return None

    return drawn


@never_fatal
def learning_curves(
    rows: Sequence[dict[str, Any]], monitor: str, best_epoch: int, path: Path
) -> Path | None:
    """Train and val loss, the monitored metric (when it is not the loss), learning rate."""
    extra = monitor if monitor != "val/loss" else None
    figure = new_figure(3 if extra else 2)
    if figure is None:
        return None
    panels = figure.subplots(1, 3 if extra else 2)
    epochs = [row["epoch"] for row in rows]
    losses = panels[0]
    losses.plot(epochs, [row["train/loss"] for row in rows], label="train/loss")
    losses.plot(epochs, [row["val/loss"] for row in rows], label="val/loss")
    _label(losses, "loss per epoch", "epoch", "loss")
    if extra:
        _label(panels[1], monitor, "epoch", monitor)
        panels[1].plot(epochs, [row[monitor] for row in rows], label=monitor, color="C2")
    for panel in panels[:-1]:
        panel.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
        panel.legend()
    rates = panels[-1]
    rates.plot(epochs, [row["lr"] for row in rows], color="C3")
    _label(rates, "learning rate", "epoch", "lr")
    if max(row["lr"] for row in rows) > 0:
        rates.set_yscale("log")
    return save(figure, path)


@never_fatal
def confusion_matrix(counts: list[list[int]], classes: Sequence[str], path: Path) -> Path | None:
    """Rows are the true classes, columns the predicted ones; each cell shows its count."""
    figure = new_figure(1)
    if figure is None:
        return None
    axes = figure.subplots()
    axes.imshow(counts, cmap="Blues")
    ticks = range(len(classes))
    axes.set_xticks(ticks, [str(c) for c in classes], rotation=45, ha="right")
    axes.set_yticks(ticks, [str(c) for c in classes])
    largest = max(max(row) for row in counts) or 1
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            color = "white" if count > largest / 2 else "black"
            axes.text(j, i, str(count), ha="center", va="center", color=color)
    _label(axes, "confusion matrix", "predicted", "true")
    return save(figure, path)


@never_fatal
def regression_fit(predicted: list[float], actual: list[float], path: Path) -> Path | None:
    """Predicted against actual (with the line of perfect fit), and the residuals."""
    figure = new_figure(2)
    if figure is None:
        return None
    fit, residuals = figure.subplots(1, 2)
    fit.scatter(actual, predicted, s=10, alpha=0.6)
    low, high = min(actual + predicted), max(actual + predicted)
    fit.plot([low, high], [low, high], color="grey", linestyle="--", label="perfect fit")
    fit.legend()
    _label(fit, "predicted vs actual", "actual", "predicted")
    errors = [p - a for p, a in zip(predicted, actual, strict=True)]
    residuals.scatter(actual, errors, s=10, alpha=0.6)
    residuals.axhline(0.0, color="grey", linestyle="--")
    _label(residuals, "residuals", "actual", "predicted - actual")
    return save(figure, path)


@never_fatal
def forecast_over_series(
    series: list[float],
    boundaries: dict[str, int],
    forecasts: list[tuple[int, list[float]]],
    title: str,
    path: Path,
    y_label: str = "value",
    stamps: tuple[str, list[str]] | None = None,
) -> Path | None:
    """The actual series, the split boundaries, and forecasts as (first step, values) runs,
    each point marked (a one-step forecast is a point, which a line alone would not show).
    `stamps` (the time column's name, a stamp per step) dates the x axis."""
    figure = new_figure(2)
    if figure is None:
        return None
    axes = figure.subplots()
    axes.plot(range(len(series)), series, color="black", linewidth=1, label="actual")
    for number, (start, values) in enumerate(forecasts):
        steps = range(start, start + len(values))
        label = "forecast" if number == 0 else None
        axes.plot(steps, values, color="C1", marker="o", markersize=3, label=label)
    for name, step in boundaries.items():
        axes.axvline(step, color="grey", linestyle="--")
        axes.annotate(name, (step, 1.0), xycoords=("data", "axes fraction"), va="top")
    axes.legend(loc="upper left")
    x_label = "time step"
    if stamps:
        x_label, spelled = stamps
        ticks = list(range(0, len(spelled), max(1, len(spelled) // 8)))
        axes.set_xticks(ticks, [spelled[t] for t in ticks], rotation=30, ha="right")
    _label(axes, title, x_label, y_label)
    return save(figure, path)


def _label(axes: Axes, title: str, x: str, y: str) -> None:
    axes.set_title(title)
    axes.set_xlabel(x)
    axes.set_ylabel(y)
