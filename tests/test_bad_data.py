"""Bad data gets one `error:` line naming the file, line or sequence and column, exit 1,
and leaves what was written before untouched (here: the `latest` pointer of earlier runs).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

GOOD_SERIES = "t,y,z\n" + "".join(f"{t},{10 + t % 7},{t}\n" for t in range(80))
SMALL_FORECAST = (
    "trainer.max_epochs=1",
    "model=tiny",
    "dataset.window=5",
    "dataset.horizon=2",
    "dataset.val_size=5",
    "dataset.test_size=5",
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory whose outputs/train/latest already points at an earlier run."""
    earlier = tmp_path / "outputs" / "train" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "results.json").write_text("{}\n")
    os.symlink("earlier", tmp_path / "outputs" / "train" / "latest")
    return tmp_path


def data_error(workdir: Path, *args: str, needles: tuple[str, ...]) -> None:
    assert_clean_error(run_cli(*args, cwd=workdir), 1, *needles)
    assert os.readlink(workdir / "outputs" / "train" / "latest") == "earlier"
    assert (workdir / "outputs/train/earlier/results.json").read_text() == "{}\n"


def forecast(workdir: Path, body: str, *extra: str, needles: tuple[str, ...]) -> None:
    (workdir / "series.csv").write_bytes(body.encode("utf-8"))
    data_error(
        workdir,
        "train",
        "dataset=csv_forecast",
        "dataset.path=series.csv",
        "dataset.target=y",
        *SMALL_FORECAST,
        *extra,
        needles=needles,
    )


def sequences_csv(workdir: Path, name: str, labels: list[str]) -> Path:
    lines = ["id,step,v,label"]
    for n, label in enumerate(labels):
        lines += [f"s{n},{step},{n * 0.1 + step},{label}" for step in range(4)]
    path = workdir / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_missing_file(workdir):
    data_error(
        workdir,
        "train",
        "dataset=csv_forecast",
        "dataset.path=nowhere.csv",
        "dataset.target=y",
        needles=("dataset.path=nowhere.csv", "no such file"),
    )


def test_empty_file(workdir):
    forecast(workdir, "", needles=("series.csv", "empty"))


def test_missing_column_lists_the_columns_that_exist(workdir):
    forecast(
        workdir,
        GOOD_SERIES,
        "dataset.target=units",
        needles=("series.csv", "'units' not found", "columns are: t, y, z"),
    )


def test_non_numeric_value_names_line_and_column(workdir):
    forecast(
        workdir,
        GOOD_SERIES.replace("\n5,15,5\n", "\n5,abc,5\n"),
        needles=("series.csv, line 7, column 'y'", "'abc' is not a number"),
    )


@pytest.mark.parametrize("cell", ["nan", "inf", ""])
def test_nan_infinite_or_empty_value_names_line_and_column(workdir, cell):
    forecast(
        workdir,
        GOOD_SERIES.replace("\n5,15,5\n", f"\n5,{cell},5\n"),
        needles=("series.csv, line 7, column 'y'", "dataset.missing"),
    )


@pytest.mark.parametrize("policy", ["drop", "ffill"])
def test_missing_policy_drop_or_ffill_trains(workdir, policy):
    (workdir / "series.csv").write_text(GOOD_SERIES.replace("\n5,15,5\n", "\n5,,5\n"))
    result = run_cli(
        "train",
        "dataset=csv_forecast",
        "dataset.path=series.csv",
        "dataset.target=y",
        f"dataset.missing={policy}",
        *SMALL_FORECAST,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr


def test_ffill_with_nothing_before_names_the_line(workdir):
    forecast(
        workdir,
        GOOD_SERIES.replace("\n0,10,0\n", "\n0,,0\n"),
        "dataset.missing=ffill",
        needles=("series.csv, line 2", "nothing before it to fill from"),
    )


def test_series_shorter_than_window_and_horizon(workdir):
    short = "t,y\n" + "".join(f"{t},{t}\n" for t in range(12))
    forecast(workdir, short, needles=("series.csv", "12 time steps are too few", "window=5"))


def test_time_stamps_that_do_not_increase(workdir):
    body = GOOD_SERIES.replace("\n5,15,5\n", "\n3,15,5\n")
    forecast(
        workdir, body, "dataset.time_column=t", needles=("series.csv, line 7", "does not increase")
    )


def test_single_class(workdir):
    sequences_csv(workdir, "one.csv", ["a"] * 12)
    data_error(
        workdir,
        "train",
        "dataset=csv_sequences",
        "dataset.path=one.csv",
        "dataset.id_column=id",
        needles=("one.csv", "need at least 2 classes"),
    )


def test_a_test_class_that_training_never_saw(workdir):
    sequences_csv(workdir, "train.csv", ["a", "b"] * 6)
    sequences_csv(workdir, "test.csv", ["a", "c"])
    data_error(
        workdir,
        "train",
        "dataset=csv_sequences",
        "dataset.path=train.csv",
        "dataset.test_path=test.csv",
        "dataset.id_column=id",
        needles=("test.csv, sequence 's1', column 'label'", "class 'c' was never seen"),
    )


def test_predict_class_never_seen_and_features_that_differ(workdir):
    sequences_csv(workdir, "train.csv", ["a", "b"] * 6)
    trained = run_cli(
        "train",
        "dataset=csv_sequences",
        "dataset.path=train.csv",
        "dataset.id_column=id",
        "trainer.max_epochs=1",
        "model=tiny",
        cwd=workdir,
    )
    assert trained.returncode == 0, trained.stderr
    run = next(p for p in (workdir / "outputs/train").iterdir() if p.name.startswith("20"))
    os.replace(workdir / "outputs/train/latest", workdir / "keep")  # train moved it
    os.symlink("earlier", workdir / "outputs/train/latest")
    sequences_csv(workdir, "unseen.csv", ["a", "z"])
    data_error(
        workdir,
        "predict",
        f"run_dir={run}",
        "input=unseen.csv",
        needles=("unseen.csv, sequence 's1'", "class 'z' was never seen"),
    )
    (workdir / "other.csv").write_text("id,step,w\ns0,0,1.0\n")
    data_error(
        workdir,
        "predict",
        f"run_dir={run}",
        "input=other.csv",
        needles=("other.csv", "'v' not found", "columns are: id, step, w"),
    )


def test_npz_arrays_of_inconsistent_shapes(workdir):
    np.savez(workdir / "arrays.npz", x=np.zeros((10, 5, 2)), y=np.zeros(9))
    data_error(
        workdir,
        "train",
        "dataset=npz",
        "dataset.path=arrays.npz",
        needles=("arrays.npz, array 'y'", "(9,)", "(10,)"),
    )


def test_npz_with_pickled_objects_is_refused(workdir):
    np.savez(workdir / "objects.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    data_error(
        workdir,
        "train",
        "dataset=npz",
        "dataset.path=objects.npz",
        needles=("objects.npz", "not a readable .npz file"),
    )


def test_text_that_is_not_utf8(workdir):
    (workdir / "latin1.txt").write_bytes("caf\xe9 au lait ".encode("latin-1") * 50)
    data_error(
        workdir,
        "train",
        "dataset=text",
        "dataset.path=latin1.txt",
        needles=("latin1.txt", "not UTF-8", "byte 3"),
    )
