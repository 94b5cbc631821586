"""Datasets: each kind of input file becomes a `PreparedData` of three in-memory splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstm_cli.config.dataset_schema import (
    AddingDatasetConfig,
    ForecastDatasetConfig,
    NpzDatasetConfig,
    SequenceDatasetConfig,
    SineDatasetConfig,
    TextDatasetConfig,
)
from lstm_cli.data import forecast, generated, npz, panel, sequences, streamed, text
from lstm_cli.data.splits import PreparedData


def load_dataset(
    cfg: Any,
    fitted: dict[str, Any] | None = None,
    cache: Path | None = None,
    streaming: bool | str = False,
) -> PreparedData:
    """Load the dataset a config describes.

    `fitted` is the preprocessing state saved in a checkpoint: when given, the scalers,
    vocabulary and classes are reused instead of fitted again, as evaluate needs. Random
    splits follow `dataset.split_seed`, never `trainer.seed`: changing the seed of the
    weights keeps the same validation sequences. `cache` is the folder of the prepared-data
    cache (`data.cache_dir`), for the kinds that parse a large table; None: no cache.
    `streaming` (`data.streaming`: true, false, auto) keeps labelled sequences on disk.
    """
    if isinstance(cfg, ForecastDatasetConfig):
        return (panel if cfg.id_column else forecast).prepare(cfg, fitted)
    if isinstance(cfg, SequenceDatasetConfig):
        if streamed.wanted(streaming, cfg, cache):
            return streamed.prepare(cfg, fitted, cache)
        return sequences.prepare(cfg, fitted, cfg.split_seed, cache)
    if isinstance(cfg, TextDatasetConfig):
        return text.prepare(cfg, fitted)
    if isinstance(cfg, NpzDatasetConfig):
        return npz.prepare(cfg, fitted, cfg.split_seed)
    if isinstance(cfg, SineDatasetConfig):
        return generated.sine(cfg, fitted)
    if isinstance(cfg, AddingDatasetConfig):
        return generated.adding(cfg, fitted)
    raise TypeError(f"no loader for {type(cfg).__name__}")
