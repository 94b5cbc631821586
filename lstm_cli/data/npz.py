"""`npz`: features the user has already built, as numpy arrays in a .npz file.

Arrays: `x` [N, T, F] (numbers), `y` [N] (class labels, or numbers for regression; [N, k]
for k regression targets per sequence), optional `lengths` [N] (1..T; steps past a
sequence's length are padding). Loaded with `allow_pickle=False`, so a file cannot run code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstm_cli.common.errors import DataError
from lstm_cli.common.runtime import memory_available
from lstm_cli.config.dataset_schema import NpzDatasetConfig
from lstm_cli.data.files import resolve_path
from lstm_cli.data.raw import RawSequences
from lstm_cli.data.scaling import Scaler
from lstm_cli.data.sequences import SplitPlan, prepare_labelled
from lstm_cli.data.splits import PreparedData


def read_npz(path: Path, need_labels: bool, features: int | None = None) -> RawSequences:
    """Check and convert the arrays; every inconsistency names the file and the array."""
    try:
        check_declared_sizes(path, memory_available())
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    if "x" not in arrays:
        raise DataError(f"{path}: no array 'x'; arrays are: {', '.join(arrays) or 'none'}")
    x = arrays["x"]
    real = np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    if x.ndim != 3 or not real:
        raise DataError(
            f"{path}, array 'x': shape {x.shape} of {x.dtype}; need real numbers [N, T, F]"
        )
    if not len(x):
        raise DataError(f"{path}, array 'x': holds no sequences")
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
    labels, targets = None, None
    if "y" in arrays:
        labels, targets = _labels_or_targets(path, arrays["y"], count)
    elif need_labels:
        raise DataError(f"{path}: no array 'y' of labels")
    real = np.arange(steps) < lengths[:, None]
    ids = [str(i) for i in range(count)]
    ragged = torch.from_numpy(x[real].astype(np.float64))  # sequences end to end
    lengths_tensor = torch.from_numpy(lengths.astype(np.int64))
    return RawSequences(ragged, lengths_tensor, ids, labels, str(path), targets)


def _labels_or_targets(
    path: Path, y: np.ndarray, count: int
) -> tuple[list[str] | None, torch.Tensor | None]:
    """`y` [N] or [N, 1]: one label (or number) per sequence; [N, k]: k numbers."""
    if y.ndim == 2 and y.shape[0] == count and y.shape[1] > 1:
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
            raise DataError(f"{path}, array 'y': shape {y.shape} of {y.dtype}; need numbers")
        if not np.isfinite(y).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(y))[0])
            raise DataError(f"{path}, array 'y': not a finite number at index {index}")
        return None, torch.from_numpy(y.astype(np.float64))
    if y.shape == (count, 1):  # one target per sequence, as a column
        y = y[:, 0]
    if y.shape != (count,):
        raise DataError(
            f"{path}, array 'y': shape {y.shape}; need ({count},), ({count}, 1) or"
            f" ({count}, k) to match 'x'"
        )
    return [str(v) for v in y.tolist()], None


HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def check_declared_sizes(path: Path, limit: int | None) -> None:
    """Refuse, before anything is decompressed, an archive whose arrays declare more bytes
    than `limit` (a compression bomb, or data that cannot fit): each array's header gives
    its shape and type, read from the first bytes of its member."""
    declared = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            with archive.open(member) as stream:
                version = np.lib.format.read_magic(stream)
                read_header = HEADER_READERS.get(version)
                if read_header is None:  # a format numpy reads itself, checked there
                    continue
                shape, _, dtype = read_header(stream)
            declared += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if limit is not None and declared > limit:
        raise DataError(
            f"{path}: its arrays declare {declared / 2**30:.1f} GiB, more than the"
            f" {limit / 2**30:.1f} GiB of memory available to load them"
        )


def prepare(cfg: NpzDatasetConfig, fitted: dict[str, Any] | None, seed: int) -> PreparedData:
    raw = read_npz(resolve_path(cfg.path, "dataset.path"), need_labels=True)
    if raw.targets is not None and cfg.task != "regression":
        raise DataError(
            f"{raw.source}, array 'y': {raw.targets.shape[1]} numbers per sequence are"
            " regression targets: set dataset.task=regression loss=mse"
        )
    test_raw = None
    if cfg.test_path:
        test_path = resolve_path(cfg.test_path, "dataset.test_path")
        test_raw = read_npz(test_path, need_labels=True, features=raw.feature_count)
    state = fitted or {
        "kind": "npz",
        "task": cfg.task,
        "features": [f"x{i}" for i in range(raw.feature_count)],
        "label_column": "y",
        "classes": None,
        "scaler": None,
        "target_scaler": Scaler("none", [0.0], [1.0]).to_dict(),
    }
    plan = SplitPlan(cfg.task, cfg.val_fraction, cfg.test_fraction, cfg.scaler)
    return prepare_labelled(raw, test_raw, state, plan, fitted is not None, seed)
