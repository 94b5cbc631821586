"""Datasets: each kind of input file becomes a `PreparedData` of three in-memory splits."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from lstm_cli.common.errors import ConfigError
from lstm_cli.config.dataset_schema import (
    AddingDatasetConfig,
    ForecastDatasetConfig,
    NpzDatasetConfig,
    SequenceDatasetConfig,
    SineDatasetConfig,
    TextDatasetConfig,
)
from lstm_cli.data import forecast, generated, labels, npz, panel, sequences, streamed, text
from lstm_cli.data.splits import PreparedData, Split


def load_dataset(
    cfg: Any,
    fitted: dict[str, Any] | None = None,
    cache: Path | None = None,
    streaming: bool | str = False,
    text_streams: tuple[int, int] | None = None,
) -> PreparedData:
    """Load the dataset a config describes.

    `fitted` is the preprocessing state saved in a checkpoint: when given, the scalers,
    vocabulary and classes are reused instead of fitted again, as evaluate needs. Random
    splits follow `dataset.split_seed`, never `trainer.seed`: changing the seed of the
    weights keeps the same validation sequences. `cache` is the folder of the prepared-data
    cache (`data.cache_dir`), for the kinds that parse a large table; None: no cache.
    `streaming` (`data.streaming`: true, false, auto) keeps labelled sequences on disk.
    `text_streams` (chunk, streams): text read as parallel streams (`parallel_streams`).
    """
    if isinstance(cfg, ForecastDatasetConfig):
        return (panel if cfg.id_column else forecast).prepare(cfg, fitted)
    if isinstance(cfg, SequenceDatasetConfig):
        if streamed.wanted(streaming, cfg, cache):
            return streamed.prepare(cfg, fitted, cache)
        return sequences.prepare(cfg, fitted, cfg.split_seed, cache)
    if isinstance(cfg, TextDatasetConfig):
        return text.prepare(cfg, fitted, text_streams)
    if isinstance(cfg, NpzDatasetConfig):
        return npz.prepare(cfg, fitted, cfg.split_seed)
    if isinstance(cfg, SineDatasetConfig):
        return generated.sine(cfg, fitted)
    if isinstance(cfg, AddingDatasetConfig):
        return generated.adding(cfg, fitted)
    raise TypeError(f"no loader for {type(cfg).__name__}")


def parallel_streams(trainer: Any) -> tuple[int, int] | None:
    """How trainer.tbptt lays text out: chunks of tbptt characters, batch_size streams."""
    return (trainer.tbptt, trainer.batch_size) if trainer.tbptt else None


def scored_file(path: Path, dataset: Any, fitted: dict[str, Any]) -> Split:
    """What `evaluate input=FILE` scores, the file read as in training (preprocessing
    fitted then): every labelled sequence of a csv_sequences or npz file; for a forecaster,
    the windows whose targets fall in the file's last `test_size` steps (of each series),
    the way its test split was cut."""
    check_scorable_kind(str(path), fitted)
    if fitted["kind"] == "csv_forecast":
        return load_dataset(dataclasses.replace(dataset, path=str(path)), fitted).test
    if fitted["kind"] == "npz":
        raw = npz.read_npz(path, need_labels=True, features=len(fitted["features"]))
    else:
        raw = sequences.read_sequence_file(path, fitted, need_labels=True)
    y = labels.encode_labels(raw.labels, fitted, raw.source, raw.ids, raw.targets)
    everything = torch.arange(len(raw.ids))
    return sequences.scaled_split(raw, fitted, y, everything)


def check_scorable_kind(given: str, fitted: dict[str, Any]) -> None:
    """Only a file in a training format with answers in it can be scored (checked before
    any work): labelled sequences, or series to forecast."""
    if fitted["kind"] not in ("csv_sequences", "npz", "csv_forecast"):
        raise ConfigError(
            f"input={given}: evaluate scores a new file of labelled sequences (csv_sequences,"
            f" npz) or of series (csv_forecast); this model was trained on {fitted['kind']}"
        )
