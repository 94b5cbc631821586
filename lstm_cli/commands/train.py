"""`lstm-train train`: fit an LSTM to a dataset and write a complete run directory.

The run directory gets: .hydra/ (the config and overrides), train.log, metrics.csv (a row
per epoch), checkpoints/last.pt and best.pt, results.json, curves.png, status.json. The
loop itself is `lstm_cli.training.loop`; this module validates the config, keeps
status.json true however the run ends, and shows the run to the person who started it.

Survives interruption: `resume=RUN_DIR` (or `latest`) continues a run in its own
directory to the same result it would have reached; SIGTERM or a first SIGINT finishes
the step, checkpoints and exits 143 or 130. Raises ConfigError, DataError, CheckpointError.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lstm_cli.common.distributed import World, join_process_group, leave_process_group
from lstm_cli.common.errors import Interrupted, describe
from lstm_cli.config.checks import loss_for_task, validate_train_config
from lstm_cli.config.validate import resolve
from lstm_cli.data.cache import wait_for_fills
from lstm_cli.data.files import absolute_paths
from lstm_cli.reporting import plots
from lstm_cli.reporting.summary import show_results, show_start
from lstm_cli.runs.checkpoint import load_checkpoint
from lstm_cli.runs.ownership import exclusive
from lstm_cli.runs.resume import continued_config
from lstm_cli.runs.rundir import command_line, current_run_dir, in_sweep
from lstm_cli.runs.status import read_status, write_status
from lstm_cli.training.loop import Training
from lstm_cli.training.results import finish
from lstm_cli.training.signals import stop_on_signals

log = logging.getLogger("lstm_cli.train")


def run(cfg: DictConfig) -> float:
    """Train; return the best value of the monitored metric (what sweepers optimise)."""
    started = time.time()
    run_dir = current_run_dir()
    world = join_process_group()
    with exclusive(run_dir) if world.is_main else nullcontext():
        return _train(cfg, run_dir, world, started)


def _train(cfg: DictConfig, run_dir: Path, world: World, started: float) -> float:
    last = run_dir / "checkpoints" / "last.pt"
    rerun = in_sweep() and last.exists()  # a sweep run again into its own directory
    if rerun and read_status(run_dir).get("status") == "finished":
        log.info("%s: finished in an earlier run of this sweep; kept as it is", run_dir)
        return _read_results(run_dir)["best_value"]
    status = write_status if world.is_main else _no_status
    status(run_dir, "running")
    training: Training | None = None
    try:
        values = loss_for_task(resolve(cfg), command_line())
        config, _ = validate_train_config(values)  # errors name the files as they were given
        values["dataset"] = absolute_paths(values["dataset"])  # saved: found from anywhere
        resumed = load_checkpoint(last) if config.resume or rerun else None
        if resumed is not None:  # the saved run goes on, as saved but for the keys given
            values = continued_config(resumed["config"], values, command_line())
            config, _ = validate_train_config(values)
        with stop_on_signals() as stop:  # from the start: a SIGTERM while loading counts
            training = Training(config, values, run_dir, resumed, world)
            show_start(training, resuming=resumed is not None)
            training.fit(stop)
        results = finish(training, started)
        status(run_dir, "finished")  # results.json is written: a kill from here loses nothing
        if world.is_main:
            show_results(training, results)
    except Interrupted as err:
        status(run_dir, "interrupted", error=str(err))
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, resumable from last.pt
        status(run_dir, "interrupted", error="interrupted by a second SIGINT")
        raise
    except BaseException as err:
        status(run_dir, "failed", error=describe(err))
        raise
    finally:
        wait_for_fills()  # the cache entry this run writes is in place, and its log says so
        if training is not None:
            _close(training)
        leave_process_group()
    return training.progress.best.value


def _read_results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


def _close(training: Training) -> None:
    """However the run ends: TensorBoard flushed, curves.png of the epochs so far (`plots`)."""
    training.close_logs()
    rows = training.progress.rows
    if rows and training.world.is_main and training.config.plots:
        monitor, best_epoch = training.config.trainer.monitor, training.progress.best.epoch
        plots.learning_curves(rows, monitor, best_epoch, training.run_dir / "curves.png")


def _no_status(*_args: Any, **_details: Any) -> None:
    """Ranks other than 0 leave status.json to rank 0."""
