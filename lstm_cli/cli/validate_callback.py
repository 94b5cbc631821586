"""A Hydra callback that checks the config before Hydra creates the run directory.

A typo or an out-of-range value then stops the command before anything is written. The
commands check again when they start, which also covers each job of a multirun sweep.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lstm_cli.common.errors import LstmCliError, exit_for
from lstm_cli.common.paths import rank_suffix
from lstm_cli.config.checks import (
    loss_for_task,
    validate_export_config,
    validate_train_config,
)
from lstm_cli.config.schema import EvaluateConfig, ExportConfig, InferenceConfig, PredictConfig
from lstm_cli.config.validate import build, resolve
from lstm_cli.runs.ownership import refuse_foreign_directory
from lstm_cli.runs.resume import continued_config
from lstm_cli.runs.rundir import checkpoint_path


def _trained_run_ready(config_type: type, values: dict[str, Any]) -> tuple[Any, dict]:
    """evaluate, predict, export: the device exists and the checkpoint loads (torch is
    imported only now, so that --help stays quick)."""
    from lstm_cli.common.runtime import resolve_device
    from lstm_cli.runs.checkpoint import load_checkpoint

    options = build(config_type, values)
    if isinstance(options, InferenceConfig):
        resolve_device(options.device, "device")
    path = checkpoint_path(options.run_dir, options.checkpoint, options.which)
    return options, load_checkpoint(path)


def _predict_ready(values: dict[str, Any]) -> None:
    from lstm_cli.commands.predict import check_options

    options, saved = _trained_run_ready(PredictConfig, values)
    check_options(options, saved["task"])


def _evaluate_ready(values: dict[str, Any]) -> None:
    from lstm_cli.data import check_scorable_kind
    from lstm_cli.data.files import resolve_path

    options, saved = _trained_run_ready(EvaluateConfig, values)
    if options.input:
        check_scorable_kind(options.input, saved["preprocessing"])
        resolve_path(options.input, "input")


def _export_ready(values: dict[str, Any]) -> None:
    validate_export_config(values)
    _trained_run_ready(ExportConfig, values)


VALIDATORS = {
    "train": validate_train_config,
    "evaluate": _evaluate_ready,
    "predict": _predict_ready,
    "export": _export_ready,
}


# The directory Hydra makes next, for an error while it writes .hydra/ or the log there.
RUN_DIR_BEING_MADE: list[str] = []


class ValidateBeforeRun(Callback):
    """Hydra turns a callback's exceptions into warnings, so the error leaves as SystemExit."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A single run: also its directory, which Hydra is about to make and write into."""
        self._check(config, single_run=True)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """The sweep's shared settings (a misspelled monitor, say) fail before any job."""
        self._check(config, single_run=False)

    def _check(self, config: DictConfig, single_run: bool) -> None:
        job_keys = [key for key in config if key != "hydra"]
        try:
            values = resolve(OmegaConf.masked_copy(config, job_keys))
            if config.hydra.job.name == "train":
                values = loss_for_task(values, list(config.hydra.overrides.task))
            VALIDATORS[config.hydra.job.name](values)
            resuming = bool(values.get("resume"))
            if single_run:
                RUN_DIR_BEING_MADE[:] = [str(config.hydra.run.dir)]
            if single_run and not rank_suffix():  # torchrun: rank 0 speaks for the run
                key = "resume" if resuming else "hydra.run.dir"
                refuse_foreign_directory(Path(config.hydra.run.dir), key, resuming)
            if single_run and resuming:
                overrides = list(config.hydra.overrides.task)
                _check_resume(Path(config.hydra.run.dir), values, overrides)
        except Exception as err:
            ours = _our_error(err)
            if ours is None:
                raise
            message, code = exit_for(ours, in_job=False)
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(code) from None


def _our_error(err: BaseException | None) -> LstmCliError | None:
    """Our error, itself or wrapped by OmegaConf (as from the run_dir resolver)."""
    while err is not None and not isinstance(err, LstmCliError):
        err = err.__cause__ or err.__context__
    return err


def _check_resume(run_dir: Path, values: dict[str, Any], overrides: list[str]) -> None:
    """The resumed run's checkpoint must load, and the command line change only what may
    change (torch only now)."""
    from lstm_cli.data.files import absolute_paths
    from lstm_cli.runs.checkpoint import load_checkpoint

    saved = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    values = {**values, "dataset": absolute_paths(values["dataset"])}  # as saved
    validate_train_config(continued_config(saved["config"], values, overrides))
