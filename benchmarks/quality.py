"""Quality on the development panel: every dataset trained with defaults only (the keys that
say where the data is), seeds 0, 1 and 2, each figure beside its references.

    python benchmarks/quality.py --data ../shared/data                # the whole panel
    python benchmarks/quality.py --data ../shared/data arrowhead acsf1  # some of it
    python benchmarks/quality.py --data ../shared/data --set model.conv_layers=0  # a choice's effect

Each training is the real `lstm-train train`, run in a scratch directory; `--jobs 2` runs
two at a time with one torch thread each. The table gives, per dataset, the test metric's
mean and worst seed (min accuracy, max error), the references (from each dataset's
README, or computed here on the same split) and the mean wall time of one run. The panel's
data is not shipped with lstm-train: `--data` names the folder that holds it.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("lstm-train")


@dataclass
class Entry:
    """One panel dataset: how to train on it, what to read back, what it is compared with."""

    overrides: Callable[[Path], list[str]]
    metric: str
    higher_is_better: bool
    references: str
    score: Callable[[Path, Path, dict], float] | None = None  # (data, workdir, results)


def classification(folder: str, references: str) -> Entry:
    def overrides(data: Path) -> list[str]:
        return [
            "dataset=csv_sequences",
            f"dataset.path={data / folder / 'train.csv'}",
            f"dataset.test_path={data / folder / 'test.csv'}",
        ]

    return Entry(overrides, "test/acc", True, references)


def airline_overrides(data: Path) -> list[str]:
    """The published protocol: train on 1949-1957 only, then forecast 1958-1960."""
    return [
        "dataset=csv_forecast",
        f"dataset.path={data / 'airline' / 'train.csv'}",
        "dataset.target=passengers",
        "dataset.time_column=month",
    ]


def airline_36_months(data: Path, workdir: Path, _results: dict) -> float:
    """MAPE of the 36 monthly forecasts from 1957-12 (`predict.steps=36`)."""
    subprocess.run(
        [
            str(SCRIPT),
            "predict",
            "run_dir=outputs/train/latest",
            f"input={data / 'airline' / 'train.csv'}",
            "predict.steps=36",
            "predict.plot=false",
            "output=forecast.csv",
        ],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with (workdir / "forecast.csv").open() as stream:
        forecast = [float(row["passengers"]) for row in csv.DictReader(stream)]
    with (data / "airline" / "test.csv").open() as stream:
        actual = [float(row["passengers"]) for row in csv.DictReader(stream)]
    return sum(abs(f - a) / a for f, a in zip(forecast, actual, strict=True)) / len(actual)


PANEL: dict[str, Entry] = {
    "arrowhead": classification("arrowhead", "1-NN ED 0.800, ROCKET 0.814"),
    "basic_motions": classification("basic_motions", "1-NN ED 0.600"),
    "acsf1": classification("acsf1", "1-NN ED 0.540, ROCKET 0.886"),
    "italy_power_demand": classification(
        "italy_power_demand", "1-NN ED 0.955, LSTM-FCN 0.962, ROCKET 0.970"
    ),
    "airline": Entry(
        airline_overrides,
        "MAPE, 36 months from 1957-12",
        False,
        "seasonal naive 0.132, AutoARIMA 0.041",
        airline_36_months,
    ),
}


@dataclass
class Outcome:
    name: str
    seed: int
    value: float
    seconds: float
    results: dict


def train_once(name: str, seed: int, data: Path, extra: list[str], threads: int) -> Outcome:
    entry = PANEL[name]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        started = time.perf_counter()
        subprocess.run(
            [
                str(SCRIPT),
                "train",
                *entry.overrides(data),
                f"trainer.seed={seed}",
                f"trainer.num_threads={threads}",
                *extra,
            ],
            cwd=workdir,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        results = json.loads((workdir / "outputs/train/latest/results.json").read_text())
        value = (
            entry.score(data, workdir, results) if entry.score else results["test"][entry.metric]
        )
    return Outcome(name, seed, value, seconds, results)


def table(outcomes: list[Outcome], names: list[str]) -> str:
    lines = [
        "| dataset | metric | mean | worst seed | seeds | skill vs baseline (worst) "
        "| references | wall time per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        entry = PANEL[name]
        mine = sorted((o for o in outcomes if o.name == name), key=lambda o: o.seed)
        values = [o.value for o in mine]
        worst = min(values) if entry.higher_is_better else max(values)
        each = ", ".join(f"{v:.3f}" for v in values)
        skills = [o.results["skill"]["value"] for o in mine]
        baseline = mine[0].results["skill"]["vs"]
        seconds = statistics.mean(o.seconds for o in mine)
        lines.append(
            f"| {name} | {entry.metric} | {statistics.mean(values):.3f} | {worst:.3f}"
            f" | {each} | {min(skills):.2f} ({baseline}) | {entry.references}"
            f" | {seconds:.0f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", help=f"any of {', '.join(PANEL)} (default all)")
    parser.add_argument("--data", type=Path, required=True, help="folder of the panel's data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="an extra override")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once")
    args = parser.parse_args()
    names = args.datasets or list(PANEL)
    unknown = sorted(set(names) - set(PANEL))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(PANEL)}")
    threads = 1 if args.jobs > 1 else 0
    print(
        f"machine: {platform.machine()}, python {platform.python_version()},"
        f" date {time.strftime('%Y-%m-%d')}, jobs {args.jobs},"
        f" overrides: {' '.join(args.set) or 'none (defaults)'}",
        flush=True,
    )
    runs = [(name, seed) for name in names for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        outcomes = list(
            pool.map(lambda run: train_once(*run, args.data, args.set, threads), runs)
        )
    print(table(outcomes, names))


if __name__ == "__main__":
    main()
