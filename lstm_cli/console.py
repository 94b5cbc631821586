"""What a person sees: rich progress and tables on a terminal, plain lines anywhere else.

Cron, batch schedulers and redirects get one plain line per event with no escape codes,
no bars and no prompts. (rich's own handler wraps at 80 columns off a terminal and breaks
paths, so the handler is chosen by whether stdout is a terminal.) The run's log file,
set up by Hydra, receives every message either way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

log = logging.getLogger("lstm_cli")


class _ConsoleOnly(logging.Filter):
    """Keep records marked `file_only` (tracebacks) out of the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


class Reporter:
    """Console output of one command; `interactive` is True on a terminal."""

    def __init__(self) -> None:
        self.interactive = sys.stdout.isatty()
        self.console = Console(highlight=False) if self.interactive else None
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "lstm_console", False)]:
            root.removeHandler(handler)
        handler: logging.Handler
        if self.console is not None:
            handler = RichHandler(console=self.console, show_path=False, markup=False)
        else:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
        handler.lstm_console = True
        handler.addFilter(_ConsoleOnly())
        root.addHandler(handler)
        root.setLevel(logging.INFO)

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

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Any]:
        """A batch progress bar on a terminal; elsewhere a no-op advance function."""
        if self.console is None:
            yield lambda **_: None
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

            def advance(status: str | None = None) -> None:
                bar.update(task, advance=1, **({"status": status} if status else {}))

            yield advance


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
