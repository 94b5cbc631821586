"""One Hydra app per subcommand, and the guard that runs a command's body as a job.

The heavy modules (torch and the command bodies) are imported only when a job runs, so
`--help`, `--cfg` and shell completion never pay for torch.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from lstm_cli.cli import sweeps
from lstm_cli.cli.optuna_support import optuna_direction, optuna_storage, optuna_trials_left
from lstm_cli.common.errors import (
    EXIT_HANGUP,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    exit_for,
    wants_traceback,
)
from lstm_cli.common.paths import config_dir, job_dir_for, run_stamp
from lstm_cli.runs.resume import config_subdir_for, log_file_for, run_dir_for

log = logging.getLogger("lstm_cli")
# A log line that cannot be written (a full disk) is dropped: Python's default prints a
# traceback per line, burying the one `error:` line that says what happened.
logging.raiseExceptions = False

ENDS_A_SWEEP = {EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED}  # a stopping signal ends a sweep

OmegaConf.register_new_resolver("run_stamp", run_stamp, replace=True)
OmegaConf.register_new_resolver("run_dir", run_dir_for, replace=True)
OmegaConf.register_new_resolver("job_dir", job_dir_for, replace=True)
OmegaConf.register_new_resolver("config_subdir", config_subdir_for, replace=True)
OmegaConf.register_new_resolver("log_file", log_file_for, replace=True)
OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)
OmegaConf.register_new_resolver("optuna_trials_left", optuna_trials_left, replace=True)
OmegaConf.register_new_resolver("optuna_storage", optuna_storage, replace=True)


def run_guarded(command: str, cfg: DictConfig) -> Any:
    """Run `lstm_cli.commands.<command>.run(cfg)`; an error becomes one line and an exit code.

    The full traceback goes to the run's log file. In a multirun sweep a failed job is
    reported and the sweep goes on with the next job (it returns no value, which the
    Optuna sweeper records as a failed trial); a stopping signal ends the sweep.
    """
    try:
        module = importlib.import_module(f"lstm_cli.commands.{command}")
        return module.run(cfg)
    except (KeyboardInterrupt, Exception) as err:
        if wants_traceback() and not isinstance(err, KeyboardInterrupt):
            raise
        message, code = exit_for(err, in_job=True)
        log.error("error: %s", message, exc_info=True, extra={"file_only": True})
        print(f"error: {message}", file=sys.stderr, flush=True)
        if HydraConfig.get().mode == RunMode.MULTIRUN and code not in ENDS_A_SWEEP:
            sweeps.record_failure(HydraConfig.get().runtime.output_dir)
            return None  # sweepers record a trial without a value as failed, and go on
        raise SystemExit(code) from None


def _app(command: str) -> Callable[[], Any]:
    def task(cfg: DictConfig) -> Any:
        return run_guarded(command, cfg)

    task.__name__ = f"{command}_task"
    return hydra.main(config_path=str(config_dir()), config_name=command, version_base="1.3")(task)


APPS: dict[str, Callable[[], Any]] = {
    name: _app(name) for name in ("train", "evaluate", "predict", "export", "report")
}
