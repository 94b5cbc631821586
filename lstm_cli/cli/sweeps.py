"""Sweep bookkeeping: which jobs of a multirun failed, so that the sweep's exit code says so,
and the sweep's process made known to jobs run by worker processes.

A failed job does not stop a sweep (the sweeper goes on with the next one); the job is
recorded here by `apps.run_guarded` when it ran in this process, and by the `SweepJobs`
Hydra callback from the jobs' status.json when other processes ran them (joblib,
submitit). The dispatcher ends the sweep with exit code 1 if any failed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lstm_cli.training.signals import SWEEP_PARENT_ENV

_failed: list[str] = []


def record_failure(job_dir: str) -> None:
    _failed.append(str(Path(job_dir).resolve()))


def failed_jobs() -> list[str]:
    return list(_failed)


class SweepJobs(Callback):
    """At a sweep's start under joblib, its process id goes to the environment the workers
    inherit (a worker stops when that process is gone); at its end, the jobs whose
    status.json says failed count too."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """joblib's workers are this process's children; submitit's jobs are not."""
        if "joblib" in str(config.hydra.launcher.get("_target_", "")):
            os.environ[SWEEP_PARENT_ENV] = str(os.getpid())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lstm_cli.runs.status import read_status

        for status_file in sorted(Path(config.hydra.sweep.dir).glob("*/status.json")):
            job = str(status_file.parent.resolve())
            if job not in _failed and read_status(Path(job)).get("status") == "failed":
                _failed.append(job)
