"""Where the configs and embedded data are, and how run directories are named."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from datetime import datetime
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
EMBEDDED_DATA_DIR = PACKAGE_DIR / "data" / "embedded"
RUN_STAMP_ENV = "LSTM_TRAIN_RUN_STAMP"


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
    """A run-directory name, fixed for one invocation and unique across invocations.

    Hydra's default second-resolution name collides when two runs start in the same second,
    so the process id and a random suffix follow the time. The name is exported to the
    environment, so that the worker processes of a sweep (joblib, submitit) put their jobs
    under the same sweep directory. Under torchrun all ranks take rank 0's name.
    """
    inherited = os.environ.get(RUN_STAMP_ENV)
    if inherited:
        return inherited
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    stamp = f"{stamp}_{os.getpid()}{secrets.token_hex(2)}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from lstm_cli.common.distributed import agree_on  # imports torch: only under torchrun

        stamp = agree_on(stamp)
    os.environ[RUN_STAMP_ENV] = stamp
    return stamp


def rank_suffix() -> str:
    """'' for a single process or rank 0 of torchrun, else '.rank<N>' (for log files)."""
    rank = int(os.environ.get("RANK", "0"))
    return f".rank{rank}" if rank else ""


MAX_JOB_NAME = 100


def job_dir_for(number: int, overrides: str) -> str:
    """A sweep job's directory name: its number and overrides, made one safe path
    component (no separator, no `..`, bounded length, a hash keeping long names apart).
    The overrides themselves stay whole in the job's .hydra/overrides.yaml."""
    name = re.sub(r"[/\\\x00]", "_", str(overrides)).replace("..", "__")
    if len(name) > MAX_JOB_NAME:
        digest = hashlib.sha1(str(overrides).encode()).hexdigest()[:8]
        name = f"{name[: MAX_JOB_NAME - 9]}_{digest}"
    return f"{number}_{name}" if name else str(number)
