"""Reading data of real size: lstm-train against pyarrow's own read of the same file.

    python benchmarks/scale.py                     # 1x and 10x (1x: 20,000 sequences x 100
                                                   # steps x 8 features, a 153 MiB CSV)
    python benchmarks/scale.py --sizes 0.1 1       # other sizes
    python benchmarks/scale.py --sizes 1 --streamed 25 --cap-mib 1024 --plot scale.png
    python benchmarks/scale.py --sizes 0.1 --streamed 100   # 2 million sequences, streamed
    python benchmarks/scale.py --rounds 3          # each size three times: medians, spread

For each size it writes a long-format CSV (the shape `csv_sequences` reads: one row per
time step), then measures, each in its own process: `lstm-train train` for one epoch of a
tiny model, twice (the first run parses the file and fills the prepared-data cache, the
second maps the cache): seconds to data ready (results.json's `data_load_seconds`), peak
memory, training throughput; and pyarrow reading the same file and reshaping it into the
same [sequences, steps, features] array (the floor). `--streamed N` also writes an N x
Parquet file and trains on it with `data.streaming=true` inside a memory cap of
`--cap-mib` (a cgroup made for the run: needs root; otherwise the run is not capped and
the table says so), beside the same file trained in memory without a cap where that fits
in this machine's memory (a 100x file does not: it is trained streamed only). `--plot` draws
time and memory against size. Every ratio compares figures measured in this one run, and
every timed process starts after SETTLE_SECONDS of quiet (see there).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from lstm_cli.common.runtime import memory_available

SCRIPT = Path(sys.executable).with_name("lstm-train")
SEQUENCES, STEPS, FEATURES = 20_000, 100, 8
# Training in memory from Parquet peaked at 4.6x the file's size (25x: 15177 MiB for a
# 3296 MiB file); a streamed size that would not fit is trained streamed only.
PARQUET_IN_MEMORY = 4.6
BLOCK = 1000  # sequences generated at a time
CGROUP_V1 = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup")

# Run in a fresh process so that its peak memory is its own.
ARROW_READ = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.csv as pv
    started = time.perf_counter()
    table = pv.read_csv(sys.argv[1])
    table = table.sort_by([("series_id", "ascending"), ("step", "ascending")])
    features = [f"f{i}" for i in range(int(sys.argv[2]))]
    values = np.stack([table[name].to_numpy() for name in features], axis=1)
    ids = pc.unique(table["series_id"])
    x = values.reshape(len(ids), -1, len(features))
    seconds = time.perf_counter() - started
    status = open("/proc/self/status").read().split("VmHWM:")[1]  # as lstm-train measures it
    peak = int(status.split()[0]) / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "shape": list(x.shape)}))
    """
)


# Touches fresh memory in a new process: on a virtual machine whose host backs guest memory
# lazily, the first touch of gigabytes can cost seconds that a run's time at 10x includes.
# On the 2-core VM this was measured on, a process's freed memory went back to the host
# within 2-12 s, and touching it again cost about 2.2 s per GB (linear from 0.25 to 3.4 GB);
# touched again within a second, 0.13 s per GB. So every timed process starts after
# SETTLE_SECONDS of quiet: a small run otherwise reuses the memory the process before it
# freed, still backed, while a large one outlasts the window and pays for its memory, and
# the sizes are not measured alike.
SETTLE_SECONDS = 20
FRESH_MEMORY = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    started = time.perf_counter()
    np.ones(int(float(sys.argv[1]) * 2**20), dtype=np.uint8)
    print(time.perf_counter() - started)
    """
)


def blocks(sequences: int) -> Iterator[pa.Table]:
    """`series_id, step, f0..f7, label`: one row per step, BLOCK sequences at a time;
    features rounded to 5 decimals, as a CSV export would write them."""
    rng = np.random.default_rng(0)
    for first in range(0, sequences, BLOCK):
        count = min(BLOCK, sequences - first)
        numbers = np.arange(first, first + count)
        values = rng.standard_normal((count * STEPS, FEATURES)).round(5)
        columns = {
            "series_id": pa.array(np.char.add("s", np.repeat(numbers, STEPS).astype(str))),
            "step": pa.array(np.tile(np.arange(STEPS), count)),
            **{f"f{i}": pa.array(values[:, i]) for i in range(FEATURES)},
            "label": pa.array(
                np.char.add("c", np.repeat(rng.integers(0, 2, count), STEPS).astype(str))
            ),
        }
        yield pa.table(columns)


def write_csv(path: Path, sequences: int) -> None:
    import pyarrow.csv as pv

    with pv.CSVWriter(path, next(blocks(1)).schema) as writer:
        for table in blocks(sequences):
            writer.write_table(table)


def write_parquet(path: Path, sequences: int) -> None:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, next(blocks(1)).schema) as writer:
        for table in blocks(sequences):
            writer.write_table(table)


def lstm_train(
    path: Path, workdir: Path, *extra: str, preexec: Callable[[], None] | None = None
) -> dict[str, float]:
    """One epoch of `lstm-train train` on `path` in `workdir`; its figures, or the signal
    that killed it."""
    settle()
    started = time.perf_counter()
    run = subprocess.run(
        [
            str(SCRIPT),
            "train",
            "dataset=csv_sequences",
            f"dataset.path={path}",
            "dataset.id_column=series_id",
            "loss=cross_entropy",
            "model=tiny",
            "trainer.max_epochs=1",
            "trainer.batch_size=256",
            *extra,
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )
    wall = time.perf_counter() - started
    if run.returncode != 0:
        return {"failed": run.returncode, "wall": wall, "stderr": run.stderr[-300:]}
    run_dir = workdir / "outputs/train/latest"
    results = json.loads((run_dir / "results.json").read_text())
    with (run_dir / "metrics.csv").open() as stream:
        speed = float(next(csv.DictReader(stream))["sequences_per_second"])
    return {
        "load": results["data_load_seconds"],
        "peak_mib": results["peak_host_memory_mib"],
        "wall": wall,
        "sequences_per_second": speed,
    }


def arrow_floor(path: Path) -> dict[str, float]:
    settle()
    result = subprocess.run(
        [sys.executable, "-c", ARROW_READ, str(path), str(FEATURES)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def fresh_memory_seconds(mebibytes: float) -> float:
    """Seconds a new process takes to touch `mebibytes` of memory for the first time."""
    settle()
    command = [sys.executable, "-c", FRESH_MEMORY, str(mebibytes)]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def settle() -> None:
    """Quiet before a timed process, so that it starts from the same machine as every other
    (see SETTLE_SECONDS)."""
    time.sleep(SETTLE_SECONDS)


def growth(sizes: list[float], measured: dict[str, list[list[dict]]]) -> None:
    """Time to data ready and peak memory from the smallest size to the largest (medians of
    the rounds, then each round's own), and what touching the first run's peak memory
    afresh costs this machine at each size."""
    if len(sizes) < 2 or any("failed" in f for rounds in measured["first run"] for f in rounds):
        return
    times = {"first run": "load", "cached run": "load", "pyarrow": "seconds"}
    print(f"\ngrowth {sizes[0]:g}x -> {sizes[-1]:g}x ({sizes[-1] / sizes[0]:g}x the data):")
    for name, key in times.items():
        first, last = measured[name][0], measured[name][-1]
        ratios = [b[key] / a[key] for a, b in zip(first, last, strict=True)]
        memory = [b["peak_mib"] / a["peak_mib"] for a, b in zip(first, last, strict=True)]
        each = ""
        if len(ratios) > 1:
            each = f" (rounds: time {_spelled(ratios)}; memory {_spelled(memory)})"
        print(
            f"  {name}: time {median(last, key) / median(first, key):.1f}x, memory"
            f" {median(last, 'peak_mib') / median(first, 'peak_mib'):.1f}x{each}"
        )
    for size, rounds in zip(sizes, measured["first run"], strict=True):
        mib = median(rounds, "peak_mib")
        seconds = fresh_memory_seconds(mib)
        print(f"  {size:g}x: touching {mib:.0f} MiB of fresh memory took {seconds:.2f} s here")


def median(rounds: list[dict], key: str) -> float:
    return statistics.median(figures[key] for figures in rounds)


def _spelled(ratios: list[float]) -> str:
    return ", ".join(f"{ratio:.1f}x" for ratio in ratios)


@contextlib.contextmanager
def memory_cap(megabytes: int) -> Iterator[Callable[[], None] | None]:
    """A cgroup limited to `megabytes` that a child process joins before it starts
    (v1 or v2); None where one cannot be made (not root, no memory controller)."""
    name = f"lstm-train-scale-{os.getpid()}"
    limit = str(megabytes * 2**20)
    if (CGROUP_V1 / "memory.limit_in_bytes").exists():
        group, limit_file = CGROUP_V1 / name, "memory.limit_in_bytes"
    else:
        group, limit_file = CGROUP_V2 / name, "memory.max"
    try:
        group.mkdir()
        (group / limit_file).write_text(limit)
    except OSError:
        yield None
        return

    def join() -> None:
        (group / "cgroup.procs").write_text(str(os.getpid()))

    try:
        yield join
    finally:
        with contextlib.suppress(OSError):
            group.rmdir()


def row(size: str, source: str, run: str, ours: dict, floor: dict | None) -> str:
    if "failed" in ours:
        return (
            f"| {size} | {source} | {run} | exit {ours['failed']}: {ours['stderr']!r} | | | | | |"
        )
    ratios = " | |"
    floor_cell = " |"
    if floor:
        floor_cell = f" {floor['seconds']:.1f} s, {floor['peak_mib']:.0f} MiB |"
        time_ratio = ours["load"] / floor["seconds"]
        ratios = f" {time_ratio:.1f}x | {ours['peak_mib'] / floor['peak_mib']:.1f}x |"
    return (
        f"| {size} | {source} | {run} | {ours['load']:.1f} s | {ours['peak_mib']:.0f} MiB"
        f" | {ours['sequences_per_second']:.0f} seq/s |{floor_cell}{ratios}"
    )


def plot(path: Path, sizes: list[float], measured: dict[str, list[list[dict]]]) -> None:
    """Medians of the rounds, against size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (times, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, per_size in measured.items():
        key = "seconds" if label == "pyarrow" else "load"
        times.plot(sizes, [median(rounds, key) for rounds in per_size], marker="o", label=label)
        peaks = [median(rounds, "peak_mib") for rounds in per_size]
        memory.plot(sizes, peaks, marker="o", label=label)
    for axes, what in ((times, "seconds to data ready"), (memory, "peak memory (MiB)")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(f"size (x {SEQUENCES:,} sequences of {STEPS} steps)")
        axes.set_ylabel(what)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.suptitle("lstm-train reading a long-format CSV, against pyarrow")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--streamed", type=float, help="size of the streamed Parquet run")
    parser.add_argument("--cap-mib", type=int, default=1024, help="its memory cap")
    parser.add_argument("--plot", type=Path, help="draw time and memory against size here")
    parser.add_argument("--workdir", type=Path, help="where the files go (default: temp)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure each size this many times (medians)"
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python"
        f" {platform.python_version()}, date {time.strftime('%Y-%m-%d')}; long-format data,"
        f" {STEPS} steps x {FEATURES} features per sequence; one epoch of model=tiny",
        flush=True,
    )
    print(
        "| size | input | run | data ready | peak memory | training | pyarrow read + reshape"
        " | ratio time | ratio memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    measured: dict[str, list[list[dict]]] = {"first run": [], "cached run": [], "pyarrow": []}
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        root = Path(scratch)
        for size in args.sizes:
            sequences = int(SEQUENCES * size)
            path = root / f"long_{size:g}x.csv"
            write_csv(path, sequences)
            label = f"{size:g}x"
            source = f"CSV, {path.stat().st_size / 2**20:.0f} MiB, {sequences:,} sequences"
            for rounds in measured.values():
                rounds.append([])
            for round_number in range(1, args.rounds + 1):
                workdir = root / f"run_{size:g}x_{round_number}"  # its own, empty cache
                workdir.mkdir()
                of_round = f", round {round_number}" if args.rounds > 1 else ""
                floor = arrow_floor(path)
                first = lstm_train(path, workdir)
                cached = lstm_train(path, workdir)
                run = f"first (parse, fill cache){of_round}"
                print(row(label, source, run, first, floor), flush=True)
                print(row(label, source, f"second (cache){of_round}", cached, floor), flush=True)
                for name, figures in zip(measured, (first, cached, floor), strict=True):
                    measured[name][-1].append(figures)
            path.unlink()
        if args.streamed:
            sequences = int(SEQUENCES * args.streamed)
            path = root / f"long_{args.streamed:g}x.parquet"
            write_parquet(path, sequences)
            workdir = root / "streamed"
            workdir.mkdir()
            label = f"{args.streamed:g}x"
            source = f"Parquet, {path.stat().st_size / 2**20:.0f} MiB, {sequences:,} sequences"
            with memory_cap(args.cap_mib) as join:
                capped = f"streamed, cap {args.cap_mib} MiB" if join else "streamed, NOT capped"
                streamed = lstm_train(path, workdir, "data.streaming=true", preexec=join)
            print(row(label, source, capped, streamed, None), flush=True)
            need, available = path.stat().st_size * PARQUET_IN_MEMORY, memory_available()
            if available is not None and need > available:
                print(
                    f"| {label} | {source} | in memory: not run, it would need about"
                    f" {need / 2**30:.0f} GiB, {available / 2**30:.0f} GiB available | | | | |",
                    flush=True,
                )
                return _finish(args, measured)
            in_memory = lstm_train(path, workdir, "data.streaming=false", "data.cache=false")
            print(row(label, source, "in memory, no cap", in_memory, None), flush=True)
            if "failed" not in streamed and "failed" not in in_memory:
                ratio = streamed["sequences_per_second"] / in_memory["sequences_per_second"]
                print(f"\nstreamed training throughput: {ratio:.2f}x in memory", flush=True)
    _finish(args, measured)


def _finish(args: argparse.Namespace, measured: dict[str, list[list[dict]]]) -> None:
    """Below the table: the growth from size to size, then the plot if asked for."""
    growth(args.sizes, measured)
    if args.plot:
        plot(args.plot, args.sizes, measured)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
