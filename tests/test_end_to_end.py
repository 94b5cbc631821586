"""train -> evaluate -> predict (the evaluate and predict through the real CLI), and the run
directory a training leaves."""

from __future__ import annotations

import csv
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import (
    ANSI_ESCAPE,
    assert_clean_error,
    assert_png,
    budgeted,
    cli_env,
    read_json,
    run_cli,
    run_in_process,
)

AIRLINE = Path(__file__).parents[1] / "lstm_cli" / "data" / "embedded" / "airline" / "airline.csv"
ITALY_TEST = (
    Path(__file__).parents[1] / "lstm_cli" / "data" / "embedded" / "italy_power" / "test.csv"
)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_train_writes_a_complete_run_directory(trained_airline):
    latest = trained_airline / "outputs" / "train" / "latest"
    assert latest.is_symlink()
    run_dir = latest.resolve()
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "train.log",
        "metrics.csv",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "results.json",
    ):
        assert (run_dir / name).is_file(), name
    epochs = rows(run_dir / "metrics.csv")
    assert [row["epoch"] for row in epochs] == ["1", "2", "3"]
    for column in (
        "train/loss",
        "val/loss",
        "val/rmse",
        "val/mae",
        "val/mape",
        "lr",
        "grad_norm",
        "clip_rate",
        "epoch_seconds",
        "sequences_per_second",
    ):
        assert float(epochs[0][column]) >= 0, column
    results = read_json(run_dir / "results.json")
    assert results["run_dir"] == str(run_dir)
    assert results["monitor"] == "val/loss" and 1 <= results["best_epoch"] <= 3
    assert results["parameters"] > 0 and results["wall_seconds"] > 0
    assert 0 < results["data_load_seconds"] < results["wall_seconds"]
    assert set(results["test"]) == {"test/loss", "test/rmse", "test/mae", "test/mape", "test/mase"}
    assert "epoch 3/3" in (run_dir / "train.log").read_text()


def test_evaluate_reproduces_the_test_metrics_of_training(trained_airline):
    result = run_cli("evaluate", "run_dir=outputs/train/latest", cwd=trained_airline)
    assert result.returncode == 0, result.stderr
    train_results = read_json(trained_airline / "outputs/train/latest/results.json")
    evaluated = read_json(trained_airline / "outputs/evaluate/latest/metrics.json")
    assert evaluated["split"] == "test" and evaluated["samples"] == 25
    for name, value in train_results["test"].items():
        assert evaluated["metrics"][name] == pytest.approx(value, rel=1e-6)


def test_evaluate_accepts_a_checkpoint_file_and_another_split(trained_airline):
    checkpoint = trained_airline / "outputs/train/latest/checkpoints/last.pt"
    result = run_cli("evaluate", f"checkpoint={checkpoint}", "split=val", cwd=trained_airline)
    assert result.returncode == 0, result.stderr
    assert (
        "val/rmse" in read_json(trained_airline / "outputs/evaluate/latest/metrics.json")["metrics"]
    )


def test_predict_forecasts_the_months_after_the_input(trained_airline, tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("".join(AIRLINE.read_text().splitlines(keepends=True)[:61]))
    output = tmp_path / "forecast.csv"
    result = run_cli(
        "predict",
        "run_dir=outputs/train/latest",
        f"input={history}",
        f"output={output}",
        "predict.steps=15",
        cwd=trained_airline,
    )
    assert result.returncode == 0, result.stderr
    forecast = rows(output)
    assert [r["month"] for r in forecast[:2]] == ["1954-01", "1954-02"]
    assert forecast[-1]["month"] == "1955-03" and len(forecast) == 15
    assert all(50 < float(r["passengers"]) < 2000 for r in forecast)


def test_predict_never_overwrites_without_permission(trained_airline, tmp_path):
    output = tmp_path / "kept.csv"
    output.write_text("precious\n")
    args = ("predict", "run_dir=outputs/train/latest", f"input={AIRLINE}", f"output={output}")
    refused = run_in_process(*args, cwd=trained_airline)
    assert_clean_error(refused, 2, str(output), "predict.overwrite")
    assert output.read_text() == "precious\n"
    assert run_cli(*args, "predict.overwrite=true", cwd=trained_airline).returncode == 0
    assert output.read_text().startswith("month,passengers")


def test_output_is_plain_when_not_on_a_terminal(trained_airline):
    result = run_cli("evaluate", "run_dir=outputs/train/latest", cwd=trained_airline)
    assert ANSI_ESCAPE not in result.stdout + result.stderr
    log = (trained_airline / "outputs/train/latest/train.log").read_text()
    assert ANSI_ESCAPE not in log


def test_log_every_epochs_thins_the_console_but_not_the_log(tmp_path, train):
    args = ("model=tiny", "trainer.max_epochs=7", "trainer.log_every_epochs=3")
    result = train(*args, "trainer.patience=null")
    assert result.returncode == 0, result.stderr
    shown = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert shown == ["1/7", "3/7", "6/7"]
    log = (tmp_path / "outputs/train/latest/train.log").read_text()
    assert all(f"epoch {n}/7 " in log for n in range(1, 8))


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script for a tty")
def test_a_terminal_gets_rich_output(tmp_path):
    command = " ".join(budgeted("train", "trainer.max_epochs=2", "model=tiny"))
    result = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        cwd=tmp_path,
        env=cli_env(TERM="xterm-256color"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout
    assert ANSI_ESCAPE in result.stdout and "results" in result.stdout
    assert re.search(r"val/loss by epoch [▁▂▃▄▅▆▇█]{2}", result.stdout), "sparkline"
    assert "lstm layer 1" in result.stdout and "parameters" in result.stdout


def test_classification_end_to_end(cli, tmp_path, train):
    result = train("dataset=italy_power", "trainer.max_epochs=3", "model=tiny")
    assert result.returncode == 0, result.stderr
    test = read_json(tmp_path / "outputs/train/latest/results.json")["test"]
    assert set(test) == {"test/loss", "test/acc", "test/f1"}
    assert 0 <= test["test/acc"] <= 1
    output = tmp_path / "classes.csv"
    result = cli(
        "predict", "run_dir=outputs/train/latest", f"input={ITALY_TEST}", f"output={output}"
    )
    assert result.returncode == 0, result.stderr
    predicted = rows(output)
    assert len(predicted) == 1029
    assert set(predicted[0]) == {"series_id", "predicted", "p_1", "p_2"}
    assert float(predicted[0]["p_1"]) + float(predicted[0]["p_2"]) == pytest.approx(1, abs=1e-5)
    assert cli("evaluate", "run_dir=outputs/train/latest").returncode == 0
    assert_png(tmp_path / "outputs/evaluate/latest/confusion_matrix.png")


def test_language_model_end_to_end(cli, tmp_path, train):
    result = train("dataset=kjv", "trainer.max_epochs=1", "model=tiny", "trainer.batch_size=64")
    assert result.returncode == 0, result.stderr
    test = read_json(tmp_path / "outputs/train/latest/results.json")["test"]
    assert set(test) == {"test/loss", "test/acc", "test/ppl", "test/bpc"}
    assert test["test/bpc"] < 6.0  # log2 of the 62-symbol vocabulary is 5.95
    result = cli(
        "predict", "run_dir=outputs/train/latest", "predict.prompt=And he said", "predict.length=40"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("And he said")
    written = (tmp_path / "outputs/predict/latest/predictions.txt").read_text()
    assert written.startswith("And he said") and len(written) == len("And he said") + 40


def variable_length_regression(path: Path, count: int, seed: int) -> None:
    """Sequences of 3 to 12 steps whose label is the sum of their values."""
    generator = random.Random(seed)
    lines = ["id,step,value,label"]
    for sequence in range(count):
        values = [generator.uniform(-1, 1) for _ in range(generator.randint(3, 12))]
        total = sum(values)
        lines += [f"q{sequence},{step},{v:.5f},{total:.5f}" for step, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


def test_variable_length_regression_packed_bucketed_bidirectional(cli, tmp_path, train):
    variable_length_regression(tmp_path / "train.csv", 300, seed=1)
    variable_length_regression(tmp_path / "new.csv", 5, seed=2)
    result = train(
        "dataset=csv_sequences",
        "dataset.path=train.csv",
        "dataset.task=regression",
        "dataset.id_column=id",
        "dataset.step_column=step",
        "loss=mse",
        "data.packed=true",
        "data.bucket=true",
        "model.bidirectional=true",
        "trainer.max_epochs=3",
    )
    assert result.returncode == 0, result.stderr
    test = read_json(tmp_path / "outputs/train/latest/results.json")["test"]
    assert set(test) == {"test/loss", "test/rmse", "test/mae", "test/mape"}
    result = cli("predict", "run_dir=outputs/train/latest", "input=new.csv", "output=sums.csv")
    assert result.returncode == 0, result.stderr
    predicted = rows(tmp_path / "sums.csv")
    assert [r["id"] for r in predicted] == [f"q{i}" for i in range(5)]
    assert all(abs(float(r["predicted"])) < 20 for r in predicted)
    assert cli("evaluate", "run_dir=outputs/train/latest").returncode == 0
    assert_png(tmp_path / "outputs/evaluate/latest/fit.png")


def test_output_root_setting_moves_every_run(cli, tmp_path, train):
    result = cli(
        "train",
        "trainer.max_epochs=1",
        "model=tiny",
        LSTM_TRAIN_OUTPUT_ROOT=str(tmp_path / "nightly"),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "nightly/train/latest/results.json").is_file()
    result = train("trainer.max_epochs=1", "model=tiny", "output_root=elsewhere")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere/train/latest/results.json").is_file()


def test_multirun_sweeps_land_in_one_sweep_directory(cli, tmp_path):
    result = cli("train", "-m", "optimizer=adam,sgd", "trainer.max_epochs=1", "model=tiny")
    assert result.returncode == 0, result.stderr
    (sweep,) = (tmp_path / "outputs/multirun").iterdir()
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == [
        "0_model=tiny,optimizer=adam,trainer.max_epochs=1",
        "1_model=tiny,optimizer=sgd,trainer.max_epochs=1",
    ]
    assert all((sweep / job / "results.json").is_file() for job in jobs)
    best = min(jobs, key=lambda job: read_json(sweep / job / "results.json")["best_value"])
    assert f"best job: {(sweep / best).resolve()} val/loss=" in result.stdout


def test_a_failed_sweep_job_is_reported_and_the_sweep_goes_on(cli, tmp_path):
    result = cli("train", "-m", "trainer.batch_size=0,8", "trainer.max_epochs=1", "model=tiny")
    assert result.returncode == 1
    assert "error: trainer.batch_size=0 is out of range" in result.stderr
    assert "1 sweep job(s) failed" in result.stderr
    (sweep,) = (tmp_path / "outputs/multirun").iterdir()
    finished = [job.name for job in sweep.iterdir() if (job / "results.json").is_file()]
    assert finished == ["1_model=tiny,trainer.batch_size=8,trainer.max_epochs=1"]


def test_a_sweep_with_an_unknown_monitor_fails_before_any_job(tmp_path):
    result = run_in_process(
        "train", "-m", "optimizer=adam,sgd", "trainer.monitor=val/accuracy", cwd=tmp_path
    )
    assert_clean_error(result, 2, "trainer.monitor=val/accuracy", "val/rmse")
    assert not list(tmp_path.glob("outputs/multirun/*/*/train.log")), "no job ran"


def test_missing_data_file_is_a_data_error(tmp_path, train):
    result = train("dataset=csv_forecast", "dataset.path=nowhere.csv", "dataset.target=y")
    assert_clean_error(result, 1, "dataset.path=nowhere.csv", "no such file")
    log = next((tmp_path / "outputs/train").glob("*/train.log")).read_text()
    assert "Traceback" in log


def test_evaluate_without_a_run_is_a_usage_error(tmp_path):
    assert_clean_error(
        run_in_process("evaluate", cwd=tmp_path), 2, "run_dir=DIR", "checkpoint=FILE"
    )
    missing = run_in_process("evaluate", "run_dir=missing", cwd=tmp_path)
    assert_clean_error(missing, 2, "run_dir=missing")


def test_a_reader_that_stops_early_leaves_the_run_going_quietly(tmp_path):
    """`lstm-train train | head -1`: no traceback, and the run still finishes."""
    process = subprocess.Popen(
        budgeted("train", "trainer.max_epochs=20", "model=tiny"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().startswith("run directory")
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 0, stderr
    assert "Traceback" not in stderr and "Logging error" not in stderr
    run = tmp_path / "outputs/train/latest"
    assert read_json(run / "status.json")["status"] == "finished"
    assert "epoch 20/20" in (run / "train.log").read_text()
