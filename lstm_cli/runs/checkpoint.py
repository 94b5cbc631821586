"""Checkpoints: plain containers and tensors, written atomically, loaded without pickle code.

A checkpoint holds the model, optimizer and scheduler states, counters, RNG states, the
resolved config, the preprocessing state and the tool version, so evaluate and predict
need nothing else. Loading uses `torch.load(weights_only=True)`, which refuses any object
whose unpickling could run code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from lstm_cli import __version__
from lstm_cli.common.atomic import atomic_file
from lstm_cli.common.errors import CheckpointError

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_spec", "model_state", "config", "task", "preprocessing")


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` atomically (see `lstm_cli.common.atomic`); a full disk or an
    unwritable directory is a CheckpointError and leaves the previous file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, "tool_version": __version__, **payload}
    try:
        with atomic_file(path) as stream:
            torch.save(payload, stream)
    except (OSError, RuntimeError) as err:
        reason = str(err).splitlines()[0]
        raise CheckpointError(
            f"{path}: could not write the checkpoint ({reason}); the previous one is intact"
        ) from err


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load and check a checkpoint; every way it can be wrong is one CheckpointError line."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a readable checkpoint (not a torch.save archive)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).splitlines()[0] if str(err) else "unreadable"
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path}: refused: it holds objects other than tensors and plain data,"
                " which could run code when loaded"
            ) from err
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from err
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not an lstm-train checkpoint (keys missing)")
    version = payload["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this lstm-train"
            f" ({__version__}, format {FORMAT_VERSION}); upgrade lstm-train to read it"
        )
    return payload
