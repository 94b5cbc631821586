"""Every dataset kind: train (in process), then evaluate or predict on its output through
the real CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error, assert_png, read_json, run_cli, run_in_process

AIRLINE_CSV = Path(__file__).parents[1] / "lstm_cli/data/embedded/airline/airline.csv"

QUICK = ("trainer.max_epochs=2", "model=tiny")


def results(workdir: Path) -> dict:
    return read_json(workdir / "outputs/train/latest/results.json")


def test_sine_forecasts_in_original_units(in_process, tmp_path, train):
    result = train(
        "dataset=sine",
        "dataset.length=400",
        "dataset.val_size=50",
        "dataset.test_size=50",
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    assert results(tmp_path)["task"] == "forecasting"
    (tmp_path / "wave.csv").write_text("value\n" + "".join(f"{v / 10}\n" for v in range(60)))
    result = in_process("predict", "run_dir=outputs/train/latest", "input=wave.csv", "output=f.csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    assert [r["step"] for r in rows] == [str(k) for k in range(1, 11)]


def test_adding_problem_is_regression_with_two_inputs(in_process, tmp_path, train):
    result = train(
        "dataset=adding",
        "dataset.seq_len=20",
        "dataset.train_size=200",
        "dataset.val_size=50",
        "dataset.test_size=50",
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    assert results(tmp_path)["test"]["test/loss"] < 1.0
    result = in_process("evaluate", "run_dir=outputs/train/latest")
    assert result.returncode == 0, result.stderr
    evaluated = read_json(tmp_path / "outputs/evaluate/latest/metrics.json")
    assert evaluated["samples"] == 50
    assert evaluated["metrics"]["test/loss"] == results(tmp_path)["test"]["test/loss"]


def test_npz_classification_with_lengths_and_predict(in_process, tmp_path, train):
    generator = np.random.default_rng(0)
    x = generator.normal(size=(60, 8, 3))
    lengths = generator.integers(2, 9, size=60)
    y = np.where(x[:, 0, 0] > 0, "up", "down")
    np.savez(tmp_path / "train.npz", x=x, y=y, lengths=lengths)
    np.savez(tmp_path / "new.npz", x=x[:4], lengths=lengths[:4])
    result = train("dataset=npz", "dataset.path=train.npz", *QUICK)
    assert result.returncode == 0, result.stderr
    assert set(results(tmp_path)["test"]) == {"test/loss", "test/acc", "test/f1"}
    result = in_process("predict", "run_dir=outputs/train/latest", "input=new.npz", "output=p.csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["index"] for r in rows] == ["0", "1", "2", "3"]
    assert {r["predicted"] for r in rows} <= {"up", "down"}
    assert set(rows[0]) == {"index", "predicted", "p_down", "p_up"}


@pytest.mark.slow
def test_npz_regression_with_several_targets_per_sequence(in_process, tmp_path, train):
    """y [N, k]: k numbers per sequence, each scaled on its own and scored in its units;
    y [N, 1] is one target, as y [N] is; [N, k] cannot be classes."""
    generator = np.random.default_rng(0)
    x = generator.normal(size=(120, 6, 2))
    y = np.stack([x[:, :, 0].sum(1) * 100, x[:, -1, 1] + 5], axis=1)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "held.npz", x=x[:20], y=y[:20])
    np.savez(tmp_path / "column.npz", x=x, y=y[:, :1])
    regression = ("dataset=npz", "dataset.task=regression", "loss=mse", *QUICK)
    result = train("dataset.path=train.npz", *regression)
    assert result.returncode == 0, result.stderr
    trained = results(tmp_path)["test"]
    assert {"test/rmse", "test/mae"} <= set(trained)
    assert trained["test/rmse"] > 10, "scored in the targets' units (the first is x100)"
    result = in_process("predict", "run_dir=outputs/train/latest", "input=held.npz", "output=p.csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert set(rows[0]) == {"index", "predicted_0", "predicted_1"} and len(rows) == 20
    assert in_process("evaluate", "run_dir=outputs/train/latest", "input=held.npz").returncode == 0
    result = run_in_process(
        "evaluate", "run_dir=outputs/train/latest", "input=column.npz", cwd=tmp_path
    )
    assert_clean_error(result, 1, "column.npz", "1 regression targets per sequence", "on 2")

    assert train("dataset.path=column.npz", *regression).returncode == 0
    result = train("dataset=npz", "dataset.path=train.npz", *QUICK)
    assert_clean_error(result, 1, "train.npz", "array 'y'", "dataset.task=regression")


def test_csv_forecast_with_covariates_time_column_and_two_targets(in_process, tmp_path, train):
    lines = ["date,a,b,temp"]
    for day in range(90):
        date = np.datetime64("2024-01-01") + day
        lines.append(f"{date},{10 + day % 7},{20 + day % 5},{day % 3}")
    (tmp_path / "shop.csv").write_text("\n".join(lines) + "\n")
    result = train(
        "dataset=csv_forecast",
        "dataset.path=shop.csv",
        "dataset.target=[a,b]",
        "dataset.covariates=[temp]",
        "dataset.time_column=date",
        "dataset.window=14",
        "dataset.horizon=7",
        "dataset.val_size=14",
        "dataset.test_size=14",
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    result = in_process("predict", "run_dir=outputs/train/latest", "input=shop.csv", "output=f.csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    assert rows[0]["date"] == "2024-03-31" and rows[-1]["date"] == "2024-04-06"
    assert set(rows[0]) == {"date", "a", "b"}


def test_text_with_fractions_and_unknown_characters_at_predict(in_process, tmp_path, train):
    (tmp_path / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog. " * 80)
    result = train("dataset=text", "dataset.path=corpus.txt", "dataset.seq_len=20", *QUICK)
    assert result.returncode == 0, result.stderr
    assert results(tmp_path)["test"]["test/bpc"] > 0
    result = in_process(
        "predict", "run_dir=outputs/train/latest", "predict.prompt=QZ the", "predict.length=10"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("QZ the")


@pytest.mark.parametrize(("policy", "train_windows"), [("drop", 63), ("ffill", 64)])
def test_missing_value_policies_drop_or_fill_and_train(tmp_path, policy, train_windows, train):
    lines = ["t,y"] + [f"{t},{10 + t % 7}" for t in range(80)]
    lines[6] = "5,"  # one empty cell
    (tmp_path / "gaps.csv").write_text("\n".join(lines) + "\n")
    result = train(
        "dataset=csv_forecast",
        "dataset.path=gaps.csv",
        "dataset.target=y",
        f"dataset.missing={policy}",
        "dataset.window=5",
        "dataset.horizon=2",
        "dataset.val_size=5",
        "dataset.test_size=5",
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    assert f"train={train_windows} " in result.stdout  # drop: 79 steps; ffill: all 80


def write_panel(path: Path) -> None:
    """Three yearly series of different lengths and levels (one 100x another), long format."""
    lines = ["series_id,year,value"]
    for name, first_year, steps, level in (
        ("A", 1960, 30, 50.0),
        ("B", 1970, 14, 5000.0),
        ("C", 1965, 22, 7.0),
    ):
        lines += [f"{name},{first_year + k},{level * 1.05**k:.4f}" for k in range(steps)]
    path.write_text("\n".join(lines) + "\n")


PANEL = (
    "dataset=csv_forecast",
    "dataset.path=panel.csv",
    "dataset.target=value",
    "dataset.id_column=series_id",
)


def test_many_series_in_one_file_train_one_model_and_predict_each(in_process, tmp_path, train):
    write_panel(tmp_path / "panel.csv")
    result = train(
        *PANEL,
        "dataset.time_column=year",
        "dataset.horizon=3",
        "dataset.val_size=3",
        "dataset.test_size=3",
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    assert "transform=log, diff" in result.stdout  # `auto` on positive data
    run = results(tmp_path)
    assert run["task"] == "forecasting"
    assert set(run["baselines"]) == {"last value"}  # yearly: no season
    assert run["test"]["test/mase"] > 0
    evaluated = in_process("evaluate", "run_dir=outputs/train/latest")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = read_json(next((tmp_path / "outputs/evaluate").glob("2*/metrics.json")))
    assert metrics["samples"] == 3  # one test window per series
    result = in_process(
        "predict", "run_dir=outputs/train/latest", "input=panel.csv", "output=f.csv"
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    assert [(r["series_id"], r["year"]) for r in rows[:4]] == [
        ("A", "1990"),
        ("A", "1991"),
        ("A", "1992"),
        ("B", "1984"),
    ]
    levels = {r["series_id"]: float(r["value"]) for r in rows}
    assert levels["B"] > 100 * levels["C"]  # each series forecast at its own level


def test_a_panel_series_too_short_for_its_held_out_steps_is_named(tmp_path, train):
    write_panel(tmp_path / "panel.csv")
    result = train(*PANEL, "dataset.val_size=8", "dataset.test_size=8", *QUICK)
    assert result.returncode == 1
    assert "series B have no more than val_size + test_size = 16 steps" in result.stderr


@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_parquet_and_feather_files_train_like_their_csv(tmp_path, suffix):
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    rows = [(f"s{n}", step, n * 0.1 + step, "ab"[n % 2]) for n in range(24) for step in range(5)]
    columns = dict(zip(("id", "step", "v", "label"), zip(*rows, strict=True), strict=True))
    table = pa.table({name: list(values) for name, values in columns.items()})
    path = tmp_path / f"q{suffix}"
    (pq.write_table if suffix == ".parquet" else feather.write_feather)(table, path)
    (tmp_path / "q.csv").write_text(
        "id,step,v,label\n" + "".join(f"{i},{s},{v},{lab}\n" for i, s, v, lab in rows)
    )
    scores = []
    for name in (path.name, "q.csv"):
        args = ("dataset=csv_sequences", f"dataset.path={name}", "dataset.id_column=id")
        result = run_in_process("train", *args, "model=tiny", "trainer.max_epochs=2", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        scores.append(read_json(tmp_path / "outputs/train/latest/results.json")["test"])
    assert scores[0] == scores[1], "the same data, whatever the format"


def test_the_task_picks_the_loss_unless_the_user_names_one(tmp_path):
    """csv_sequences' preset picks cross_entropy; dataset.task=regression takes mse."""
    rows = "".join(
        f"s{n},{step},{n * 0.1 + step},{n * 0.5}\n" for n in range(30) for step in range(4)
    )
    (tmp_path / "r.csv").write_text("id,step,v,label\n" + rows)
    args = ("dataset=csv_sequences", "dataset.path=r.csv", "dataset.id_column=id", *QUICK)
    result = run_in_process("train", *args, "dataset.task=regression", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert results(tmp_path)["task"] == "regression" and "test/rmse" in results(tmp_path)["test"]
    named = run_in_process(
        "train", *args, "dataset.task=regression", "loss=cross_entropy", cwd=tmp_path
    )
    assert named.returncode == 2 and "loss=cross_entropy does not fit" in named.stderr


def test_evaluate_scores_a_new_labelled_file_whole(tmp_path):
    """As Keras `evaluate(x, y)` does: `input=` a file in the training format."""

    def write(name: str, count: int, shift: float) -> None:
        rows = "".join(
            f"s{n},{step},{(n % 2) * 2 - 1 + shift + step * 0.1},{'ab'[n % 2]}\n"
            for n in range(count)
            for step in range(5)
        )
        (tmp_path / name).write_text("id,step,v,label\n" + rows)

    write("train.csv", 40, 0.0)
    write("new.csv", 14, 0.05)
    args = ("dataset=csv_sequences", "dataset.path=train.csv", "dataset.id_column=id", *QUICK)
    assert run_in_process("train", *args, cwd=tmp_path).returncode == 0
    result = run_cli("evaluate", "run_dir=outputs/train/latest", "input=new.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scored = read_json(tmp_path / "outputs/evaluate/latest/metrics.json")
    assert scored["split"] == "input" and scored["samples"] == 14
    assert scored["input"] == str(tmp_path / "new.csv")
    assert set(scored["metrics"]) == {"input/loss", "input/acc", "input/f1"}
    missing = run_in_process(
        "evaluate", "run_dir=outputs/train/latest", "input=nope.csv", cwd=tmp_path
    )
    assert missing.returncode == 1 and "input=nope.csv: no such file" in missing.stderr


def test_evaluate_input_of_a_forecaster_scores_the_files_last_months(
    in_process, tmp_path, trained_airline
):
    """The windows of the file's last test_size steps, as the run's test split was cut: the
    run's own file scores as its test split does; another series scores otherwise."""
    run_dir = trained_airline / "outputs/train/latest"
    own = in_process("evaluate", f"run_dir={run_dir}", "input=embedded:airline/airline.csv")
    assert own.returncode == 0, own.stderr
    test = in_process("evaluate", f"run_dir={run_dir}")
    assert test.returncode == 0, test.stderr
    runs = [read_json(path / "metrics.json") for path in (tmp_path / "outputs/evaluate").glob("2*")]
    by_split = {run["split"]: run for run in runs}  # both may start in one second: not by name
    scored, expected = by_split["input"], by_split["test"]
    assert scored["samples"] == expected["samples"]
    assert scored["metrics"]["input/mae"] == pytest.approx(expected["metrics"]["test/mae"])
    rows = AIRLINE_CSV.read_text().splitlines()
    grown = [rows[0]] + [f"{r.split(',')[0]},{float(r.split(',')[1]) * 1.2:g}" for r in rows[1:]]
    (tmp_path / "grown.csv").write_text("\n".join(grown) + "\n")
    other = in_process("evaluate", f"run_dir={run_dir}", "input=grown.csv")
    assert other.returncode == 0, other.stderr
    assert "input/mape" in other.stdout and "seasonal naive (12) input/mae" in other.stdout


def test_stamps_in_a_named_spelling_train_and_date_the_forecasts_alike(in_process, tmp_path, train):
    days = [f"03/{day:02d}/2024" for day in range(1, 31)]
    lines = ["day,sales"] + [f"{d},{10 + n % 7 + n * 0.1:.2f}" for n, d in enumerate(days)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    keys = ("dataset=csv_forecast", "dataset.path=s.csv", "dataset.target=sales")
    spelled = ("dataset.time_column=day", "dataset.time_format=%m/%d/%Y", "dataset.window=10")
    result = train(*keys, *spelled, "dataset.val_size=5", "dataset.test_size=5", *QUICK)
    assert result.returncode == 0, result.stderr
    assert "seasonal naive (7)" in result.stdout  # daily stamps: a weekly season
    result = in_process("predict", "run_dir=outputs/train/latest", "input=s.csv", "predict.steps=2")
    assert result.returncode == 0, result.stderr
    predictions = next((tmp_path / "outputs/predict").glob("2*/predictions.csv"))
    rows = list(csv.DictReader(predictions.open()))
    assert [row["day"] for row in rows] == ["03/31/2024", "04/01/2024"]
    assert_png(predictions.with_suffix(".png"))  # its x axis dated in the same spelling
    assert in_process("evaluate", "run_dir=outputs/train/latest").returncode == 0
    assert_png(tmp_path / "outputs/evaluate/latest/forecast.png")  # dated as well
