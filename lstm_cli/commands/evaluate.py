"""`lstm-train evaluate`: score a trained model on a split of the data it was trained on.

Reads the checkpoint named by run_dir= (best.pt, or last.pt with which=last) or
checkpoint=, rebuilds the dataset with the checkpoint's own preprocessing, and writes
metrics.json (metrics in the data's own units, beside the trivial answers' on the same
split and the model's skill against the best of them) into its run directory, with a picture by
task (confusion_matrix.png, fit.png or forecast.png) when matplotlib is installed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig

from lstm_cli.common.console import Reporter
from lstm_cli.common.runtime import resolve_device
from lstm_cli.config.schema import EvaluateConfig
from lstm_cli.config.validate import build, resolve
from lstm_cli.data import load_dataset, parallel_streams, scored_file
from lstm_cli.data.cache import cache_folder
from lstm_cli.data.files import changed_files, fingerprints, resolve_path
from lstm_cli.reporting.split_plots import plot_split
from lstm_cli.runs.inference import load_trained
from lstm_cli.runs.rundir import checkpoint_path, current_run_dir, mark_latest, write_json_atomic
from lstm_cli.training.baselines import baseline_rows, compare, warnings_for
from lstm_cli.training.evaluation import evaluate_split
from lstm_cli.training.losses import build_loss

log = logging.getLogger("lstm_cli.evaluate")


def run(cfg: DictConfig) -> dict[str, float]:
    options = build(EvaluateConfig, resolve(cfg))
    device = resolve_device(options.device, "device")
    path = checkpoint_path(options.run_dir, options.checkpoint, options.which)
    reporter = Reporter()
    trained = load_trained(path, device)
    data = load_dataset(
        trained.config.dataset,
        fitted=trained.preprocessing,
        cache=cache_folder(trained.config),
        streaming=trained.config.data.streaming,
        text_streams=parallel_streams(trained.config.trainer),
    )
    run_dir = current_run_dir()
    loss_fn = build_loss(trained.config.loss, trained.task)
    name, held = options.split, options.split
    if options.input:  # a new labelled file, scored whole in the split's place
        source = resolve_path(options.input, "input")
        new_file = scored_file(source, trained.config.dataset, trained.preprocessing)
        data, name, held = replace(data, test=new_file), "input", "test"
    split = getattr(data, held)
    scores = evaluate_split(trained.model, split, data, loss_fn, options.batch_size, device)
    comparison = compare(scores, data, split, loss_fn, options.batch_size)
    data_files = fingerprints(trained.config.dataset)
    warnings = changed_files(trained.preprocessing.get("data_files", {}), data_files)
    warnings += warnings_for(comparison, name, trained.task)
    metrics = {f"{name}/{metric}": value for metric, value in scores.items()}
    write_json_atomic(
        run_dir / "metrics.json",
        {
            "checkpoint": str(path.resolve()),
            "epoch": trained.epoch,
            "dataset": trained.config.dataset.name,
            "task": trained.task,
            "split": name,
            "input": str(Path(options.input).expanduser().absolute()) if options.input else None,
            "data_files": data_files,
            "samples": len(split),
            "metrics": metrics,
            **comparison.to_dict(name),
            "warnings": warnings,
        },
    )
    plot_split(trained.model, data, held, options.batch_size, device, run_dir)
    mark_latest(run_dir)
    reporter.table(
        f"{trained.config.dataset.name} {name}" + ("" if options.input else " split"),
        {**metrics, **baseline_rows(comparison, name)},
    )
    for line in warnings:
        log.warning("warning: %s", line)
    return metrics
