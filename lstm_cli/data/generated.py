"""Datasets made on the spot from a seed: a noisy sine to forecast, and the adding problem.

The adding problem (Hochreiter & Schmidhuber, 1997) is the classic test of long memory:
each step carries a random value and a marker; two steps are marked, one in each half of
the sequence, and the target is the sum of their values. Always predicting the mean sum
(1.0) scores an MSE of 1/6, about 0.167; a working LSTM goes below 0.01 at seq_len=100.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lstm_cli.config.dataset_schema import AddingDatasetConfig, SineDatasetConfig
from lstm_cli.data.forecast import Windowing, prepare_series
from lstm_cli.data.scaling import Scaler
from lstm_cli.data.splits import PreparedData, SequenceSplit


def sine(cfg: SineDatasetConfig, fitted: dict[str, Any] | None) -> PreparedData:
    """sin(2 pi t / period) plus Gaussian noise, one column named `value`."""
    generator = torch.Generator().manual_seed(cfg.seed)
    steps = torch.arange(cfg.length, dtype=torch.float64)
    noise = torch.randn(cfg.length, generator=generator, dtype=torch.float64) * cfg.noise
    values = (torch.sin(2 * math.pi * steps / cfg.period) + noise).unsqueeze(1)
    state = fitted or {
        "kind": "sine",
        "columns": ["value"],
        "targets": ["value"],
        "time_column": None,
        "missing": "error",
        "season": round(cfg.period),
    }
    windowing = Windowing.of(cfg)
    return prepare_series(values, state, windowing, "dataset=sine", fitted is not None)


def adding_sequences(count: int, seq_len: int, generator: torch.Generator) -> SequenceSplit:
    """`count` adding-problem sequences: features (value, marker), target the marked sum."""
    values = torch.rand(count, seq_len, generator=generator)
    half = seq_len // 2
    first = torch.randint(0, half, (count,), generator=generator)
    second = torch.randint(half, seq_len, (count,), generator=generator)
    markers = torch.zeros(count, seq_len)
    rows = torch.arange(count)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    lengths = torch.full((count,), seq_len, dtype=torch.long)
    return SequenceSplit(torch.stack([values, markers], dim=-1), lengths, targets.unsqueeze(1))


def adding(cfg: AddingDatasetConfig, fitted: dict[str, Any] | None) -> PreparedData:
    """Train, val and test sets drawn independently; inputs are used as they are."""
    generator = torch.Generator().manual_seed(cfg.seed)
    splits = [
        adding_sequences(n, cfg.seq_len, generator)
        for n in (cfg.train_size, cfg.val_size, cfg.test_size)
    ]
    state = fitted or {
        "kind": "adding",
        "task": "regression",
        "features": ["value", "marker"],
        "id_column": "series_id",
        "step_column": "step",
        "label_column": "label",
        "missing": "error",
        "classes": None,
        "scaler": Scaler("none", [0.0, 0.0], [1.0, 1.0]).to_dict(),
        "target_scaler": Scaler("none", [0.0], [1.0]).to_dict(),
    }
    return PreparedData(
        task="regression",
        train=splits[0],
        val=splits[1],
        test=splits[2],
        input_size=2,
        output_size=1,
        token_input=False,
        preprocessing=state,
        to_original=Scaler(**state["target_scaler"]).inverse,
    )
