"""`csv_sequences`: labelled sequences of any length in one long-format CSV.

One row per time step: an id column says which sequence a row belongs to, an optional
step column orders the rows, and the label column holds one label per sequence. The
sequences are stored end to end (`RaggedSplit`: memory follows the number of steps) and
padded per batch; features are scaled with statistics of the training sequences only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lstm_cli.common.errors import DataError
from lstm_cli.config.dataset_schema import SequenceDatasetConfig
from lstm_cli.data.cache import cached_sequences
from lstm_cli.data.files import resolve_path
from lstm_cli.data.labels import canonical_label, class_names, encode_labels, fit_target_scaler
from lstm_cli.data.missing import forward_fill, read_columns
from lstm_cli.data.raw import RawSequences
from lstm_cli.data.scaling import Scaler
from lstm_cli.data.splits import PreparedData, RaggedSplit, Split
from lstm_cli.data.table import Table

AUTO_STEP = "auto"
# What `step_column: auto` looks for, in this order; without one, rows are in file order.
STEP_COLUMN_NAMES = ("step", "time_step", "timestep")


def read_sequence_file(path: Path, state: dict[str, Any], need_labels: bool) -> RawSequences:
    """The sequences of a long-format table (CSV, Parquet or Feather) at `path`."""
    table = Table.read(path, text=(state["id_column"], state["label_column"]))
    return read_sequences(table, state, need_labels)


def read_sequences(table: Table, state: dict[str, Any], need_labels: bool) -> RawSequences:
    """Group the rows of a long-format table into sequences, vectorised: rows are numbered
    by sequence (in order of first appearance), sorted by sequence then step (ties keep file
    order). Missing feature cells follow `state["missing"]`; ffill never crosses sequences.
    Each column leaves the table once read, so that a large file's peak holds few at once.
    """
    table, values = read_columns(  # features are never the id, step or label column
        table, state["features"], "dataset.features", state["missing"], release=True
    )
    id_column, step_column, label_column = (
        state["id_column"],
        state["step_column"],
        state["label_column"],
    )
    sequence_of_row, ids = table.codes(id_column, "dataset.id_column")
    table.release(*{id_column} - {step_column, label_column})
    step_of_row = None
    if step_column:
        step_of_row = table.numbers(step_column, "dataset.step_column")
        table.release(*{step_column} - {label_column})
    order = _row_order(sequence_of_row, step_of_row)
    del step_of_row
    if order is not None:
        values = values[torch.from_numpy(order)]
    lengths = torch.from_numpy(np.bincount(sequence_of_row, minlength=len(ids)))
    row_in_file = (lambda row: int(order[row])) if order is not None else int
    steps = forward_fill(values, lambda row: table.where(row_in_file(row)), lengths)
    labels = None
    if need_labels or label_column in table.header:
        labels = _one_label_per_sequence(table, label_column, sequence_of_row, ids)
    return RawSequences(steps, lengths, ids, labels, str(table.path))


def _row_order(sequence_of_row: np.ndarray, step_of_row: np.ndarray | None) -> np.ndarray | None:
    """Rows sorted by sequence, then step (ties keep file order); None when the file is in
    that order already, as most are, which spares a copy of every value."""
    before, after = sequence_of_row[:-1], sequence_of_row[1:]
    in_order = after >= before  # comparisons, not differences: no row-sized numbers made
    if step_of_row is not None:
        in_order = (after > before) | ((after == before) & (step_of_row[1:] >= step_of_row[:-1]))
    if in_order.all():
        return None
    keys = [sequence_of_row] if step_of_row is None else [step_of_row, sequence_of_row]
    return np.lexsort(keys)


def _one_label_per_sequence(
    table: Table, column: str, sequence_of_row: np.ndarray, ids: list[str]
) -> list[str]:
    """Each sequence's label; a row whose label differs from its sequence's first row's is
    an error naming both."""
    label_of_row, names = table.codes(column, "dataset.label_column")
    table.release(column)
    # codes count up in order of first appearance: a sequence's first row is one whose
    # code exceeds every code before it
    seen_before = np.maximum.accumulate(sequence_of_row)
    first_rows = np.flatnonzero(sequence_of_row[1:] > seen_before[:-1]) + 1
    del seen_before
    first_rows = np.concatenate(([0], first_rows))
    expected = label_of_row[first_rows][sequence_of_row]
    differing = np.flatnonzero(label_of_row != expected)
    if differing.size:
        row = int(differing[0])
        sequence = int(sequence_of_row[row])
        raise DataError(
            f"{table.where(row)}, column {column!r}: sequence {ids[sequence]!r} has"
            f" label {names[label_of_row[row]]!r} here but {names[expected[row]]!r} on its"
            " first row"
        )
    return [names[code] for code in label_of_row[first_rows]]


def scaled_split(raw: RawSequences, state: dict[str, Any], y: Tensor, index: Tensor) -> RaggedSplit:
    """The sequences at `index` as a split, their features scaled into float32 a chunk of
    rows at a time: no scaled copy of every step sits beside the splits (a 1.6 GB CSV: 0.6
    GB less, and the seconds of touching it)."""
    scaler = Scaler(**state["scaler"])
    return RaggedSplit.of(raw.steps, raw.lengths, y, index, take=scaler.rows_to_float32)


def stratified_split(
    labels: Tensor, fraction: float, by_class: bool, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Indices (kept, held out); by class, each class gives up `fraction` of its members."""
    groups = (
        [labels == c for c in labels.unique()]
        if by_class
        else [torch.ones_like(labels, dtype=torch.bool)]
    )
    kept, held = [], []
    for members in groups:
        index = members.nonzero().squeeze(1)
        index = index[torch.randperm(len(index), generator=generator)]
        count = max(1, round(len(index) * fraction)) if len(index) > 1 else 0
        held.append(index[:count])
        kept.append(index[count:])
    return torch.cat(kept).sort().values, torch.cat(held).sort().values


def _read_labelled(path: Path, state: dict[str, Any], cache: Path | None) -> RawSequences:
    def parse() -> RawSequences:
        return read_sequence_file(path, state, need_labels=True)

    return parse() if cache is None else cached_sequences(cache, path, state, parse)


@dataclass
class SplitPlan:
    """How labelled sequences are split (stratified for classes) and scaled."""

    task: str
    val_fraction: float
    test_fraction: float
    scaler: str


def prepare(
    cfg: SequenceDatasetConfig, fitted: dict[str, Any] | None, seed: int, cache: Path | None
) -> PreparedData:
    """`cache`: the folder of the prepared-data cache (None: parse every time)."""
    path = resolve_path(cfg.path, "dataset.path")
    state = fitted or new_state(cfg, path)
    raw = _read_labelled(path, state, cache)
    test_raw = None
    if cfg.test_path:
        test_raw = _read_labelled(resolve_path(cfg.test_path, "dataset.test_path"), state, cache)
    plan = SplitPlan(cfg.task, cfg.val_fraction, cfg.test_fraction, cfg.scaler)
    return prepare_labelled(raw, test_raw, state, plan, fitted is not None, seed)


def prepare_labelled(
    raw: RawSequences,
    test_raw: RawSequences | None,
    state: dict[str, Any],
    plan: SplitPlan,
    fitted: bool,
    seed: int,
) -> PreparedData:
    """Split labelled sequences into train/val (and test, without `test_raw`), fit, encode."""
    classification = plan.task == "classification"
    if not fitted and classification:
        state["classes"] = class_names(raw.labels, raw.source)
    labels = raw.labels or raw.ids  # several targets per sequence: a random split by count
    fit_index, val_index, test_index = split_indices(labels, plan, test_raw is None, seed)
    if not fitted:
        _fit_scalers(plan, state, raw, fit_index)
    y = encode_labels(raw.labels, state, raw.source, raw.ids, raw.targets)
    if test_raw is None:
        test = scaled_split(raw, state, y, test_index)
    else:
        test_y = encode_labels(
            test_raw.labels, state, test_raw.source, test_raw.ids, test_raw.targets
        )
        test = scaled_split(test_raw, state, test_y, torch.arange(len(test_y)))
    train, val = scaled_split(raw, state, y, fit_index), scaled_split(raw, state, y, val_index)
    return labelled_data(plan, state, (train, val, test), raw.feature_count)


def labelled_data(
    plan: SplitPlan, state: dict[str, Any], splits: tuple[Split, Split, Split], inputs: int
) -> PreparedData:
    """Labelled sequences' three splits, with what the model needs to know of them."""
    classification = plan.task == "classification"
    train, val, test = splits
    return PreparedData(
        task=plan.task,
        train=train,
        val=val,
        test=test,
        input_size=inputs,
        output_size=len(state["classes"])
        if classification
        else len(state["target_scaler"]["offset"]),
        token_input=False,
        preprocessing=state,
        to_original=None if classification else Scaler(**state["target_scaler"]).inverse,
    )


def split_indices(
    labels: list[str], plan: SplitPlan, hold_out_test: bool, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Indices of the training, validation and (with `hold_out_test`, else empty) test
    sequences: random by `seed`, stratified by class for classification."""
    classification = plan.task == "classification"
    generator = torch.Generator().manual_seed(seed)
    train_index = torch.arange(len(labels))
    test_index = torch.arange(0)
    if hold_out_test:
        provisional = _provisional_labels(labels, classification)
        train_index, test_index = stratified_split(
            provisional, plan.test_fraction, classification, generator
        )
    kept = [labels[i] for i in train_index.tolist()]  # ints: a tensor iterates 10x slower
    provisional = _provisional_labels(kept, classification)
    fit_index, val_index = stratified_split(
        provisional, plan.val_fraction, classification, generator
    )
    return train_index[fit_index], train_index[val_index], test_index


def new_state(cfg: SequenceDatasetConfig, path: Path) -> dict[str, Any]:
    """Feature columns are never the id, step or label column, named or found."""
    table = Table.read(path, head=True)
    step_column = cfg.step_column
    if step_column == AUTO_STEP:
        step_column = next((c for c in STEP_COLUMN_NAMES if c in table.header), None)
    reserved = {cfg.id_column, cfg.label_column, step_column} - {None}
    if cfg.features:
        clash = sorted(reserved & set(cfg.features))
        if clash:
            raise DataError(
                f"dataset.features lists {', '.join(clash)}, the id, step or label column;"
                " those are never inputs"
            )
    features = cfg.features or table.numeric_columns(exclude=reserved)
    if not features:
        raise DataError(f"{table.path}: no numeric feature columns besides {sorted(reserved)}")
    return {
        "kind": "csv_sequences",
        "task": cfg.task,
        "features": list(features),
        "id_column": cfg.id_column,
        "step_column": step_column,
        "label_column": cfg.label_column,
        "missing": cfg.missing,
        "classes": None,
        "scaler": None,
        "target_scaler": {"kind": "none", "offset": [0.0], "scale": [1.0]},
    }


def _provisional_labels(labels: list[str], classification: bool) -> Tensor:
    """Integer labels for stratifying (classification) or a dummy (regression)."""
    if not classification:
        return torch.zeros(len(labels), dtype=torch.long)
    spelled = [canonical_label(label) for label in labels]
    names = {name: i for i, name in enumerate(sorted(set(spelled)))}
    return torch.tensor([names[label] for label in spelled])


def _fit_scalers(
    plan: SplitPlan, state: dict[str, Any], raw: RawSequences, fit_index: Tensor
) -> None:
    """Feature statistics over the training sequences' real steps, never their padding."""
    chosen = torch.zeros(len(raw.lengths), dtype=torch.bool)
    chosen[fit_index] = True
    rows = chosen.repeat_interleave(raw.lengths)
    state["scaler"] = Scaler.fit_rows(plan.scaler, raw.steps, rows, state["features"]).to_dict()
    fit_target_scaler(plan.scaler, state, raw, fit_index, raw.targets)
