"""Long sequences: truncated backpropagation through time (`trainer.tbptt`) against full
backpropagation, on text and on a long labelled set, each pair trained in the same run.

    python benchmarks/long_sequences.py                                 # kjv (shipped)
    python benchmarks/long_sequences.py --data ../shared/data acsf1     # 1460-step ACSF1
    python benchmarks/long_sequences.py --set trainer.max_epochs=100 kjv

kjv: test bits per character and wall time, with the state reset every 100-character
window (`trainer.tbptt=null`) and with the preset's `trainer.tbptt=100` (parallel streams,
the state carried; evaluation carries it through the whole text). acsf1: seconds per
epoch and test accuracy with the LSTM reading all 1460 raw steps (`model.conv_layers=0`),
fully backpropagated and with `trainer.tbptt=100`. Each line is one `lstm-train train`;
`--jobs 2` runs two at a time with one torch thread each. Bidirectional against one
direction is in speed.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from quality import PANEL, SCRIPT

CASES = {
    "kjv": (
        ("windows, state reset every 100 characters", ["dataset=kjv", "trainer.tbptt=null"]),
        ("trainer.tbptt=100 (the preset: streams, state carried)", ["dataset=kjv"]),
    ),
    "acsf1": (
        ("raw steps, full BPTT (1460 steps)", ["model.conv_layers=0"]),
        ("raw steps, trainer.tbptt=100", ["model.conv_layers=0", "trainer.tbptt=100"]),
    ),
}
METRIC = {"kjv": "test/bpc", "acsf1": "test/acc"}


def train(overrides: list[str], seed: int, threads: int) -> dict:
    """One `lstm-train train` in a scratch folder: its results, epoch times and wall time."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [str(SCRIPT), "train", *overrides, f"trainer.seed={seed}"]
        started = time.perf_counter()
        subprocess.run(
            [*command, f"trainer.num_threads={threads}"],
            cwd=scratch,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        run = Path(scratch) / "outputs/train/latest"
        with (run / "metrics.csv").open() as stream:
            epochs = [float(row["epoch_seconds"]) for row in csv.DictReader(stream)]
        results = json.loads((run / "results.json").read_text())
    return {"results": results, "epoch_seconds": epochs, "wall": wall}


def data_keys(name: str, data: Path | None) -> list[str]:
    """Where a panel dataset is (the panel's own keys); none for a shipped preset."""
    return PANEL[name].overrides(data) if name in PANEL and data else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", help="kjv, acsf1 (default: kjv)")
    parser.add_argument("--data", type=Path, help="folder of the panel's data (for acsf1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", action="append", default=[], help="an extra override")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once")
    args = parser.parse_args()
    names = args.datasets or ["kjv"]
    if "acsf1" in names and args.data is None:
        parser.error("--data FOLDER is needed for acsf1")
    data = args.data.resolve() if args.data else None
    threads = 1 if args.jobs > 1 else 0
    print(
        f"machine: {platform.machine()}, python {platform.python_version()},"
        f" date {time.strftime('%Y-%m-%d')}, jobs {args.jobs}, extra: {' '.join(args.set) or '-'}"
    )
    runs = [
        (name, label, [*data_keys(name, data), *keys, *args.set], seed)
        for name in names
        for label, keys in CASES[name]
        for seed in args.seeds
    ]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda run: train(run[2], run[3], threads), runs))
    print("| dataset | training | seed | metric | value | epochs | seconds per epoch | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, label, _, seed), outcome in zip(runs, done, strict=True):
        value = outcome["results"]["test"][METRIC[name]]
        epochs = outcome["epoch_seconds"]
        print(
            f"| {name} | {label} | {seed} | {METRIC[name]} | {value:.3f} | {len(epochs)}"
            f" | {statistics.median(epochs):.2f} s | {outcome['wall']:.0f} s |"
        )


if __name__ == "__main__":
    main()
