"""The training loop, top to bottom.

Setup: threads, seed, data, the defaults it settles (`auto_defaults.py`), model,
optimizer, scheduler, loss, the progress so far (fresh or from a checkpoint). Per epoch:
shuffle; per batch the optimizer step (`train_batch`), progress, a step checkpoint when
due, a look at the stopping signals; then validate, log the row, step the scheduler,
checkpoint best then last, stop early when the monitored metric stops improving. With
`trainer.refit`, a fresh network then learns from the training and validation data
together for as many steps as validation chose, and its weights are the run's (the
validated ones kept in `checkpoints/validated.pt`), or with `refit=average` both answer
together (`refit.py`). Finally the network the run answers with scores the test split
(`results.py`). A run killed at any point continues from `checkpoints/last.pt` to the
result it would have reached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lstm_cli import STARTED_AT
from lstm_cli.common.atomic import remove_leftovers
from lstm_cli.common.console import Reporter
from lstm_cli.common.distributed import World, any_rank, wrap_for_ranks
from lstm_cli.common.runtime import resolve_device, seed_everything, set_threads
from lstm_cli.config.schema import TrainConfig
from lstm_cli.data import load_dataset, parallel_streams
from lstm_cli.data.augment import augmenter
from lstm_cli.data.batching import epoch_order, read_ahead
from lstm_cli.data.cache import cache_folder
from lstm_cli.data.files import fingerprints
from lstm_cli.data.joined import JoinedSplit
from lstm_cli.data.placement import place
from lstm_cli.data.splits import Split, StreamSplit
from lstm_cli.model.averaged import Network
from lstm_cli.model.network import CarriedState, LSTMNetwork, ModelSpec
from lstm_cli.runs.checkpoint import load_checkpoint, save_checkpoint
from lstm_cli.runs.rundir import MetricsLog, mark_latest
from lstm_cli.training.auto_defaults import settle
from lstm_cli.training.early_stopping import BestTracker, stops_early
from lstm_cli.training.evaluation import evaluate_split
from lstm_cli.training.losses import build_loss
from lstm_cli.training.metrics import epoch_line
from lstm_cli.training.optim import build_optimizer, build_scheduler, step_scheduler
from lstm_cli.training.precision import Precision
from lstm_cli.training.refit import averages, final_network, refit_applies, refit_plan
from lstm_cli.training.signals import StopRequest
from lstm_cli.training.state import (
    Trainee,
    TrainingProgress,
    agreeing_best,
    checkpoint_payload,
    restore,
)
from lstm_cli.training.step import EpochSums, NonFiniteGradient, Update, train_batch
from lstm_cli.training.stops import interrupted, nonfinite
from lstm_cli.training.tensorboard_log import TensorBoardLog

log = logging.getLogger("lstm_cli.train")


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
            remove_leftovers(self.checkpoints, ("last.pt", "best.pt", "validated.pt"))
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
        self.config, self.roughness = settle(config, self.data)  # the auto keys, by the data
        config, trainer = self.config, self.config.trainer
        self.augment = augmenter(config.augment, self.data)
        self.spec = ModelSpec.of(config.model, self.data)
        self.precision = Precision(trainer.precision, self.device)
        self._new_network()
        self.train_split: Split = self.data.train
        self.loss_fn = build_loss(config.loss, self.data.task)
        self.metrics_log = MetricsLog(run_dir / "metrics.csv")
        self.tensorboard: TensorBoardLog | None = None
        if config.logger.name == "tensorboard" and world.is_main:
            self.tensorboard = TensorBoardLog(run_dir, config.logger.every_steps)
        if resumed is None:
            self.progress = TrainingProgress(
                self.trainee.shuffle.get_state(),
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
            self.best_state = agreeing_best(self.checkpoints / "best.pt", self.progress.best.epoch)
            if self.progress.refit is not None:  # resumed in the refit
                self.train_split = JoinedSplit([self.data.train, self.data.val])
        if isinstance(self.data.train, StreamSplit):  # text as parallel streams (tbptt)
            self.progress.carried = self.progress.carried or CarriedState()
        self.first_step = self.progress.global_step  # logged: start-up time is measured
        # `latest` moves to this run once it has a checkpoint to evaluate or resume from
        self.latest_marked = False
        self._mark_latest()

    def _new_network(self) -> None:
        """The network, drawn from the RNG, its optimizer, scheduler and update step."""
        config, trainer = self.config, self.config.trainer
        model = LSTMNetwork(self.spec, config.data.packed, trainer.tbptt).to(self.device)
        optimizer = build_optimizer(config.optimizer, model.parameters())
        scheduler = build_scheduler(config.scheduler, optimizer, trainer)
        shuffle = torch.Generator().manual_seed(trainer.seed)
        self.trainee = Trainee(model, optimizer, scheduler, shuffle, self.precision.scaler)
        self.stepping_model = wrap_for_ranks(model, self.world, self.device)
        skip = trainer.on_nonfinite == "skip_batch"
        self.update = Update(optimizer, config.clip, self.precision, skip, scheduler)

    def fit(self, stop: StopRequest) -> None:
        """Epochs from where the progress stands until max_epochs or early stopping, then
        the refit's (trainer.refit)."""
        progress = self.progress
        if stop.requested():  # arrived while the data and model were being set up
            raise interrupted(stop, self.run_dir, self._epoch_name(), progress.batch_in_epoch)
        while progress.refit is None and not self._validated():
            self._run_epoch(stop, self._end_epoch)
        if progress.refit is None and refit_applies(
            self.config.trainer, progress.best.epoch, self.data
        ):
            self._start_refit()
        while progress.refit is not None and progress.refit.done < progress.refit.epochs:
            self._run_epoch(stop, self._end_refit_epoch)

    def _validated(self) -> bool:
        """Whether the validated epochs are over: max_epochs reached or stopped early."""
        progress, trainer = self.progress, self.config.trainer
        reached = progress.epoch >= trainer.max_epochs
        return reached or stops_early(progress.best, trainer, progress.global_step)

    def _epoch_name(self) -> str:
        """The epoch in progress, as messages name it."""
        refit = self.progress.refit
        return (
            f"epoch {self.progress.epoch + 1}" if refit is None else f"refit epoch {refit.done + 1}"
        )

    def _run_epoch(self, stop: StopRequest, end: Callable[[float], None]) -> None:
        """One epoch's batches, then `end` (validation and checkpoints) with its seconds."""
        trainer, progress, name = self.config.trainer, self.progress, self._epoch_name()
        self.trainee.shuffle.set_state(progress.shuffle_state)
        bucket = self.config.data.bucket
        order = epoch_order(
            self.train_split, trainer.batch_size, bucket, self.trainee.shuffle, self.world
        )
        started = time.perf_counter()
        try:
            done = self._train_epoch(name, order, stop)
        except NonFiniteGradient as err:
            raise nonfinite(self.run_dir, name, err.args[0], len(order)) from None
        if done < len(order):
            raise interrupted(stop, self.run_dir, name, done)
        end(time.perf_counter() - started)
        if stop.requested():
            raise interrupted(stop, self.run_dir, self._epoch_name(), 0)

    def _train_epoch(self, name: str, order: list[torch.Tensor], stop: StopRequest) -> int:
        """The epoch's batches from where it stands; returns how many of `order` are done."""
        trainer, progress = self.config.trainer, self.progress
        every = trainer.checkpoint_every_steps
        total = progress.refit.epochs if progress.refit else trainer.max_epochs
        self.stepping_model.train()
        with self.reporter.progress(f"{name}/{total}", len(order)) as bar:
            for position, taken in read_ahead(self.train_split, order, progress.batch_in_epoch):
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

    def _end_epoch(self, seconds: float) -> None:
        """Validate, log the epoch's row, step the scheduler, checkpoint last (and best)."""
        trainer, progress = self.config.trainer, self.progress
        epoch = progress.epoch + 1
        val = self.score(self.data.val)
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
        progress.add_row(row)
        progress.epoch = epoch
        progress.next_epoch(self.trainee.shuffle.get_state())
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

    def _start_refit(self) -> None:
        """Validation has chosen the best epoch: a fresh network, drawn as the first was,
        learns from the training and validation data together for as long (`refit_plan`).
        The validated weights are kept in validated.pt."""
        trainer, progress = self.config.trainer, self.progress
        self.train_split = JoinedSplit([self.data.train, self.data.val])
        plan = refit_plan(trainer, progress, len(self.train_split), self.world.size)
        if self.world.is_main:
            validated = load_checkpoint(self.checkpoints / "best.pt")
            save_checkpoint(validated, self.checkpoints / "validated.pt")
        seed_everything(trainer.seed)
        self._new_network()
        progress.refit = plan
        progress.shuffle_state = self.trainee.shuffle.get_state()
        log.info(
            "refit: a new network learns from the %d training and validation sequences for"
            " %d epochs (%d steps; validation chose epoch %d, kept in checkpoints/validated.pt)",
            len(self.train_split),
            plan.epochs,
            plan.steps,
            progress.best.epoch,
        )
        self._save("last.pt")

    def _end_refit_epoch(self, seconds: float) -> None:
        """A refit epoch's end: no validation (its data is trained on), last.pt, and after the
        last epoch best.pt first, the network the run answers with (`final_network`):
        evaluate, predict and export use it."""
        trainer, progress, refit = self.config.trainer, self.progress, self.progress.refit
        assert refit is not None
        progress.sums.gather_on_main(self.world)
        loss = progress.sums.stats()["train/loss"]
        step_scheduler(self.trainee.scheduler, None)
        refit.done += 1
        progress.next_epoch(self.trainee.shuffle.get_state())
        if refit.done == refit.epochs:  # rank 0 alone writes best.pt, so it alone builds it
            averaged = averages(trainer, progress) and self.world.is_main
            network = final_network(self.trainee.model, self.checkpoints, averaged, self.data.task)
            self._save("best.pt", network)
        self._save("last.pt")
        if self.world.is_main:
            quiet = 1 < refit.done < refit.epochs and refit.done % trainer.log_every_epochs != 0
            line = "refit epoch %d/%d  train/loss %.4g  %.2fs"
            log.info(line, refit.done, refit.epochs, loss, seconds, extra={"file_only": quiet})

    def _save(self, name: str, network: Network | None = None) -> None:
        """Rank 0 writes `network` (the one training unless given), after all ranks pool
        their loss sums into its copy.

        Never a state past a halting non-finite batch: that raises instead.
        """
        self.progress.sums.raise_if_halted()
        self.progress.gather_on_main(self.world)
        if self.world.is_main:
            answering = self.trainee.model if network is None else network
            payload = checkpoint_payload(
                self.trainee, answering, self.progress, self.values, self.data
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

    def score(self, split: Any, network: Network | None = None) -> dict[str, float]:
        """`split`'s loss and metrics by `network` (the one training unless given)."""
        return evaluate_split(
            self.trainee.model if network is None else network,
            split,
            self.data,
            self.loss_fn,
            self.config.trainer.batch_size * 4,
            self.device,
            self.world,
        )

    def close_logs(self) -> None:
        """However the run ends: TensorBoard's files flushed."""
        if self.tensorboard is not None:
            self.tensorboard.close()
