"""Quality report: train each embedded dataset's default config and set the test metrics
beside published or computed baselines.

    python benchmarks/quality.py                      # all four, a few CPU minutes each
    python benchmarks/quality.py airline italy_power  # some of them

Each training is the real `lstm-train train dataset=NAME`, run in a scratch directory.
Baselines: airline and ItalyPower from the literature cited in lstm_cli/datasets/*/README.md;
the KJV 3-gram and the airline seasonal-naive figures under lstm-train's own protocol are
computed here on the same data the model sees.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

DATASETS = Path(__file__).resolve().parents[1] / "lstm_cli" / "datasets"
SCRIPT = Path(sys.executable).with_name("lstm-train")


def train(name: str, workdir: Path) -> tuple[dict, float]:
    started = time.perf_counter()
    subprocess.run(
        [str(SCRIPT), "train", f"dataset={name}"],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    results = json.loads((workdir / "outputs/train/latest/results.json").read_text())
    return results, time.perf_counter() - started


def airline_series() -> list[float]:
    with (DATASETS / "airline" / "airline.csv").open() as stream:
        return [float(row["passengers"]) for row in csv.DictReader(stream)]


def mape(predicted: list[float], actual: list[float]) -> float:
    return sum(abs(p - a) / a for p, a in zip(predicted, actual, strict=True)) / len(actual)


def seasonal_naive_rolling(series: list[float], test: int, horizon: int) -> float:
    """Seasonal naive (period 12) under lstm-train's protocol: every origin in the test part
    forecasts `horizon` steps from the actual history."""
    errors = []
    for first in range(len(series) - test, len(series) - horizon + 1):
        origin = first - 1
        predicted = [series[origin + h - 12] for h in range(1, horizon + 1)]
        errors.append(mape(predicted, series[first : first + horizon]))
    return sum(errors) / len(errors)


def airline(workdir: Path) -> list[tuple[str, str, str]]:
    results, seconds = train("airline", workdir)
    series = airline_series()
    history = workdir / "history.csv"
    lines = (DATASETS / "airline" / "airline.csv").read_text().splitlines(keepends=True)
    history.write_text("".join(lines[: 1 + 108]))
    subprocess.run(
        [
            str(SCRIPT),
            "predict",
            "run_dir=outputs/train/latest",
            f"input={history}",
            "predict.steps=36",
            "output=forecast.csv",
        ],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with (workdir / "forecast.csv").open() as stream:
        forecast = [float(row["passengers"]) for row in csv.DictReader(stream)]
    rolling = results["test"]["test/mape"]
    return [
        (
            "airline MAPE, 12-month forecasts from each test origin",
            f"{rolling:.4f}",
            f"seasonal naive, same protocol: {seasonal_naive_rolling(series, 36, 12):.4f}",
        ),
        (
            "airline MAPE, 36 months from 1957-12 (published protocol)",
            f"{mape(forecast, series[108:]):.4f}",
            "seasonal naive 0.1319, AutoARIMA 0.0415",
        ),
        ("airline wall time", f"{seconds:.0f} s", ""),
    ]


def italy_power(workdir: Path) -> list[tuple[str, str, str]]:
    results, seconds = train("italy_power", workdir)
    return [
        (
            "ItalyPower test accuracy",
            f"{results['test']['test/acc']:.4f}",
            "1-NN Euclidean 0.9553, LSTM-FCN 0.9621",
        ),
        ("ItalyPower wall time", f"{seconds:.0f} s", ""),
    ]


def trigram_bits_per_character(train_text: str, test_text: str, k: float = 0.1) -> float:
    """Add-k smoothed character 3-gram over the training vocabulary plus <unk>."""
    vocabulary = set(train_text) | {"\0"}
    seen = {c if c in vocabulary else "\0" for c in test_text}
    size = len(vocabulary | seen)
    trigrams = Counter(train_text[i : i + 3] for i in range(len(train_text) - 2))
    bigrams = Counter(train_text[i : i + 2] for i in range(len(train_text) - 1))
    bits = 0.0
    for i in range(2, len(test_text)):
        context, gram = test_text[i - 2 : i], test_text[i - 2 : i + 1]
        probability = (trigrams[gram] + k) / (bigrams[context] + k * size)
        bits -= math.log2(probability)
    return bits / (len(test_text) - 2)


def kjv(workdir: Path) -> list[tuple[str, str, str]]:
    results, seconds = train("kjv", workdir)
    train_text = (DATASETS / "kjv" / "train.txt").read_text()
    test_text = (DATASETS / "kjv" / "test.txt").read_text()
    baseline = trigram_bits_per_character(train_text, test_text)
    return [
        (
            "KJV test bits per character",
            f"{results['test']['test/bpc']:.4f}",
            f"3-gram (add-0.1) on the same slices: {baseline:.4f}",
        ),
        ("KJV wall time", f"{seconds:.0f} s", ""),
    ]


def adding(workdir: Path) -> list[tuple[str, str, str]]:
    results, seconds = train("adding", workdir)
    return [
        (
            "adding problem (T=100) test MSE",
            f"{results['test']['test/loss']:.4f}",
            "predicting the mean: 0.167; solved: < 0.01",
        ),
        ("adding wall time", f"{seconds:.0f} s", ""),
    ]


REPORTS = {"airline": airline, "italy_power": italy_power, "kjv": kjv, "adding": adding}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", help=f"any of {', '.join(REPORTS)} (default all)")
    names = parser.parse_args().datasets or list(REPORTS)
    unknown = sorted(set(names) - set(REPORTS))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(REPORTS)}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, python "
        f"{platform.python_version()}, date {time.strftime('%Y-%m-%d')}"
    )
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory() as scratch:
            rows += REPORTS[name](Path(scratch))
    width = max(len(r[0]) for r in rows)
    for label, value, baseline in rows:
        print(f"{label.ljust(width)}  {value:>8}  {baseline}")


if __name__ == "__main__":
    main()
