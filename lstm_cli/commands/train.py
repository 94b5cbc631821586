"""`lstm-train train`: fit an LSTM to a dataset and write a complete run directory.

The run directory gets: .hydra/ (the config and overrides), train.log, metrics.csv (a row
per epoch), checkpoints/last.pt and best.pt, results.json. The loop, top to bottom:
seed; load and split the data; build model, optimizer, scheduler and loss; then per epoch
train, validate, step the scheduler, log a row, checkpoint, and stop early when the
monitored metric stops improving; finally restore the best weights and score the test split.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict
from typing import Any

import torch
from omegaconf import DictConfig

from lstm_cli import __version__
from lstm_cli.checkpoint import save_checkpoint
from lstm_cli.config.checks import validate_train_config
from lstm_cli.config.validate import resolve
from lstm_cli.console import Reporter
from lstm_cli.data import load_dataset
from lstm_cli.data.splits import PreparedData
from lstm_cli.early_stopping import BestTracker
from lstm_cli.engine import evaluate_split, train_epoch
from lstm_cli.losses import build_loss
from lstm_cli.model import LSTMNetwork, ModelSpec
from lstm_cli.optim import build_optimizer, build_scheduler, step_scheduler
from lstm_cli.rundir import MetricsLog, current_run_dir, mark_latest, write_json_atomic
from lstm_cli.runtime import resolve_device, seed_everything, set_threads

log = logging.getLogger("lstm_cli.train")


def run(cfg: DictConfig) -> float:
    """Train; return the best value of the monitored metric (what sweepers optimise)."""
    started = time.time()
    values = resolve(cfg)
    config, task = validate_train_config(values)
    trainer = config.trainer
    device = resolve_device(trainer.device)
    reporter = Reporter()
    threads = set_threads(trainer.num_threads)
    seed_everything(trainer.seed)

    data = load_dataset(config.dataset, trainer.seed)
    spec = ModelSpec.of(config.model, data)
    model = LSTMNetwork(spec, packed=config.data.packed).to(device)
    optimizer = build_optimizer(config.optimizer, model.parameters())
    scheduler = build_scheduler(config.scheduler, optimizer, trainer.max_epochs, trainer.mode)
    loss_fn = build_loss(config.loss, task)
    shuffle = torch.Generator().manual_seed(trainer.seed)
    parameter_count = sum(p.numel() for p in model.parameters())
    run_dir = current_run_dir()
    mark_latest(run_dir)
    log.info("run directory: %s", run_dir)
    reporter.table("data", _data_summary(config.dataset.name, data))
    reporter.table(
        "model",
        {
            "parameters": parameter_count,
            "device": str(device),
            "threads": threads,
            **spec.to_dict(),
        },
    )

    metrics_log = MetricsLog(run_dir / "metrics.csv")
    best = BestTracker(trainer.monitor, trainer.mode, trainer.min_delta)
    checkpoints = run_dir / "checkpoints"
    best_state: dict[str, torch.Tensor] = {}
    global_step = 0
    epoch = 0
    for epoch in range(1, trainer.max_epochs + 1):
        batches = -(-len(data.train) // trainer.batch_size)
        with reporter.progress(f"epoch {epoch}/{trainer.max_epochs}", batches) as advance:
            stats = train_epoch(
                model,
                data.train,
                optimizer,
                loss_fn,
                config.clip,
                trainer.batch_size,
                config.data.bucket,
                shuffle,
                device,
                advance,
            )
        global_step += stats.steps
        val = evaluate_split(model, data.val, data, loss_fn, trainer.batch_size * 4, device)
        lr = optimizer.param_groups[0]["lr"]
        improved = best.update(val[trainer.monitor.split("/", 1)[1]], epoch)
        step_scheduler(scheduler, best.latest)
        row = {
            "epoch": epoch,
            "train/loss": stats.loss,
            **{f"val/{name}": value for name, value in val.items()},
            "lr": lr,
            "grad_norm": stats.grad_norm,
            "clip_rate": stats.clip_rate,
            "epoch_seconds": stats.seconds,
            "sequences_per_second": stats.sequences_per_second,
        }
        metrics_log.append(row)
        log.info(_epoch_line(row, trainer.max_epochs, trainer.monitor, improved))
        state = _checkpoint_state(
            model, optimizer, scheduler, epoch, global_step, shuffle, values, task, data, spec, best
        )
        save_checkpoint(state, checkpoints / "last.pt")
        if improved:
            save_checkpoint(state, checkpoints / "best.pt")
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if trainer.patience is not None and best.epochs_since_best >= trainer.patience:
            log.info(
                "early stopping: %s has not improved for %d epochs (best %.6g at epoch %d)",
                trainer.monitor,
                trainer.patience,
                best.value,
                best.epoch,
            )
            break

    model.load_state_dict(best_state)
    test = evaluate_split(model, data.test, data, loss_fn, trainer.batch_size * 4, device)
    results = {
        "run_dir": str(run_dir.resolve()),
        "dataset": config.dataset.name,
        "task": task,
        "monitor": trainer.monitor,
        "best_epoch": best.epoch,
        "best_value": best.value,
        "epochs_completed": epoch,
        "stopped_early": epoch < trainer.max_epochs,
        "test": {f"test/{name}": value for name, value in test.items()},
        "parameters": parameter_count,
        "wall_seconds": round(time.time() - started, 3),
        "best_checkpoint": str((checkpoints / "best.pt").resolve()),
        "tool_version": __version__,
    }
    write_json_atomic(run_dir / "results.json", results)
    reporter.table(
        "results",
        {
            "best epoch": best.epoch,
            trainer.monitor: best.value,
            **results["test"],
            "run dir": str(run_dir),
        },
    )
    return best.value


def _data_summary(name: str, data: PreparedData) -> dict[str, Any]:
    lengths = data.train.sequence_lengths().float()
    return {
        "dataset": name,
        "task": data.task,
        "train": len(data.train),
        "val": len(data.val),
        "test": len(data.test),
        "inputs": data.input_size,
        "outputs": data.output_size,
        "length min/mean/max": f"{int(lengths.min())}/{lengths.mean():.1f}/{int(lengths.max())}",
    }


def _epoch_line(row: dict[str, Any], max_epochs: int, monitor: str, improved: bool) -> str:
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if "/" in k)
    mark = " *" if improved else ""
    return (
        f"epoch {row['epoch']}/{max_epochs}  {metrics}  lr {row['lr']:.3g}"
        f"  grad_norm {row['grad_norm']:.3g}  {row['epoch_seconds']:.2f}s"
        f"  {row['sequences_per_second']:.0f} seq/s{mark}"
    )


def _checkpoint_state(
    model, optimizer, scheduler, epoch, global_step, shuffle, values, task, data, spec, best
) -> dict[str, Any]:
    """Everything needed to evaluate, predict or resume, as tensors and plain containers."""
    return {
        "model_spec": spec.to_dict(),
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
        "global_step": global_step,
        "rng": {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "shuffle": shuffle.get_state(),
        },
        "config": values,
        "task": task,
        "preprocessing": data.preprocessing,
        "best": asdict(best),
    }
