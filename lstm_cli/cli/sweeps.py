"""Sweep bookkeeping: which jobs of a multirun failed, so that the sweep's exit code says so,
which finished job is best by its monitor (printed at the end), and the sweep's process
made known to jobs run by worker processes.

A failed job does not stop a sweep (the sweeper goes on with the next one); the job is
recorded here by `apps.run_guarded` when it ran in this process, and by the `SweepJobs`
Hydra callback from the jobs' status.json when other processes ran them (joblib,
submitit). The dispatcher ends the sweep with exit code 1 if any failed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

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
        line = best_job(Path(config.hydra.sweep.dir))
        if line:
            print(line, flush=True)


def best_job(sweep: Path) -> str | None:
    """The sweep's best finished training job by the monitor all its jobs share, with its
    overrides (what the Optuna sweeper's optimization_results.yaml says, for every sweep);
    None when no job finished a training."""
    finished = []
    for results_file in sorted(sweep.glob("*/results.json")):
        results = json.loads(results_file.read_text())
        if math.isfinite(results.get("best_value", math.nan)):
            mode = OmegaConf.load(results_file.parent / ".hydra/config.yaml").trainer.mode
            finished.append((results["best_value"], results["monitor"], mode, results_file.parent))
    if not finished:
        return None
    criteria = sorted({f"{monitor} ({mode})" for _, monitor, mode, _ in finished})
    if len(criteria) > 1:
        return f"sweep: the jobs monitor different metrics ({', '.join(criteria)}): none is best"
    value, monitor, mode, job = (min if finished[0][2] == "min" else max)(finished)
    overrides = " ".join(OmegaConf.load(job / ".hydra/overrides.yaml"))
    return f"best job: {job.resolve()} {monitor}={value:.6g} ({overrides})"
