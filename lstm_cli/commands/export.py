"""`lstm-train export`: a trained model as ONNX or TorchScript, with its metadata beside it.

Writes <output> (default <run dir>/model.onnx or model.pt) and <output>.json: the task,
the input and output names and shapes, the preprocessing the inputs need (scalers,
transforms, vocabulary, classes, window) and the measured difference from PyTorch. The
exported file is checked before it is written: it runs on a batch of the run's own test
data and must give PyTorch's outputs within `tolerance`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from lstm_cli import __version__
from lstm_cli.common.atomic import atomic_file
from lstm_cli.common.console import Reporter
from lstm_cli.common.errors import LstmCliError
from lstm_cli.config.checks import validate_export_config
from lstm_cli.config.validate import resolve
from lstm_cli.data import load_dataset
from lstm_cli.data.cache import cache_folder
from lstm_cli.model.export import export
from lstm_cli.runs.inference import load_trained
from lstm_cli.runs.rundir import checkpoint_path, current_run_dir, mark_latest, refuse_to_replace

log = logging.getLogger("lstm_cli.model.export")

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
CHECK_BATCH = 16


def run(cfg: DictConfig) -> str:
    options = validate_export_config(resolve(cfg))
    path = checkpoint_path(options.run_dir, options.checkpoint, options.which)
    run_dir = current_run_dir()
    output = (
        Path(options.output).expanduser()
        if options.output
        else run_dir / f"model{SUFFIXES[options.format]}"
    )
    metadata_path = output.with_suffix(output.suffix + ".json")
    refuse_to_replace([output, metadata_path], options.overwrite, "overwrite")
    reporter = Reporter()
    trained = load_trained(path, torch.device("cpu"))
    config = trained.config
    data = load_dataset(
        config.dataset,
        fitted=trained.preprocessing,
        cache=cache_folder(config),
        streaming=config.data.streaming,
    )
    samples = torch.arange(min(len(data.test), CHECK_BATCH))
    check = data.test.take(samples)
    trace = data.test.take(samples[: max(len(samples) // 2, 1)])
    exported = export(trained.model, trace, check, options.format)
    difference = exported.max_difference
    if difference is not None and not difference <= options.tolerance:
        raise LstmCliError(
            f"export: the {options.format} model's outputs differ from PyTorch's by"
            f" {difference:.3g}, more than tolerance={options.tolerance:g}; nothing written"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(output, "wb") as stream:
        stream.write(exported.body)
    token_input = trained.model.spec.token_input
    dtypes = {"x": "int64 token ids" if token_input else "float32", "lengths": "int64"}
    metadata = {
        "format": options.format,
        "model": str(output.resolve()),
        "checkpoint": str(path.resolve()),
        "epoch": trained.epoch,
        "task": trained.task,
        "dataset": config.dataset.name,
        "inputs": {
            name: {"shape": shape, "dtype": dtypes[name]} for name, shape in exported.inputs.items()
        },
        "outputs": {"y": {"shape": exported.outputs["y"], "dtype": "float32"}},
        "model_spec": trained.model.spec.to_dict(),
        "preprocessing": trained.preprocessing,
        "checked_on_test_sequences": len(samples),
        "max_difference_from_pytorch": difference,
        "tool_version": __version__,
    }
    with atomic_file(metadata_path, "w", encoding="utf-8") as stream:
        json.dump(metadata, stream, indent=2)
    mark_latest(run_dir)
    checked = (
        f"{difference:.2g} (tolerance {options.tolerance:g})"
        if difference is not None
        else "not checked: pip install 'lstm-train[export]' for onnxruntime"
    )
    reporter.table(
        f"exported {options.format}",
        {
            "model": str(output),
            "metadata": str(metadata_path),
            **{f"input {k}": f"[{', '.join(v)}]" for k, v in exported.inputs.items()},
            **{f"output {k}": f"[{', '.join(v)}]" for k, v in exported.outputs.items()},
            "max difference from PyTorch": checked,
        },
    )
    return str(output)
