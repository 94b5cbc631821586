"""`lstm-train train`: fit an LSTM to a dataset and write a complete run directory.

The run directory gets: .hydra/ (the config and overrides), train.log, metrics.csv (a row
per epoch), checkpoints/last.pt and best.pt, results.json. The loop, top to bottom:
seed; load and split the data; build model, optimizer, scheduler and loss; then per epoch
shuffle, train step by step, validate, step the scheduler, log a row, checkpoint, and stop
early when the monitored metric stops improving; finally restore the best weights and
score the test split.

Survives interruption: `resume=RUN_DIR` (or `latest`) continues a run in its own
directory to the same result it would have reached; checkpoints are written every epoch
and every `trainer.checkpoint_every_steps` steps; SIGTERM or a first SIGINT finishes the
step, checkpoints and exits 143 or 130. Raises ConfigError, DataError, CheckpointError.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from lstm_cli import __version__
from lstm_cli.common.console import Reporter
from lstm_cli.common.distributed import (
    World,
    any_rank,
    join_process_group,
    leave_process_group,
    my_share,
    wrap_for_ranks,
)
from lstm_cli.common.errors import LstmCliError, describe
from lstm_cli.common.runtime import peak_memory_mib, resolve_device, seed_everything, set_threads
from lstm_cli.config.checks import validate_train_config
from lstm_cli.config.schema import TrainConfig
from lstm_cli.config.validate import resolve
from lstm_cli.data import load_dataset
from lstm_cli.data.batching import batch_order
from lstm_cli.data.placement import place
from lstm_cli.data.splits import PreparedData
from lstm_cli.model.network import LSTMNetwork, ModelSpec, layer_summary
from lstm_cli.reporting import plots
from lstm_cli.runs.checkpoint import load_checkpoint, save_checkpoint
from lstm_cli.runs.resume import check_resumable
from lstm_cli.runs.rundir import MetricsLog, current_run_dir, mark_latest, write_json_atomic
from lstm_cli.runs.status import write_status
from lstm_cli.training.baselines import baseline_rows, compare, warnings_for
from lstm_cli.training.early_stopping import BestTracker
from lstm_cli.training.engine import (
    EpochSums,
    NonFiniteGradient,
    Update,
    evaluate_split,
    train_steps,
)
from lstm_cli.training.losses import build_loss
from lstm_cli.training.optim import build_optimizer, build_scheduler, step_scheduler
from lstm_cli.training.precision import Precision
from lstm_cli.training.signals import StopRequest, stop_on_signals
from lstm_cli.training.state import Trainee, TrainingProgress, checkpoint_payload, restore
from lstm_cli.training.tensorboard_log import TensorBoardLog

log = logging.getLogger("lstm_cli.train")


class Interrupted(LstmCliError):
    """A stopping signal arrived; the run checkpointed and can be resumed."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run(cfg: DictConfig) -> float:
    """Train; return the best value of the monitored metric (what sweepers optimise)."""
    started = time.time()
    run_dir = current_run_dir()
    world = join_process_group()
    status = write_status if world.is_main else _no_status
    status(run_dir, "running")
    training: Training | None = None
    try:
        values = resolve(cfg)
        config, _ = validate_train_config(values)
        resumed = load_checkpoint(run_dir / "checkpoints" / "last.pt") if config.resume else None
        if resumed is not None:
            check_resumable(resumed["config"], values)
        training = Training(config, values, run_dir, resumed, world)
        with stop_on_signals() as stop:
            training.fit(stop)
        best = training.finish(started)
    except Interrupted as err:
        status(run_dir, "interrupted", error=str(err))
        raise
    except BaseException as err:
        status(run_dir, "failed", error=describe(err))
        raise
    finally:
        if training is not None:
            training.close_logs()
        leave_process_group()
    status(run_dir, "finished")
    return best


def _no_status(*_args: Any, **_details: Any) -> None:
    """Ranks other than 0 leave status.json to rank 0."""


class Training:
    """One training run: its data, model, optimizer and progress, from setup to results."""

    def __init__(
        self,
        config: TrainConfig,
        values: dict[str, Any],
        run_dir: Path,
        resumed: dict[str, Any] | None,
        world: World,
    ) -> None:
        trainer = config.trainer
        self.config, self.values, self.run_dir, self.world = config, values, run_dir, world
        self.checkpoints = run_dir / "checkpoints"
        self.device = resolve_device(trainer.device, local_rank=world.local_rank)
        self.reporter = Reporter(console=world.is_main)
        threads = set_threads(trainer.num_threads)
        seed_everything(trainer.seed)
        fitted = resumed["preprocessing"] if resumed else None
        data = load_dataset(config.dataset, fitted=fitted)
        self.data, self.data_on_device = place(data, self.device, config.data.on_device)
        self.spec = ModelSpec.of(config.model, self.data)
        model = LSTMNetwork(self.spec, packed=config.data.packed).to(self.device)
        optimizer = build_optimizer(config.optimizer, model.parameters())
        scheduler = build_scheduler(config.scheduler, optimizer, trainer.max_epochs, trainer.mode)
        shuffle = torch.Generator().manual_seed(trainer.seed)
        self.precision = Precision(trainer.precision, self.device)
        self.trainee = Trainee(model, optimizer, scheduler, shuffle, self.precision.scaler)
        self.stepping_model = wrap_for_ranks(model, world, self.device)
        self.loss_fn = build_loss(config.loss, self.data.task)
        self.metrics_log = MetricsLog(run_dir / "metrics.csv")
        wants_tensorboard = config.logger.name == "tensorboard" and world.is_main
        self.tensorboard = (
            TensorBoardLog(run_dir, config.logger.every_steps) if wants_tensorboard else None
        )
        if resumed is None:
            self.progress = TrainingProgress(
                shuffle.get_state(),
                EpochSums.zeros(self.device),
                BestTracker(trainer.monitor, trainer.mode, trainer.min_delta),
            )
            self.best_state = {}
        else:
            self.progress = restore(resumed, self.trainee, self.device)
            if world.is_main:
                self.metrics_log.rewrite(self.progress.rows)
            else:  # the checkpoint's loss sums are all ranks' together, held by rank 0
                self.progress.sums.values[:2] = 0.0
            best = self.checkpoints / "best.pt"  # absent if killed before the first epoch ended
            self.best_state = load_checkpoint(best)["model_state"] if best.exists() else {}
        self.first_step = self.progress.global_step  # logged: start-up time is measured
        if world.is_main:
            mark_latest(run_dir)
        self._summarise(threads, resumed)

    def fit(self, stop: StopRequest) -> None:
        """Epochs from where the progress stands until max_epochs or early stopping."""
        trainer, progress = self.config.trainer, self.progress
        while progress.epoch < trainer.max_epochs and not self._stopped_early():
            epoch = progress.epoch + 1
            self.trainee.shuffle.set_state(progress.shuffle_state)
            order = batch_order(
                self.data.train.sequence_lengths(),
                trainer.batch_size,
                shuffle=True,
                bucket=self.config.data.bucket,
                generator=self.trainee.shuffle,
            )
            size = self.world.size  # under torchrun: this rank's share of each batch
            order = [my_share(batch, self.world) for batch in order if len(batch) >= size]
            started = time.perf_counter()
            done = self._train_epoch_steps(epoch, order, stop)
            if done < len(order):
                self._interrupt(stop, epoch, done)
            self._end_epoch(epoch, time.perf_counter() - started)
            if stop.signal:
                self._interrupt(stop, epoch + 1, 0)

    def _train_epoch_steps(self, epoch: int, order: list[torch.Tensor], stop: StopRequest) -> int:
        trainer, progress = self.config.trainer, self.progress
        every = trainer.checkpoint_every_steps

        with self.reporter.progress(f"epoch {epoch}/{trainer.max_epochs}", len(order)) as bar:

            def after_step(
                done: int, loss: torch.Tensor, grad_norm: torch.Tensor, sequences: int
            ) -> bool:
                bar(loss, sequences)
                if progress.global_step == self.first_step:
                    log.info("first optimizer step at %.3f (unix time)", time.time())
                progress.global_step += 1
                if self.tensorboard is not None:
                    lr = self.trainee.optimizer.param_groups[0]["lr"]
                    self.tensorboard.step(progress.global_step, loss, grad_norm, lr)
                progress.batch_in_epoch = done
                stopping = any_rank(stop.signal is not None, self.device)
                if (every and progress.global_step % every == 0) or stopping:
                    self._save("last.pt")
                return stopping

            try:
                return train_steps(
                    self.stepping_model,
                    self.data.train,
                    order,
                    progress.batch_in_epoch,
                    Update(
                        self.trainee.optimizer,
                        self.config.clip,
                        self.precision,
                        skip_nonfinite=trainer.on_nonfinite == "skip_batch",
                    ),
                    self.loss_fn,
                    progress.sums,
                    self.device,
                    after_step,
                )
            except NonFiniteGradient as err:
                last = self.checkpoints / "last.pt"
                kept = (
                    f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
                )
                raise LstmCliError(
                    f"non-finite loss or gradient at epoch {epoch}, step {err.args[0]} of"
                    f" {len(order)}; {kept} (trainer.on_nonfinite=skip_batch skips such batches)"
                ) from None

    def _end_epoch(self, epoch: int, seconds: float) -> None:
        """Validate, log the epoch's row, step the scheduler, checkpoint last (and best)."""
        trainer, progress = self.config.trainer, self.progress
        val = evaluate_split(
            self.trainee.model,
            self.data.val,
            self.data,
            self.loss_fn,
            trainer.batch_size * 4,
            self.device,
            self.world,
        )
        progress.sums.gather_on_main(self.world)
        improved = progress.best.update(val[trainer.monitor.split("/", 1)[1]], epoch)
        lr = self.trainee.optimizer.param_groups[0]["lr"]
        step_scheduler(self.trainee.scheduler, progress.best.latest)
        row = {
            "epoch": epoch,
            **progress.sums.stats(),
            **{f"val/{name}": value for name, value in val.items()},
            "lr": lr,
            "epoch_seconds": seconds,
            "sequences_per_second": len(self.data.train) / max(seconds, 1e-9),
        }
        progress.rows.append(row)
        progress.epoch, progress.batch_in_epoch = epoch, 0
        progress.shuffle_state = self.trainee.shuffle.get_state()
        progress.sums = EpochSums.zeros(self.device)
        self._save("last.pt")
        if improved:
            self._save("best.pt")
            self.best_state = {
                k: v.detach().clone() for k, v in self.trainee.model.state_dict().items()
            }
        if self.tensorboard is not None:
            self.tensorboard.epoch(row)
        if self.world.is_main:
            self.metrics_log.append(row)
            log.info(_epoch_line(row, trainer.max_epochs, improved))

    def _stopped_early(self) -> bool:
        """Patience counts epochs, but a small dataset's epoch is a few steps: no stop
        before `trainer.min_steps` optimizer steps, however many epochs that takes."""
        trainer, best = self.config.trainer, self.progress.best
        patience = trainer.patience
        if patience is None or best.epochs_since_best < patience:
            return False
        if self.progress.global_step < trainer.min_steps:
            return False
        log.info(
            "early stopping: %s has not improved for %d epochs (best %.6g at epoch %d)",
            best.monitor,
            patience,
            best.value,
            best.epoch,
        )
        return True

    def _interrupt(self, stop: StopRequest, epoch: int, done: int) -> None:
        raise Interrupted(
            f"interrupted by {stop.signal.name} in epoch {epoch} after {done} batches;"
            f" checkpoint saved; continue with: lstm-train train resume={self.run_dir}",
            stop.exit_code,
        )

    def _save(self, name: str) -> None:
        """Rank 0 writes, after all ranks pool their loss sums into its copy.

        Never a state past a halting non-finite batch: that raises instead.
        """
        self.progress.sums.raise_if_halted()
        self.progress.sums.gather_on_main(self.world)
        if self.world.is_main:
            payload = checkpoint_payload(
                self.trainee, self.progress, self.values, self.data, self.spec
            )
            save_checkpoint(payload, self.checkpoints / name)

    def finish(self, started: float) -> float:
        """Score the test split with the best weights; write results.json; return best value."""
        trainer, best = self.config.trainer, self.progress.best
        if self.best_state:  # empty only when no epoch ever improved (a NaN monitor)
            self.trainee.model.load_state_dict(self.best_state)
        test = evaluate_split(
            self.trainee.model,
            self.data.test,
            self.data,
            self.loss_fn,
            trainer.batch_size * 4,
            self.device,
            self.world,
        )
        comparison = compare(test, self.data, self.data.test, self.loss_fn, trainer.batch_size * 4)
        warnings = warnings_for(comparison, "test", self.data.task, best.epoch, self.progress.epoch)
        results = {
            "run_dir": str(self.run_dir.resolve()),
            "dataset": self.config.dataset.name,
            "task": self.data.task,
            "monitor": trainer.monitor,
            "best_epoch": best.epoch,
            "best_value": best.value,
            "epochs_completed": self.progress.epoch,
            "stopped_early": self.progress.epoch < trainer.max_epochs,
            "test": {f"test/{name}": value for name, value in test.items()},
            **comparison.to_dict("test"),
            "warnings": warnings,
            "parameters": sum(p.numel() for p in self.trainee.model.parameters()),
            "wall_seconds": round(time.time() - started, 3),
            **peak_memory_mib(self.device),
            "best_checkpoint": str((self.checkpoints / "best.pt").resolve()),
            "tool_version": __version__,
        }
        if not self.world.is_main:
            return best.value
        write_json_atomic(self.run_dir / "results.json", results)
        if self.tensorboard is not None:
            final = {trainer.monitor: best.value, **results["test"]}
            self.tensorboard.hyperparameters(self.values, final)
        self.reporter.sparkline(
            trainer.monitor, [row[trainer.monitor] for row in self.progress.rows], best.epoch
        )
        self.reporter.table(
            "results",
            {
                "best epoch": best.epoch,
                trainer.monitor: best.value,
                **results["test"],
                **baseline_rows(comparison, "test"),
                "run dir": str(self.run_dir),
            },
        )
        for line in warnings:
            log.warning("warning: %s", line)
        return best.value

    def close_logs(self) -> None:
        """However the run ends: curves.png of the epochs so far, TensorBoard files flushed."""
        if self.tensorboard is not None:
            self.tensorboard.close()
        rows = self.progress.rows
        if rows and self.world.is_main:
            plots.learning_curves(
                rows,
                self.config.trainer.monitor,
                self.progress.best.epoch,
                self.run_dir / "curves.png",
            )

    def _summarise(self, threads: int, resumed: dict[str, Any] | None) -> None:
        log.info("run directory: %s", self.run_dir)
        if resumed is not None:
            log.info(
                "resuming after epoch %d, batch %d (step %d)",
                self.progress.epoch,
                self.progress.batch_in_epoch,
                self.progress.global_step,
            )
        self.reporter.table("data", _data_summary(self.config.dataset.name, self.data))
        parameters = sum(p.numel() for p in self.trainee.model.parameters())
        self.reporter.table(
            "model",
            {
                **layer_summary(self.trainee.model),
                "parameters": f"{parameters:,}",
                "device": str(self.device),
                "precision": self.precision.name,
                "data on device": self.data_on_device,
                "threads": threads,
            },
        )


def _data_summary(name: str, data: PreparedData) -> dict[str, Any]:
    lengths = data.train.sequence_lengths().float()
    return {
        "dataset": name,
        "task": data.task,
        "train": len(data.train),
        "val": len(data.val),
        "test": len(data.test),
        "inputs": data.input_size,
        **_input_names(data),
        "outputs": data.output_size,
        "length min/mean/max": f"{int(lengths.min())}/{lengths.mean():.1f}/{int(lengths.max())}",
        **_what_is_predicted(data),
    }


def _input_names(data: PreparedData) -> dict[str, str]:
    """The input columns by name, so that a stray id or time column shows at once."""
    state = data.preprocessing
    names = state.get("features") or state.get("columns")
    shown = {"features": ", ".join(str(n) for n in names)} if names else {}
    if "transform" in state:  # forecasting: what `auto` chose
        shown["transform"] = ", ".join(state["transform"]) or "none"
    return shown


def _what_is_predicted(data: PreparedData) -> dict[str, str]:
    """Classes, target columns or vocabulary size, whichever the task has."""
    state = data.preprocessing
    if state.get("classes"):
        return {"classes": ", ".join(str(c) for c in state["classes"][:20])}
    if state.get("targets"):
        return {"targets": ", ".join(state["targets"])}
    if state.get("vocab"):
        return {"vocabulary": f"{len(state['vocab'])} symbols"}
    return {}


def _epoch_line(row: dict[str, Any], max_epochs: int, improved: bool) -> str:
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if "/" in k)
    mark = " *" if improved else ""
    return (
        f"epoch {row['epoch']}/{max_epochs}  {metrics}  lr {row['lr']:.3g}"
        f"  grad_norm {row['grad_norm']:.3g}  {row['epoch_seconds']:.2f}s"
        f"  {row['sequences_per_second']:.0f} seq/s{mark}"
    )
