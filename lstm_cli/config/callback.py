"""A Hydra callback that checks the config before Hydra creates the run directory.

A typo or an out-of-range value then stops the command before anything is written. The
commands check again when they start, which also covers each job of a multirun sweep.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lstm_cli.config.checks import validate_train_config
from lstm_cli.config.schema import EvaluateConfig, PredictConfig
from lstm_cli.config.validate import build, resolve
from lstm_cli.errors import ConfigError

VALIDATORS = {
    "train": validate_train_config,
    "evaluate": lambda values: build(EvaluateConfig, values),
    "predict": lambda values: build(PredictConfig, values),
}


class ValidateBeforeRun(Callback):
    """Hydra turns a callback's exceptions into warnings, so the error leaves as SystemExit."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        job_keys = [key for key in config if key != "hydra"]
        try:
            VALIDATORS[config.hydra.job.name](resolve(OmegaConf.masked_copy(config, job_keys)))
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(err.exit_code) from None
