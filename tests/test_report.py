"""`lstm-train report`: every run under a directory with its status, grouped by dataset and
monitored metric, best first within a group."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import time

from conftest import assert_clean_error, budgeted, cli_env


def test_report_lists_finished_failed_and_interrupted_runs_best_first(cli, tmp_path, train):
    sweep = train("-m", "optimizer.lr=0.01,0.0001", "trainer.max_epochs=2", "model=tiny")
    assert sweep.returncode == 0, sweep.stderr
    failed = train("dataset=csv_forecast", "dataset.path=gone.csv", "dataset.target=y")
    assert failed.returncode == 1
    killed = subprocess.Popen(
        budgeted("train", "dataset=sine", "model=tiny"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
    )
    while not list((tmp_path / "outputs/train").glob("*/checkpoints/last.pt")):
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()

    result = cli("report", "outputs", "format=json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    statuses = sorted(row["status"] for row in rows)
    assert statuses == ["failed", "finished", "finished", "interrupted"]
    datasets = [row["dataset"] for row in rows]
    assert datasets == ["airline", "airline", "csv_forecast", "sine"], "grouped by dataset"
    airline = [row for row in rows if row["dataset"] == "airline"]
    assert airline[0]["best"] <= airline[1]["best"], "best val/loss first within the group"
    assert all(row["epochs"] == 2 and "test/mape" in row for row in airline)
    assert rows[2]["status"] == "failed" and rows[2]["best"] is None

    table = cli("report", "outputs").stdout
    headings = [line for line in table.splitlines() if line.startswith("dataset ")]
    assert headings == [
        "dataset airline, monitor val/loss (lower is better), 2 runs:",
        "dataset csv_forecast, monitor val/loss (lower is better), 1 run:",
        "dataset sine, monitor val/loss (lower is better), 1 run:",
    ]
    assert table.splitlines()[1].split()[:4] == ["run", "overrides", "status", "epochs"]
    as_csv = list(csv.DictReader(io.StringIO(cli("report", "dir=outputs", "format=csv").stdout)))
    assert len(as_csv) == 4 and {"run", "dataset", "status", "best", "test/rmse"} <= set(as_csv[0])
    assert not list(tmp_path.glob("outputs/report*")), "report writes nothing"


def test_report_of_a_missing_directory_is_a_usage_error(cli):
    assert_clean_error(cli("report", "nowhere"), 2, "dir=nowhere")


def test_report_never_ranks_runs_of_different_monitors_together(cli, train):
    """An accuracy (higher is better) and a loss (lower) are two groups, each ranked its way."""
    for lr in ("0.01", "0.0001"):
        for monitor in ("trainer.monitor=val/acc trainer.mode=max", "trainer.monitor=val/loss"):
            run = train(
                "dataset=italy_power",
                "model=tiny",
                "trainer.max_epochs=2",
                f"optimizer.lr={lr}",
                *monitor.split(),
            )
            assert run.returncode == 0, run.stderr
    rows = json.loads(cli("report", "outputs", "format=json").stdout)
    groups = [(row["monitor"], row["best"]) for row in rows]
    assert [m for m, _ in groups] == ["val/acc", "val/acc", "val/loss", "val/loss"]
    assert groups[0][1] >= groups[1][1] and groups[2][1] <= groups[3][1]
