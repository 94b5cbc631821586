"""`npz`: features the user has already built, as numpy arrays in a .npz file.

Arrays: `x` [N, T, F] (numbers), `y` [N] (class labels, or numbers for regression),
optional `lengths` [N] (1..T; steps past a sequence's length are padding). Loaded with
`allow_pickle=False`, so a file cannot run code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstm_cli.common.errors import DataError
from lstm_cli.config.dataset_schema import NpzDatasetConfig
from lstm_cli.data.files import resolve_path
from lstm_cli.data.scaling import Scaler
from lstm_cli.data.sequences import RawSequences, SplitPlan, prepare_labelled
from lstm_cli.data.splits import PreparedData


def read_npz(path: Path, need_labels: bool, features: int | None = None) -> RawSequences:
    """Check and convert the arrays; every inconsistency names the file and the array."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    if "x" not in arrays:
        raise DataError(f"{path}: no array 'x'; arrays are: {', '.join(arrays) or 'none'}")
    x = arrays["x"]
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}, array 'x': shape {x.shape} of {x.dtype}; need numbers [N, T, F]")
    if not np.isfinite(x).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise DataError(f"{path}, array 'x': not a finite number at index {index}")
    count, steps, width = x.shape
    if features is not None and width != features:
        raise DataError(
            f"{path}, array 'x': {width} features, but the model was trained on {features}"
        )
    lengths = arrays.get("lengths", np.full(count, steps))
    if lengths.shape != (count,) or not np.issubdtype(lengths.dtype, np.integer):
        raise DataError(
            f"{path}, array 'lengths': shape {lengths.shape} of {lengths.dtype};"
            f" need {count} integers"
        )
    if count and (lengths.min() < 1 or lengths.max() > steps):
        raise DataError(f"{path}, array 'lengths': values must lie in 1..{steps}")
    labels = None
    if "y" in arrays:
        y = arrays["y"]
        if y.shape != (count,):
            raise DataError(f"{path}, array 'y': shape {y.shape}; need ({count},) to match 'x'")
        labels = [str(v) for v in y.tolist()]
    elif need_labels:
        raise DataError(f"{path}: no array 'y' of labels")
    padded = torch.from_numpy(x.astype(np.float64))
    padded *= (torch.arange(steps) < torch.from_numpy(lengths).unsqueeze(1)).unsqueeze(-1)
    ids = [str(i) for i in range(count)]
    return RawSequences(padded, torch.from_numpy(lengths.astype(np.int64)), ids, labels, str(path))


def prepare(cfg: NpzDatasetConfig, fitted: dict[str, Any] | None, seed: int) -> PreparedData:
    raw = read_npz(resolve_path(cfg.path, "dataset.path"), need_labels=True)
    test_raw = None
    if cfg.test_path:
        test_path = resolve_path(cfg.test_path, "dataset.test_path")
        test_raw = read_npz(test_path, need_labels=True, features=raw.x.shape[2])
    state = fitted or {
        "kind": "npz",
        "task": cfg.task,
        "features": [f"x{i}" for i in range(raw.x.shape[2])],
        "label_column": "y",
        "classes": None,
        "scaler": None,
        "target_scaler": Scaler("none", [0.0], [1.0]).to_dict(),
    }
    plan = SplitPlan(cfg.task, cfg.val_fraction, cfg.test_fraction, cfg.scaler)
    return prepare_labelled(raw, test_raw, state, plan, fitted is not None, seed)
