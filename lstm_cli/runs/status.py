"""status.json of a run: running, finished, failed or interrupted, for `lstm-train report`."""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from lstm_cli.runs.rundir import write_json_atomic

log = logging.getLogger("lstm_cli")

STATUS_FILE = "status.json"


def write_status(run_dir: Path, status: str, **details: Any) -> None:
    """Record the run's state, with the process that holds it (to spot a killed run).

    Best effort: on a full disk the run's own error is what the user must see, so a
    failed status write is logged, never raised over it (report then reads the dead pid
    of a `running` status as interrupted)."""
    record = {
        "status": status,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "updated": datetime.now().isoformat(timespec="seconds"),
        **details,
    }
    try:
        write_json_atomic(run_dir / STATUS_FILE, record)
    except OSError as err:
        log.warning("status.json not updated to %s: %s", status, err)


def read_status(run_dir: Path) -> dict[str, Any]:
    """The recorded status; a `running` run whose process is gone was killed: interrupted."""
    try:
        recorded = json.loads((run_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        finished = (run_dir / "results.json").is_file()
        return {"status": "finished" if finished else "unknown"}
    here = recorded.get("host") == socket.gethostname()
    if recorded.get("status") == "running" and here and not _alive(int(recorded.get("pid", 0))):
        recorded["status"] = "interrupted"
    return recorded


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
