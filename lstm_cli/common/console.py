"""What a person sees: rich progress and tables on a terminal, plain lines anywhere else.

Cron, batch schedulers and redirects get one plain line per event with no escape codes,
no bars and no prompts. (rich's own handler wraps at 80 columns off a terminal and breaks
paths, so the handler is chosen by whether stdout is a terminal.) The run's log file,
set up by Hydra, receives every message either way.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger("lstm_cli")
REFRESH_SECONDS = 0.5


class _ConsoleOnly(logging.Filter):
    """Keep records marked `file_only` (tracebacks) out of the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


class _PipeHandler(logging.StreamHandler):
    """Plain lines to stdout. If the reader goes away (`| head`), the run goes on: stdout
    is pointed at /dev/null and the log file keeps every line, with no traceback shown."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return
        super().handleError(record)


class Reporter:
    """Console output of one command; `interactive` is True on a terminal."""

    def __init__(self, console: bool = True) -> None:
        """`console=False` (torchrun ranks other than 0): the log file only."""
        self.interactive = console and sys.stdout.isatty()
        self.console = Console(highlight=False) if self.interactive else None
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        for handler in [h for h in root.handlers if getattr(h, "lstm_console", False)]:
            root.removeHandler(handler)
        if not console:
            return
        handler: logging.Handler
        if self.console is not None:
            handler = RichHandler(
                console=self.console,
                show_path=False,
                show_level=False,
                show_time=False,
                markup=False,
            )
        else:
            handler = _PipeHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
        handler.lstm_console = True
        handler.addFilter(_ConsoleOnly())
        root.addHandler(handler)

    def table(self, title: str, rows: Mapping[str, Any]) -> None:
        """Key-value pairs: a rich table on a terminal, `title: key=value ...` lines otherwise."""
        if self.console is None:
            log.info("%s: %s", title, "  ".join(f"{k}={_fmt(v)}" for k, v in rows.items()))
            return
        log.info(
            "%s: %s",
            title,
            "  ".join(f"{k}={_fmt(v)}" for k, v in rows.items()),
            extra={"file_only": True},
        )
        table = Table(title=title, show_header=False, title_justify="left")
        for key, value in rows.items():
            table.add_row(key, _fmt(value))
        self.console.print(table)

    def sparkline(self, title: str, values: Sequence[float], best_epoch: int) -> None:
        """On a terminal, one line showing how `values` moved across the epochs."""
        if self.console is None or not values:
            return
        self.console.print(f"{title} by epoch {sparkline(values)}  (best at epoch {best_epoch})")

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[Tensor, int], None]]:
        """A batch progress bar on a terminal; elsewhere a no-op `advance(loss, sequences)`.

        The bar shows the latest loss and sequences per second, reading the loss from the
        device at most every REFRESH_SECONDS so the display never stalls the training step.
        """
        if self.console is None:
            yield lambda loss, sequences: None
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=total, status="")
            started = last_refresh = time.monotonic()
            seen = 0

            def advance(loss: Tensor, sequences: int) -> None:
                nonlocal last_refresh, seen
                seen += sequences
                now = time.monotonic()
                if now - last_refresh < REFRESH_SECONDS:
                    bar.advance(task)
                    return
                last_refresh = now
                rate = seen / max(now - started, 1e-9)
                status = f"loss {float(loss.detach()):.4g}  {rate:.0f} seq/s"
                bar.update(task, advance=1, status=status)

            yield advance


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """Values as block characters, low to high; at most `width` of them (evenly sampled)."""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(
        SPARKS[round((v - low) / span * (len(SPARKS) - 1))] if math.isfinite(v) else " "
        for v in values
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
