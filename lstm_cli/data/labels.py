"""Labels of labelled sequences: class names, and labels turned into what a loss reads
(class ids, or regression targets scaled by the training sequences' statistics)."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor

from lstm_cli.common.errors import DataError
from lstm_cli.data.raw import Labelled
from lstm_cli.data.scaling import Scaler


def class_names(labels: list[str], where: str) -> list[str]:
    """Sorted class names (numerically when they are numbers); one class is an error.
    Numbers are one class however they are spelled: `0.5` and `0.50`, `1` and `1.0`."""
    spelled = {canonical_label(label) for label in labels}
    names = sorted(spelled, key=lambda n: (0, float(n), n) if _is_number(n) else (1, 0, n))
    if len(names) < 2:
        raise DataError(f"{where}: every sequence has label {names[0]!r}; need at least 2 classes")
    return names


def encode_labels(
    labels: list[str] | None,
    state: dict[str, Any],
    where: str,
    ids: list[str],
    targets: Tensor | None = None,
) -> Tensor:
    """Labels -> class ids (classification) or scaled values [N, k] (regression: one label
    per sequence, or `targets` [N, k] where the file gives k numbers per sequence)."""
    if state["task"] == "regression":
        numbers = targets if targets is not None else _numbers(labels or [], state, where, ids)
        scaler = Scaler(**state["target_scaler"])
        if numbers.shape[1] != len(scaler.offset):
            raise DataError(
                f"{where}: {numbers.shape[1]} regression targets per sequence, but the model"
                f" was trained on {len(scaler.offset)}"
            )
        return scaler.transform(numbers.double()).float()
    assert labels is not None, "classification always has labels"
    if state["task"] == "classification":
        known = {canonical_label(name): i for i, name in enumerate(state["classes"])}
        labels = [canonical_label(label) for label in labels]
        for sequence_id, label in zip(ids, labels, strict=True):
            if label not in known:
                raise DataError(
                    f"{where}, sequence {sequence_id!r}, column {state['label_column']!r}:"
                    f" class {label!r} was never seen in training"
                    f" (classes: {', '.join(state['classes'])})"
                )
        return torch.tensor([known[label] for label in labels])


def _numbers(labels: list[str], state: dict[str, Any], where: str, ids: list[str]) -> Tensor:
    """One regression label per sequence, as a column [N, 1]."""
    try:
        return torch.tensor([[float(label)] for label in labels], dtype=torch.float64)
    except ValueError:
        bad = next(i for i, label in enumerate(labels) if not _is_number(label))
        raise DataError(
            f"{where}, sequence {ids[bad]!r}, column {state['label_column']!r}:"
            f" regression label {labels[bad]!r} is not a number"
        ) from None


def fit_target_scaler(
    scaler: str,
    state: dict[str, Any],
    sequences: Labelled,
    fit_index: Tensor,
    targets: Tensor | None = None,
) -> None:
    """Regression targets are scaled by the training sequences' labels (or `targets` [N, k],
    each of the k scaled on its own)."""
    if state["task"] != "regression":
        return
    label = state["label_column"]
    if targets is not None:
        numbers = targets[fit_index]
        names = [f"{label}[{i}]" for i in range(numbers.shape[1])]
    else:
        rows = fit_index.tolist()
        fit_labels = [(sequences.labels or [])[i] for i in rows]
        fit_ids = [sequences.ids[i] for i in rows]
        numbers, names = _numbers(fit_labels, state, sequences.source, fit_ids), [label]
    state["target_scaler"] = Scaler.fit(scaler, numbers, names).to_dict()


@functools.lru_cache(maxsize=1 << 16)  # a column holds few classes, each spelled often
def canonical_label(label: str) -> str:
    """A class label as one spelling: a number in its shortest exact form (`0.50` -> `0.5`,
    `1.0` -> `1`), any other text as it is."""
    if not _is_number(label) or not math.isfinite(float(label)):
        return label
    number = float(label)
    return str(int(number)) if number.is_integer() else repr(number)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
