"""Process-wide settings of a run: device, CPU threads, seeds."""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch

from lstm_cli.common.errors import ConfigError


def resolve_device(name: str, key: str = "trainer.device", local_rank: int = 0) -> torch.device:
    """`auto` takes CUDA, then Apple MPS, then the CPU; asking for a missing one is an error.

    Under torchrun each rank on a node takes the GPU of its local rank.
    """
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if name == "cuda" and cuda:
        return torch.device("cuda", local_rank)
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


def jobs_sharing_the_cores() -> int:
    """How many sweep jobs run at once on this machine (joblib's n_jobs), else 1."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return 1
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(available_cores() + 1 + n_jobs, 1)


def set_threads(requested: int) -> int:
    """Set torch's intra-op threads and return the count.

    0 means an explicit OMP_NUM_THREADS, else the available cores divided among the
    processes running at once on this machine (parallel sweep jobs, torchrun's local
    ranks), so that they never oversubscribe it: every LSTM time step is a parallel region
    that waits for all its threads, and one busy core slows an oversubscribed run many times.
    """
    threads = (
        requested
        or _threads_from_environment()
        or max(available_cores() // (jobs_sharing_the_cores() * local_processes()), 1)
    )
    torch.set_num_threads(threads)
    return threads


def local_processes() -> int:
    """torchrun's processes on this machine (LOCAL_WORLD_SIZE), else 1."""
    try:
        return max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def _threads_from_environment() -> int | None:
    """OMP_NUM_THREADS when the user set it. torchrun sets it to 1 for every rank when it
    is unset, which cannot be told apart from a user's 1: under torchrun, 1 is read as
    torchrun's default (trainer.num_threads=1 asks for one thread explicitly)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if not value.isdigit() or int(value) < 1:
        return None
    if value == "1" and local_processes() > 1:
        return None
    return int(value)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    """This process's peak resident memory, and the GPU's peak allocation when on CUDA.

    Read from /proc (VmHWM), which starts afresh at exec: getrusage's figure would include
    whatever process forked this one. Absent on systems without /proc.
    """
    peaks: dict[str, float] = {}
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks["peak_host_memory_mib"] = round(int(line.split()[1]) / 1024, 1)
    if device.type == "cuda":
        peaks["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peaks


def memory_available() -> int | None:
    """Bytes of memory this process may take: what the machine has available (free plus
    reclaimable cache), or less under its container's (cgroup's) limit. None where the
    system does not say."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(meminfo.split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    limit = _cgroup_memory_limit()
    return available if limit is None else min(available, limit)


def _cgroup_memory_limit() -> int | None:
    """The memory limit of this process's cgroup (v2 `memory.max`, v1 `limit_in_bytes`)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if controllers == "":
            candidates = [f"/sys/fs/cgroup{group}/memory.max", "/sys/fs/cgroup/memory.max"]
        elif "memory" in controllers.split(","):
            base = "/sys/fs/cgroup/memory"
            candidates = [f"{base}{group}/memory.limit_in_bytes", f"{base}/memory.limit_in_bytes"]
        else:
            continue
        for candidate in candidates:
            try:
                text = Path(candidate).read_text().strip()
            except OSError:
                continue
            return int(text) if text.isdigit() else None
    return None


def cpu_runs_bfloat16() -> bool:
    """Whether oneDNN has bfloat16 kernels on this CPU (AVX-512 or AMX): without them every
    LSTM call under bfloat16 autocast fails ("could not create a primitive descriptor")."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
