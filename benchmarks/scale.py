"""Reading data of real size: lstm-train against pyarrow's own read of the same file.

    python benchmarks/scale.py                 # 1x: 20,000 sequences x 100 steps x 8 features
    python benchmarks/scale.py --sizes 0.1 1   # several sizes, to see how time and memory grow

Writes a long-format CSV (the shape `csv_sequences` reads: one row per time step) for each
size, then measures, each in its own process: `lstm-train train` for one epoch of a tiny
model (seconds to data ready, from results.json's `data_load_seconds`; peak memory; whole
run; training throughput), and pyarrow reading the same file and reshaping it into the
same [sequences, steps, features] array (the floor). Prints one row per size with the
ratios. pyarrow is a benchmark-only dependency here.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

SCRIPT = Path(sys.executable).with_name("lstm-train")
SEQUENCES, STEPS, FEATURES = 20_000, 100, 8

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


def write_long_csv(path: Path, sequences: int) -> None:
    """`series_id, step, f0..f7, label`: one row per step, written with numpy in blocks."""
    rng = np.random.default_rng(0)
    header = ["series_id", "step", *(f"f{i}" for i in range(FEATURES)), "label"]
    with path.open("w", newline="") as stream:
        stream.write(",".join(header) + "\n")
        for first in range(0, sequences, 1000):
            block = min(1000, sequences - first)
            ids = np.repeat(np.arange(first, first + block), STEPS)
            steps = np.tile(np.arange(STEPS), block)
            values = rng.standard_normal((block * STEPS, FEATURES))
            labels = np.repeat(rng.integers(0, 2, block), STEPS)
            columns = [ids, steps, *values.T, labels]
            rows = np.column_stack(columns)
            np.savetxt(
                stream, rows, fmt=["s%d", "%d", *(["%.5f"] * FEATURES), "c%d"], delimiter=","
            )


def lstm_train(path: Path, workdir: Path) -> dict[str, float]:
    started = time.perf_counter()
    subprocess.run(
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
        ],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
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
    result = subprocess.run(
        [sys.executable, "-c", ARROW_READ, str(path), str(FEATURES)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.0], help="x 20,000 seqs")
    parser.add_argument("--workdir", type=Path, help="where the CSV files go (default: temp)")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, python {platform.python_version()},"
        f" date {time.strftime('%Y-%m-%d')}; long-format CSV, {STEPS} steps x {FEATURES}"
        " features per sequence",
        flush=True,
    )
    print(
        "| size | sequences | file | lstm-train: data ready | peak memory | whole run (1 epoch)"
        " | training | pyarrow read + reshape | peak memory | ratio time | ratio memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        root = Path(scratch)
        for size in args.sizes:
            sequences = int(SEQUENCES * size)
            path = root / f"long_{size:g}x.csv"
            write_long_csv(path, sequences)
            workdir = root / f"run_{size:g}x"
            workdir.mkdir()
            ours, floor = lstm_train(path, workdir), arrow_floor(path)
            megabytes = path.stat().st_size / 2**20
            print(
                f"| {size:g}x | {sequences:,} | {megabytes:.0f} MiB | {ours['load']:.1f} s"
                f" | {ours['peak_mib']:.0f} MiB | {ours['wall']:.1f} s"
                f" | {ours['sequences_per_second']:.0f} seq/s | {floor['seconds']:.1f} s"
                f" | {floor['peak_mib']:.0f} MiB | {ours['load'] / floor['seconds']:.1f}x"
                f" | {ours['peak_mib'] / floor['peak_mib']:.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
