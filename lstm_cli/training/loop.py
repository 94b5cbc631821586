"""The training loop, top to bottom.

Setup: threads, seed, data, model, optimizer, scheduler, loss, the progress so far (fresh
or from a checkpoint). Per epoch: shuffle; per batch the optimizer step (`train_batch`),
progress, a step checkpoint when due, a look at the stopping signals; then validate, log
the row, step the scheduler, checkpoint best then last, stop early when the monitored
metric stops improving. Finally the best weights score the test split. A run killed at
any point continues from `checkpoints/last.pt` to the result it would have reached.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lstm_cli import STARTED_AT, __version__
from lstm_cli.common.atomic import remove_leftovers
from lstm_cli.common.console import Reporter
from lstm_cli.common.distributed import World, any_rank, wrap_for_ranks
from lstm_cli.common.errors import CheckpointError, Interrupted, LstmCliError
from lstm_cli.common.runtime import peak_memory_mib, resolve_device, seed_everything, set_threads
from lstm_cli.config.schema import TrainConfig
from lstm_cli.data import load_dataset, parallel_streams
from lstm_cli.data.augment import augmenter
from lstm_cli.data.batching import epoch_order, read_ahead
from lstm_cli.data.cache import cache_folder
from lstm_cli.data.files import fingerprints
from lstm_cli.data.placement import place
from lstm_cli.data.splits import StreamSplit
from lstm_cli.model.network import CarriedState, LSTMNetwork, ModelSpec
from lstm_cli.runs.checkpoint import load_checkpoint, save_checkpoint
from lstm_cli.runs.rundir import MetricsLog, mark_latest, write_json_atomic
from lstm_cli.training.baselines import Comparison, compare, warnings_for
from lstm_cli.training.early_stopping import BestTracker
from lstm_cli.training.evaluation import evaluate_split
from lstm_cli.training.losses import build_loss
from lstm_cli.training.metrics import epoch_line
from lstm_cli.training.optim import build_optimizer, build_scheduler, step_scheduler
from lstm_cli.training.precision import Precision
from lstm_cli.training.signals import StopRequest
from lstm_cli.training.state import Trainee, TrainingProgress, checkpoint_payload, restore
from lstm_cli.training.step import EpochSums, NonFiniteGradient, Update, train_batch
from lstm_cli.training.tensorboard_log import TensorBoardLog

log = logging.getLogger("lstm_cli.train")


@dataclass
class Results:
    """What a finished run reports: results.json's content and the baseline comparison."""

    values: dict[str, Any]
    comparison: Comparison
    warnings: list[str]


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
        if world.is_main:
            remove_leftovers(self.checkpoints, ("last.pt", "best.pt"))
            remove_leftovers(run_dir, ("metrics.csv", "results.json", "status.json"))
        self.device = resolve_device(trainer.device, local_rank=world.local_rank)
        self.reporter = Reporter(console=world.is_main)
        self.threads = set_threads(trainer.num_threads)
        seed_everything(trainer.seed)
        fitted = resumed["preprocessing"] if resumed else None
        loading = time.perf_counter()
        cache, streaming = cache_folder(config), config.data.streaming
        streams = parallel_streams(trainer)
        data = load_dataset(config.dataset, fitted, cache, streaming, text_streams=streams)
        self.data_load_seconds = round(time.perf_counter() - loading, 3)
        if resumed is None:  # what this run trains on, for evaluate to compare with later
            data.preprocessing["data_files"] = fingerprints(config.dataset)
        self.data, self.data_on_device = place(data, self.device, config.data.on_device)
        self.augment = augmenter(config.augment, self.data)
        self.spec = ModelSpec.of(config.model, self.data)
        model = LSTMNetwork(self.spec, config.data.packed, trainer.tbptt).to(self.device)
        optimizer = build_optimizer(config.optimizer, model.parameters())
        scheduler = build_scheduler(config.scheduler, optimizer, trainer)
        shuffle = torch.Generator().manual_seed(trainer.seed)
        self.precision = Precision(trainer.precision, self.device)
        self.trainee = Trainee(model, optimizer, scheduler, shuffle, self.precision.scaler)
        self.stepping_model = wrap_for_ranks(model, world, self.device)
        skip = trainer.on_nonfinite == "skip_batch"
        self.update = Update(optimizer, config.clip, self.precision, skip, scheduler)
        self.loss_fn = build_loss(config.loss, self.data.task)
        self.metrics_log = MetricsLog(run_dir / "metrics.csv")
        self.tensorboard: TensorBoardLog | None = None
        if config.logger.name == "tensorboard" and world.is_main:
            self.tensorboard = TensorBoardLog(run_dir, config.logger.every_steps)
        if resumed is None:
            self.progress = TrainingProgress(
                shuffle.get_state(),
                EpochSums.zeros(self.device),
                BestTracker(trainer.monitor, trainer.mode, trainer.min_delta),
            )
            self.best_state = {}
        else:
            self.progress = restore(resumed, self.trainee, self.device, world)
            if world.is_main:
                self.metrics_log.rewrite(self.progress.rows)
            else:
                self.progress.sums.leave_to_main()
            self.best_state = self._agreeing_best()
        if isinstance(self.data.train, StreamSplit):  # text as parallel streams (tbptt)
            self.progress.carried = self.progress.carried or CarriedState()
        self.first_step = self.progress.global_step  # logged: start-up time is measured
        # `latest` moves to this run once it has a checkpoint to evaluate or resume from
        self.latest_marked = False
        self._mark_latest()

    def _agreeing_best(self) -> dict[str, Any]:
        """best.pt's weights, checked against the best epoch last.pt records: best.pt is
        written first, so it is that epoch's or, killed between the writes, the next one's
        (which the resumed run redoes). Anything else was changed by hand."""
        path, recorded = self.checkpoints / "best.pt", self.progress.best.epoch
        if not path.exists():
            if recorded:
                raise CheckpointError(
                    f"{path} is missing, but checkpoints/last.pt records a best epoch"
                    f" ({recorded}); restore it or start a new run"
                )
            return {}
        best = load_checkpoint(path)
        if best["epoch"] < recorded:
            raise CheckpointError(
                f"{path} holds epoch {best['epoch']}, but checkpoints/last.pt records the best"
                f" at epoch {recorded}: the two disagree; restore them or start a new run"
            )
        return best["model_state"] if best["epoch"] == recorded else {}

    def fit(self, stop: StopRequest) -> None:
        """Epochs from where the progress stands until max_epochs or early stopping."""
        trainer, progress = self.config.trainer, self.progress
        if stop.requested():  # arrived while the data and model were being set up
            raise self._interrupted(stop, progress.epoch + 1, progress.batch_in_epoch)
        while progress.epoch < trainer.max_epochs and not self._stopped_early():
            epoch = progress.epoch + 1
            self.trainee.shuffle.set_state(progress.shuffle_state)
            bucket = self.config.data.bucket
            order = epoch_order(
                self.data.train, trainer.batch_size, bucket, self.trainee.shuffle, self.world
            )
            started = time.perf_counter()
            try:
                done = self._train_epoch(epoch, order, stop)
            except NonFiniteGradient as err:
                raise self._nonfinite(epoch, err.args[0], len(order)) from None
            if done < len(order):
                raise self._interrupted(stop, epoch, done)
            self._end_epoch(epoch, time.perf_counter() - started)
            if stop.requested():
                raise self._interrupted(stop, epoch + 1, 0)

    def _train_epoch(self, epoch: int, order: list[torch.Tensor], stop: StopRequest) -> int:
        """The epoch's batches from where it stands; returns how many of `order` are done."""
        trainer, progress = self.config.trainer, self.progress
        every = trainer.checkpoint_every_steps
        self.stepping_model.train()
        with self.reporter.progress(f"epoch {epoch}/{trainer.max_epochs}", len(order)) as bar:
            for position, taken in read_ahead(self.data.train, order, progress.batch_in_epoch):
                loss, grad_norm = train_batch(
                    self.stepping_model,
                    self.augment(taken.to(self.device)),
                    position,
                    self.update,
                    self.loss_fn,
                    progress.sums,
                    progress.carried,
                )
                bar(loss, len(order[position]))
                if progress.global_step == self.first_step:
                    after = time.time() - STARTED_AT
                    log.info("first optimizer step %.2f s after lstm-train started", after)
                progress.global_step += 1
                progress.batch_in_epoch = position + 1
                if self.tensorboard is not None:
                    lr = self.trainee.optimizer.param_groups[0]["lr"]
                    self.tensorboard.step(progress.global_step, loss, grad_norm, lr)
                stopping = any_rank(stop.requested(), self.device)
                if stopping or (every and progress.global_step % every == 0):
                    self._save("last.pt")
                if stopping:
                    return position + 1
        progress.sums.raise_if_halted()
        return len(order)

    def _end_epoch(self, epoch: int, seconds: float) -> None:
        """Validate, log the epoch's row, step the scheduler, checkpoint last (and best)."""
        trainer, progress = self.config.trainer, self.progress
        val = self._score(self.data.val)
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
        progress.carried = CarriedState() if progress.carried else None  # streams restart
        if improved:  # best.pt first: the last.pt that records it must never precede it
            self._save("best.pt")
            self.best_state = {
                k: v.detach().clone() for k, v in self.trainee.model.state_dict().items()
            }
        self._save("last.pt")
        if self.tensorboard is not None:
            self.tensorboard.epoch(row)
        if self.world.is_main:
            self.metrics_log.append(row)
            quiet = epoch > 1 and epoch % trainer.log_every_epochs != 0  # train.log has them all
            log.info(epoch_line(row, trainer.max_epochs, improved), extra={"file_only": quiet})

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

    def _save(self, name: str) -> None:
        """Rank 0 writes, after all ranks pool their loss sums into its copy.

        Never a state past a halting non-finite batch: that raises instead.
        """
        self.progress.sums.raise_if_halted()
        self.progress.gather_on_main(self.world)
        if self.world.is_main:
            payload = checkpoint_payload(
                self.trainee, self.progress, self.values, self.data, self.spec
            )
            save_checkpoint(payload, self.checkpoints / name)
            self._mark_latest()

    def _mark_latest(self) -> None:
        if (
            self.world.is_main
            and not self.latest_marked
            and (self.checkpoints / "last.pt").exists()
        ):
            mark_latest(self.run_dir)
            self.latest_marked = True

    def _score(self, split: Any) -> dict[str, float]:
        return evaluate_split(
            self.trainee.model,
            split,
            self.data,
            self.loss_fn,
            self.config.trainer.batch_size * 4,
            self.device,
            self.world,
        )

    def _interrupted(self, stop: StopRequest, epoch: int, done: int) -> Interrupted:
        if not (self.checkpoints / "last.pt").exists():
            return Interrupted(
                f"interrupted by {stop.cause} before the first checkpoint; nothing to"
                " resume: start the run again",
                stop.exit_code,
            )
        return Interrupted(
            f"interrupted by {stop.cause} in epoch {epoch} after {done} batches;"
            f" checkpoint saved; continue with: lstm-train train resume={self.run_dir}",
            stop.exit_code,
        )

    def _nonfinite(self, epoch: int, batch: int, batches: int) -> LstmCliError:
        last = self.checkpoints / "last.pt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
        return LstmCliError(
            f"non-finite loss or gradient at epoch {epoch}, step {batch} of {batches};"
            f" {kept} (trainer.on_nonfinite=skip_batch skips such batches)"
        )

    def finish(self, started: float) -> Results:
        """Score the test split with the best weights and its baselines; rank 0 writes
        results.json (and the TensorBoard hyperparameters)."""
        trainer, best = self.config.trainer, self.progress.best
        if self.best_state:  # empty only when no epoch ever improved (a NaN monitor)
            self.trainee.model.load_state_dict(self.best_state)
        test = self._score(self.data.test)
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
            "data_load_seconds": self.data_load_seconds,
            **peak_memory_mib(self.device),
            "best_checkpoint": str((self.checkpoints / "best.pt").resolve()),
            "tool_version": __version__,
        }
        if self.world.is_main:
            write_json_atomic(self.run_dir / "results.json", results)
            if self.tensorboard is not None:
                final = {trainer.monitor: best.value, **results["test"]}
                self.tensorboard.hyperparameters(self.values, final)
        return Results(results, comparison, warnings)

    def close_logs(self) -> None:
        """However the run ends: TensorBoard's files flushed."""
        if self.tensorboard is not None:
            self.tensorboard.close()
