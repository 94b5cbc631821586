"""`lstm-train report`: every run under a directory with its status, best first."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import time

from conftest import SCRIPT, assert_clean_error, cli_env


def test_report_lists_finished_failed_and_interrupted_runs_best_first(cli, tmp_path):
    sweep = cli("train", "-m", "optimizer.lr=0.01,0.0001", "trainer.max_epochs=2", "model=tiny")
    assert sweep.returncode == 0, sweep.stderr
    failed = cli("train", "dataset=csv_forecast", "dataset.path=gone.csv", "dataset.target=y")
    assert failed.returncode == 1
    killed = subprocess.Popen(
        [str(SCRIPT), "train", "dataset=sine", "model=tiny"],
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
    bests = [row["best"] for row in rows if row["best"] is not None]
    assert bests == sorted(bests), "sorted by the monitored metric (val/loss), best first"
    assert rows[-1]["status"] == "failed" and rows[-1]["best"] is None
    finished = [row for row in rows if row["status"] == "finished"]
    assert all(row["epochs"] == 2 and "test/mape" in row for row in finished)

    table = cli("report", "outputs").stdout
    assert table.splitlines()[0].split()[:4] == ["run", "overrides", "status", "epochs"]
    as_csv = list(csv.DictReader(io.StringIO(cli("report", "dir=outputs", "format=csv").stdout)))
    assert len(as_csv) == 4 and {"run", "status", "best", "test/rmse"} <= set(as_csv[0])
    assert not list(tmp_path.glob("outputs/report*")), "report writes nothing"


def test_report_of_a_missing_directory_is_a_usage_error(cli):
    assert_clean_error(cli("report", "nowhere"), 2, "dir=nowhere")
