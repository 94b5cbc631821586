"""Where the configs and embedded data are, and how run directories are named."""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
EMBEDDED_DATA_DIR = PACKAGE_DIR / "datasets"


def config_dir() -> Path:
    """The directory of the YAML configs.

    A wheel carries them as `lstm_cli/conf`; a checkout (and an editable install of it)
    has them at the top level as `conf/`. Hydra resolves a relative `config_path` against
    the calling module, so we hand it this absolute path instead.
    """
    packaged = PACKAGE_DIR / "conf"
    if packaged.is_dir():
        return packaged
    checkout = PACKAGE_DIR.parent / "conf"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"no config directory at {packaged} or {checkout}")


@cache
def run_stamp() -> str:
    """A run-directory name, fixed for the life of the process and unique across processes.

    Hydra's default second-resolution name collides when two runs start in the same second,
    so the process id and a random suffix follow the time.
    """
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return f"{stamp}_{os.getpid()}{secrets.token_hex(2)}"
