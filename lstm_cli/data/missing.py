"""The `dataset.missing` policy for empty, NaN or infinite cells: error, drop or ffill."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lstm_cli.common.errors import DataError
from lstm_cli.data.table import Table


def read_columns(
    table: Table, columns: list[str], key: str, policy: str, release: bool = False
) -> tuple[Table, Tensor]:
    """Numeric columns as [rows, columns] float64, after the policy's first step.

    error: any missing cell is an error naming its line and column. drop: rows with a
    missing cell leave the table (the returned one). ffill: missing cells stay NaN here,
    for `forward_fill` once the rows are in time order. `release`: the caller reads these
    columns no more, so the table lets go of them as they are converted.
    """
    missing_ok = policy != "error"
    values = torch.from_numpy(table.take_numbers(columns, key, missing_ok, release))
    if policy == "drop":
        complete = ~values.isnan().any(dim=1)
        if not complete.all():
            table, values = table.keep(complete.numpy()), values[complete]
    return table, values


def forward_fill(
    values: Tensor, describe_row: Callable[[int], str], group_sizes: Tensor | None = None
) -> Tensor:
    """Carry each column's last valid value forward over NaNs, never across groups.

    `group_sizes`: the rows of each group (sequence, series), groups one after another
    (None: one group). A gap with nothing before it in its group is an error naming that row.
    """
    missing = values.isnan()
    if not missing.any():
        return values
    rows = torch.arange(len(values)).unsqueeze(1).expand_as(values)
    source = torch.where(missing, torch.full_like(rows, -1), rows).cummax(dim=0).values
    if group_sizes is None:
        first = torch.zeros(len(values), dtype=torch.long)
    else:  # each row's group's first row: made only here, where a gap needs it
        first = torch.repeat_interleave(torch.cumsum(group_sizes, 0) - group_sizes, group_sizes)
    unfillable = source < first.unsqueeze(1)
    if unfillable.any():
        row = int(unfillable.any(dim=1).nonzero()[0])
        raise DataError(f"{describe_row(row)}: missing value with nothing before it to fill from")
    return values.gather(0, source)
