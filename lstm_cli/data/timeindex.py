"""Time stamps of a forecasting series: parsed, checked to increase, extended into the future.

Three spellings are told apart by the first stamp: months (`1949-01`), ISO dates or
date-times (`2024-03-01`, `2024-03-01T12:00`), and plain numbers; any other is named by
`dataset.time_format` (a strftime format such as `%m/%d/%Y`). Future stamps continue the
series at its most common step and are written in the same spelling as the input.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from lstm_cli.common.errors import DataError

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
HINT = (
    " (understood: 1949-01, 2024-03-01, 2024-03-01T12:00, numbers; name another spelling"
    " with dataset.time_format, e.g. %m/%d/%Y)"
)
_EPOCH = datetime(1970, 1, 1)  # naive stamps are read as wall-clock time, no time zone


@dataclass
class TimeIndex:
    """Stamps as numbers (month counts, seconds, or the values) plus how to spell them."""

    spelling: str
    values: list[float]

    @classmethod
    def parse(
        cls, stamps: list[str], column: str, where: Callable[[int], str], form: str | None = None
    ) -> TimeIndex:
        """Parse and check stamps; `where(row)` names a row's file and line in errors;
        `form` is dataset.time_format (None: the first stamp's spelling)."""
        spelling = form or _spelling_of(stamps[0])
        values: list[float] = []
        for row, stamp in enumerate(stamps):
            try:
                values.append(_to_number(stamp, spelling))
            except ValueError:
                raise DataError(
                    f"{where(row)}, column {column!r}: {stamp!r} is not a {spelling} time stamp"
                    + ("" if form else HINT)
                ) from None
            if row and values[-1] <= values[-2]:
                raise DataError(
                    f"{where(row)}, column {column!r}: time stamp {stamp!r} does not increase"
                    f" (after {stamps[row - 1]!r})"
                )
        return cls(spelling, values)

    def spelled(self) -> list[str]:
        """Every stamp, written as the input spells them."""
        return [_to_text(value, self.spelling) for value in self.values]

    def future(self, count: int, after: float | None = None) -> list[str]:
        """The `count` stamps after the last one (or after `after`), at the usual step."""
        deltas = [b - a for a, b in pairwise(self.values)]
        step = Counter(deltas).most_common(1)[0][0] if deltas else 1.0
        start = self.values[-1] if after is None else after
        return [_to_text(start + step * k, self.spelling) for k in range(1, count + 1)]

    def season(self) -> int:
        """Steps per season implied by the usual step between stamps; 1 when none is known
        (plain numbers, yearly data, unusual intervals)."""
        deltas = [b - a for a, b in pairwise(self.values)]
        if not deltas or self.spelling == "number":
            return 1
        step = Counter(deltas).most_common(1)[0][0]
        if self.spelling == "month":
            return _SEASON_OF_MONTHS.get(round(step), 1)
        if 89 * 86400 <= step <= 92 * 86400:  # quarters of dates
            return 4
        if 28 * 86400 <= step <= 31 * 86400:  # months of dates
            return 12
        return _SEASON_OF_INTERVAL.get(round(step), 1)


# A season in steps for the usual sampling intervals (seconds between stamps): hourly data
# repeats daily, daily data weekly, weekly data yearly, monthly and quarterly data yearly.
_SEASON_OF_INTERVAL = {3600: 24, 86400: 7, 7 * 86400: 52}
_SEASON_OF_MONTHS = {1: 12, 3: 4}


def _spelling_of(stamp: str) -> str:
    if _MONTH.match(stamp):
        return "month"
    try:
        float(stamp)
        return "number"
    except ValueError:
        pass
    return "datetime" if "T" in stamp or ":" in stamp else "date"


def _to_number(stamp: str, spelling: str) -> float:
    if spelling == "month":
        match = _MONTH.match(stamp)
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(stamp)
        return int(match.group(1)) * 12 + int(match.group(2)) - 1
    if spelling == "number":
        return float(stamp)
    if "%" in spelling:  # dataset.time_format
        return (datetime.strptime(stamp, spelling) - _EPOCH).total_seconds()
    return (datetime.fromisoformat(stamp).replace(tzinfo=None) - _EPOCH).total_seconds()


def _to_text(value: float, spelling: str) -> str:
    if spelling == "month":
        year, month = divmod(round(value), 12)
        return f"{year:04d}-{month + 1:02d}"
    if spelling == "number":
        return f"{value:g}"
    moment = _EPOCH + timedelta(seconds=value)
    if "%" in spelling:
        return moment.strftime(spelling)
    return moment.date().isoformat() if spelling == "date" else moment.isoformat()
