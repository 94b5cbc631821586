"""Quality on the development panel: every dataset trained with defaults only (the keys that
say where the data is), seeds 0, 1 and 2, each figure beside its references.

    python benchmarks/quality.py --data ../shared/data                # the whole panel
    python benchmarks/quality.py --data ../shared/data arrowhead acsf1  # some of it
    python benchmarks/quality.py --data ../shared/data --set model.conv_layers=0  # one choice

Each training is the real `lstm-train train`, run in a scratch directory; `--jobs 2` runs
two at a time with one torch thread each. The table gives, per dataset, the test metric's
mean and worst seed (min accuracy, max error), the references (from each dataset's
README, or computed here on the same split) and the mean wall time of one run. The panel's
data is not shipped with lstm-train: `--data` names the folder that holds it.
"""

from __future__ import annotations

import argparse
import csv
import itertools
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


def predicted_rows(workdir: Path, history: Path, *options: str) -> list[dict[str, str]]:
    """`lstm-train predict` of the run just trained in `workdir`, its CSV read back."""
    subprocess.run(
        [
            str(SCRIPT),
            "predict",
            "run_dir=outputs/train/latest",
            f"input={history}",
            "predict.plot=false",
            "output=forecast.csv",
            *options,
        ],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with (workdir / "forecast.csv").open() as stream:
        return list(csv.DictReader(stream))


def airline_36_months(data: Path, workdir: Path, _results: dict) -> float:
    """MAPE of the 36 monthly forecasts from 1957-12 (`predict.steps=36`)."""
    rows = predicted_rows(workdir, data / "airline" / "train.csv", "predict.steps=36")
    forecast = [float(row["passengers"]) for row in rows]
    with (data / "airline" / "test.csv").open() as stream:
        actual = [float(row["passengers"]) for row in csv.DictReader(stream)]
    return sum(abs(f - a) / a for f, a in zip(forecast, actual, strict=True)) / len(actual)


M1_HORIZON = 6


def m1_overrides(data: Path) -> list[str]:
    """The M1 protocol: one model for all 181 series, the last 6 of each held out."""
    return [
        "dataset=csv_forecast",
        f"dataset.path={data / 'm1_yearly' / 'm1_yearly.csv'}",
        "dataset.target=value",
        "dataset.id_column=series_id",
        "dataset.time_column=year",
        f"dataset.horizon={M1_HORIZON}",
        f"dataset.test_size={M1_HORIZON}",
        f"dataset.val_size={M1_HORIZON}",
    ]


def m1_series(data: Path) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {}
    with (data / "m1_yearly" / "m1_yearly.csv").open() as stream:
        for row in csv.DictReader(stream):
            series.setdefault(row["series_id"], []).append(float(row["value"]))
    return series


def smape(forecast: list[float], actual: list[float]) -> float:
    pairs = zip(forecast, actual, strict=True)
    return 200 * statistics.mean(abs(f - a) / (abs(f) + abs(a)) for f, a in pairs)


def mase(forecast: list[float], actual: list[float], history: list[float]) -> float:
    scale = statistics.mean(abs(b - a) for a, b in itertools.pairwise(history))
    return statistics.mean(abs(f - a) for f, a in zip(forecast, actual, strict=True)) / scale


def m1_scores(forecasts: dict[str, list[float]], data: Path) -> tuple[float, float]:
    """sMAPE and MASE per series (in-sample naive scale), averaged over the series."""
    series = m1_series(data)
    smapes, mases = [], []
    for name, values in series.items():
        history, actual = values[:-M1_HORIZON], values[-M1_HORIZON:]
        smapes.append(smape(forecasts[name], actual))
        mases.append(mase(forecasts[name], actual, history))
    return statistics.mean(smapes), statistics.mean(mases)


def m1_forecast(data: Path, workdir: Path, results: dict) -> float:
    """sMAPE of lstm-train's forecasts of each series' last 6 values; MASE goes to results."""
    history = workdir / "history.csv"
    with history.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["series_id", "year", "value"])
        for name, values in m1_series(data).items():
            writer.writerows([name, year, v] for year, v in enumerate(values[:-M1_HORIZON]))
    forecasts: dict[str, list[float]] = {}
    for row in predicted_rows(workdir, history):
        forecasts.setdefault(row["series_id"], []).append(float(row["value"]))
    symmetric, scaled = m1_scores(forecasts, data)
    results["m1_mase"] = scaled
    return symmetric


def m1_references(data: Path) -> str:
    """Naive, drift and (with statsforecast installed) Theta on the same protocol."""
    series = m1_series(data)
    naive, drift = {}, {}
    for name, values in series.items():
        history = values[:-M1_HORIZON]
        slope = (history[-1] - history[0]) / (len(history) - 1)
        naive[name] = [history[-1]] * M1_HORIZON
        drift[name] = [history[-1] + slope * h for h in range(1, M1_HORIZON + 1)]
    lines = [
        f"naive sMAPE {m1_scores(naive, data)[0]:.2f} MASE {m1_scores(naive, data)[1]:.2f}",
        f"drift {m1_scores(drift, data)[0]:.2f} / {m1_scores(drift, data)[1]:.2f}",
    ]
    try:
        from statsforecast.models import Theta
    except ImportError:
        lines.append("Theta: pip install statsforecast")
    else:
        import numpy as np

        theta = {
            name: Theta().forecast(np.asarray(values[:-M1_HORIZON]), M1_HORIZON)["mean"].tolist()
            for name, values in series.items()
        }
        symmetric, scaled = m1_scores(theta, data)
        lines.append(f"Theta {symmetric:.2f} / {scaled:.2f}")
    return ", ".join(lines)


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
    "m1_yearly": Entry(m1_overrides, "sMAPE (%), last 6 of each series", False, "", m1_forecast),
}
# Shipped presets outside the panel, run when named: the defaults must not break them.
EXTRA: dict[str, Entry] = {
    "kjv": Entry(
        lambda _data: ["dataset=kjv"], "test/bpc", False, "5-gram (add-0.1) 2.04, 3-gram 2.55"
    ),
    "adding": Entry(
        lambda _data: ["dataset=adding"],
        "test/loss",
        False,
        "predicting the mean 0.167; solved below 0.01",
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
    entry = {**PANEL, **EXTRA}[name]
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


def table(outcomes: list[Outcome], names: list[str], data: Path) -> str:
    lines = [
        "| dataset | metric | mean | worst seed | seeds | skill vs baseline (worst) "
        "| references | wall time per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        entry = {**PANEL, **EXTRA}[name]
        references = entry.references or m1_references(data)
        mine = sorted((o for o in outcomes if o.name == name), key=lambda o: o.seed)
        values = [o.value for o in mine]
        worst = min(values) if entry.higher_is_better else max(values)
        each = ", ".join(f"{v:.3f}" for v in values)
        skills = [o.results["skill"]["value"] for o in mine]
        if "m1_mase" in mine[0].results:
            each += "; MASE " + ", ".join(f"{o.results['m1_mase']:.2f}" for o in mine)
        baseline = mine[0].results["skill"]["vs"]
        seconds = statistics.mean(o.seconds for o in mine)
        lines.append(
            f"| {name} | {entry.metric} | {statistics.mean(values):.3f} | {worst:.3f}"
            f" | {each} | {min(skills):.2f} ({baseline}) | {references}"
            f" | {seconds:.0f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choices = [*PANEL, *EXTRA]
    parser.add_argument(
        "datasets", nargs="*", help=f"any of {', '.join(choices)} (default: the panel)"
    )
    parser.add_argument("--data", type=Path, help="folder of the panel's data (shared/data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="an extra override")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once")
    args = parser.parse_args()
    names = args.datasets or list(PANEL)
    unknown = sorted(set(names) - set(choices))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(choices)}")
    if args.data is None and set(names) & set(PANEL):
        parser.error("--data FOLDER is needed for the panel's datasets")
    if args.data is not None:
        args.data = args.data.resolve()  # each training runs in its own scratch directory
    threads = 1 if args.jobs > 1 else 0
    print(
        f"machine: {platform.machine()}, python {platform.python_version()},"
        f" date {time.strftime('%Y-%m-%d')}, jobs {args.jobs},"
        f" overrides: {' '.join(args.set) or 'none (defaults)'}",
        flush=True,
    )
    runs = [(name, seed) for name in names for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        outcomes = list(pool.map(lambda run: train_once(*run, args.data, args.set, threads), runs))
    print(table(outcomes, names, args.data))


if __name__ == "__main__":
    main()
