"""Process-wide settings of a run: device, CPU threads, seeds."""

from __future__ import annotations

import os
import random

import torch

from lstm_cli.errors import ConfigError


def resolve_device(name: str, key: str = "trainer.device") -> torch.device:
    """`auto` takes CUDA, then Apple MPS, then the CPU; asking for a missing one is an error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(
            f"{key}={name} but this machine has no {name.upper()} device; use auto or cpu"
        )
    return torch.device(name)


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def set_threads(requested: int) -> int:
    """Set torch's intra-op threads; 0 means one per available core. Returns the count."""
    threads = requested or available_cores()
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
