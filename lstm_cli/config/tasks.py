"""The learning tasks, what each is scored by, and which losses fit it.

Kept free of torch so config checks run before the heavy imports.
"""

from __future__ import annotations

from typing import Literal

Task = Literal["classification", "regression", "forecasting", "language_model"]

METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("loss", "acc", "f1"),
    "regression": ("loss", "rmse", "mae", "mape"),
    "forecasting": ("loss", "rmse", "mae", "mape"),
    "language_model": ("loss", "acc", "ppl", "bpc"),
}
HIGHER_IS_BETTER = {"acc", "f1"}
CLASSIFICATION_LOSSES = {"cross_entropy"}
REGRESSION_LOSSES = {"mse", "l1", "huber"}


def task_of_dataset(kind: str, declared_task: str | None) -> Task:
    """The task a dataset kind implies (csv_sequences and npz declare theirs)."""
    if kind in ("csv_forecast", "sine"):
        return "forecasting"
    if kind == "text":
        return "language_model"
    if kind == "adding":
        return "regression"
    if declared_task in ("classification", "regression"):
        return declared_task
    raise ValueError(f"dataset kind {kind!r} has no task")


def is_classification(task: Task) -> bool:
    """Whether the task predicts classes (one per sequence or one per step)."""
    return task in ("classification", "language_model")


def losses_for(task: Task) -> set[str]:
    return CLASSIFICATION_LOSSES if is_classification(task) else REGRESSION_LOSSES


def usual_loss(task: Task) -> str:
    """The loss a task trains with unless the user names another."""
    return "cross_entropy" if is_classification(task) else "mse"
