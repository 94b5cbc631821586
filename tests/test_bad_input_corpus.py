"""The bad-input corpus: every way a user can hand lstm-train something wrong.

Each case must end with its exit code, exactly one `error:` line naming the culprit (key,
file, line, column, array or checkpoint), no traceback, and every file that existed before
unchanged (inputs, earlier runs and their `latest` pointer). Every case runs in this
process, where the promise is the message; the cases in THROUGH_THE_CLI, a few of each
kind, also run as the real `lstm-train` process, for the exit code a shell sees.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest
import torch
from conftest import RunsCodeWhenUnpickled, assert_clean_error, run_cli, run_in_process

SERIES = "t,y\n" + "".join(f"{t},{10 + t % 7}\n" for t in range(80))
SMALL = ("model=tiny", "trainer.max_epochs=1")
FORECAST = (
    "train",
    "dataset=csv_forecast",
    "dataset.path=s.csv",
    "dataset.target=y",
    "dataset.window=5",
    "dataset.horizon=2",
    "dataset.val_size=5",
    "dataset.test_size=5",
    *SMALL,
)
SEQUENCES = ("train", "dataset=csv_sequences", "dataset.path=q.csv", "dataset.id_column=id", *SMALL)


def sequences(labels: list[str], column: str = "v") -> str:
    lines = [f"id,step,{column},label"]
    for n, label in enumerate(labels):
        lines += [f"s{n},{step},{n * 0.1 + step},{label}" for step in range(4)]
    return "\n".join(lines) + "\n"


def parquet_sequences(labels: list[str], empty_row: int, column: str) -> Callable[[Path], None]:
    """`sequences(labels)` as a Parquet file whose `column` is empty (null) at `empty_row`
    (0-based): a cell a CSV cannot leave null."""

    def write(path: Path) -> None:
        table = pv.read_csv(io.BytesIO(sequences(labels).encode()))
        cells = table.column(column).to_pylist()
        cells[empty_row] = None
        place = table.schema.get_field_index(column)
        pq.write_table(table.set_column(place, column, pa.array(cells, pa.string())), path)

    return write


def replace_line(text: str, number: int, line: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[number - 1] = line + "\n"
    return "".join(lines)


def npz(**arrays: object) -> Callable[[Path], None]:
    return lambda path: np.savez(path, **arrays)


def declaring_terabytes(path: Path) -> None:
    """An .npz whose 'x' header declares 8 TB that the file does not hold: what a
    decompression bomb looks like to a reader that trusts the header."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**4, 100)}
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", header.getvalue())
        archive.writestr("y.npy", header.getvalue())


def damaged(how: str) -> Callable[[Path, Path], None]:
    """A checkpoint made from the trained forecaster's, damaged in one way."""

    def make(path: Path, good: Path) -> None:
        data = good.read_bytes()
        if how == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif how == "random":
            path.write_bytes(np.random.default_rng(0).bytes(len(data)))
        elif how == "text":
            path.write_text("not a checkpoint\n")
        elif how == "foreign":
            torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
        elif how == "crafted":
            torch.save({"format_version": 1, "evil": RunsCodeWhenUnpickled("pwned")}, path)
        else:
            payload = torch.load(good, weights_only=True)
            if how == "newer":
                payload["format_version"] = 99
            elif how == "huge":  # a crafted spec that would allocate without end
                payload["model_spec"]["num_layers"] = 10**9
            elif how == "no members":  # averages no network at all
                payload["model_spec"]["members"] = 0
            else:  # incompatible: the spec says another size than the weights have
                payload["model_spec"]["hidden_size"] = 48
            torch.save(payload, path)

    return make


@dataclass
class Case:
    args: tuple[str, ...]
    code: int
    needles: tuple[str, ...]
    files: dict[str, str | bytes | Callable] = field(default_factory=dict)


CASES: dict[str, Case] = {
    # --- the command line ---
    "unknown command": Case(("trian",), 2, ("'trian'",)),
    "unknown key": Case(("train", "trainer.max_epoch=3"), 2, ("trainer.max_epoch",)),
    "override syntax": Case(("train", "trainer.max_epochs=["), 2, ("'['",)),
    "unknown option": Case(("train", "optimizer=adm"), 2, ("optimizer/adm", "adam")),
    "bad flag value": Case(("train", "--cfg", "nope"), 2, ("--cfg", "'nope'")),
    "unknown flag": Case(("train", "--bogus"), 2, ("--bogus",)),
    "evaluate without a run": Case(("evaluate",), 2, ("run_dir=DIR", "checkpoint=FILE")),
    "evaluate missing run": Case(("evaluate", "run_dir=gone"), 2, ("run_dir=gone",)),
    "evaluate both": Case(("evaluate", "run_dir={run}", "checkpoint={ckpt}"), 2, ("exactly one",)),
    "evaluate bad split": Case(("evaluate", "run_dir={run}", "split=holdout"), 2, ("split",)),
    "predict without input": Case(("predict", "run_dir={run}"), 2, ("input=FILE",)),
    "predict missing input": Case(
        ("predict", "run_dir={run}", "input=gone.csv"), 1, ("input=gone.csv", "no such file")
    ),
    "predict over a file": Case(
        ("predict", "run_dir={run}", "input=s.csv", "output=kept.csv"),
        2,
        ("kept.csv", "predict.overwrite"),
        {"s.csv": SERIES, "kept.csv": "precious\n"},
    ),
    "predict to a picture name": Case(
        ("predict", "run_dir={run}", "input=s.csv", "output=f.png"),
        2,
        ("output=f.png", "name a .csv file"),
        {"s.csv": SERIES},
    ),
    "predict over a dangling link": Case(
        ("predict", "run_dir={run}", "input=s.csv", "output=out.csv"),
        2,
        ("out.csv exists", "predict.overwrite"),
        {"s.csv": SERIES, "out.csv": lambda path: path.symlink_to("nowhere.csv")},
    ),
    "unquoted tilde": Case(("train", "dataset.path=~/x.csv"), 2, ("quote the value",)),
    "predict temperature": Case(
        ("predict", "run_dir={run}", "predict.temperature=0"),
        2,
        ("predict.temperature=0.0", "> 0.0"),
    ),
    "resume nowhere": Case(("train", "resume=nowhere"), 2, ("resume=nowhere",)),
    "resume changed": Case(
        ("train", "resume={run}", "model=small", "trainer.max_epochs=1"),
        2,
        ("model.hidden_size: saved 16, now 64",),
    ),
    # --- config values ---
    "batch size 0": Case(("train", "trainer.batch_size=0"), 2, ("trainer.batch_size=0", ">= 1")),
    "dropout 1": Case(("train", "model.dropout=1.0"), 2, ("model.dropout=1.0", "< 1.0")),
    "lr 0": Case(("train", "optimizer.lr=0"), 2, ("optimizer.lr=0.0", "> 0.0")),
    "negative size": Case(("train", "model.hidden_size=-4"), 2, ("model.hidden_size=-4",)),
    "wrong type": Case(("train", "trainer.max_epochs=many"), 2, ("trainer.max_epochs", "integer")),
    "device choice": Case(("train", "trainer.device=gpu"), 2, ("trainer.device='gpu'", "cuda")),
    "refit choice": Case(("train", "trainer.refit=always"), 2, ("refit='always'", "average")),
    "no cuda": Case(("train", "trainer.device=cuda"), 2, ("trainer.device=cuda", "no CUDA")),
    "loss for task": Case(
        ("train", "dataset=italy_power", "loss=mse"), 2, ("loss=mse", "classification")
    ),
    "monitor for task": Case(
        ("train", "trainer.monitor=val/acc", "trainer.mode=max"),
        2,
        ("trainer.monitor=val/acc", "val/rmse"),
    ),
    "monitor direction": Case(
        ("train", "dataset=italy_power", "trainer.monitor=val/acc"),
        2,
        ("trainer.mode=min", "trainer.mode=max"),
    ),
    "nesterov": Case(
        ("train", "optimizer=sgd", "optimizer.momentum=0"), 2, ("optimizer.nesterov=true",)
    ),
    "required path": Case(("train", "dataset=csv_forecast"), 2, ("dataset.path", "required")),
    "horizon too long": Case(
        ("train", "dataset.horizon=30"), 2, ("dataset.val_size=24", "dataset.horizon=30")
    ),
    "transform choice": Case(("train", "dataset.transform=[sqrt]"), 2, ("dataset.transform",)),
    "scaler choice": Case(("train", "dataset.scaler=zscore"), 2, ("dataset.scaler='zscore'",)),
    "nonfinite policy": Case(
        ("train", "trainer.on_nonfinite=explode"),
        2,
        ("trainer.on_nonfinite='explode'", "skip_batch"),
    ),
    "negative steps": Case(
        ("train", "trainer.checkpoint_every_steps=-1"), 2, ("trainer.checkpoint_every_steps=-1",)
    ),
    # --- CSV files ---
    "csv missing": Case(
        (*FORECAST[:2], "dataset.path=gone.csv", *FORECAST[3:]),
        1,
        ("dataset.path=gone.csv", "no such file"),
    ),
    "csv empty": Case(FORECAST, 1, ("s.csv", "empty"), {"s.csv": ""}),
    "csv header only": Case(FORECAST, 1, ("s.csv", "no data rows"), {"s.csv": "t,y\n"}),
    "csv ragged": Case(
        FORECAST, 1, ("s.csv, line 4", "3 fields"), {"s.csv": replace_line(SERIES, 4, "2,12,9")}
    ),
    "csv no column": Case(
        (*FORECAST, "dataset.target=units"),
        1,
        ("s.csv", "'units' not found", "columns are: t, y"),
        {"s.csv": SERIES},
    ),
    "csv not a number": Case(
        FORECAST,
        1,
        ("s.csv, line 7, column 'y'", "'abc'"),
        {"s.csv": replace_line(SERIES, 7, "5,abc")},
    ),
    "csv nan": Case(
        FORECAST,
        1,
        ("s.csv, line 7, column 'y'", "dataset.missing"),
        {"s.csv": replace_line(SERIES, 7, "5,nan")},
    ),
    "csv empty cell": Case(
        FORECAST, 1, ("s.csv, line 9, column 'y'",), {"s.csv": replace_line(SERIES, 9, "7,")}
    ),
    "csv infinite": Case(
        FORECAST, 1, ("s.csv, line 3, column 'y'",), {"s.csv": replace_line(SERIES, 3, "1,inf")}
    ),
    "csv too short": Case(
        FORECAST,
        1,
        ("s.csv", "too few"),
        {"s.csv": "t,y\n" + "".join(f"{t},{t}\n" for t in range(12))},
    ),
    "csv time order": Case(
        (*FORECAST, "dataset.time_column=t"),
        1,
        ("s.csv, line 7, column 't'", "does not increase"),
        {"s.csv": replace_line(SERIES, 7, "3,15")},
    ),
    "csv stamp spelling": Case(
        (*FORECAST, "dataset.time_column=t"),
        1,
        ("s.csv, line 2, column 't'", "'01/02/2024' is not a date", "dataset.time_format"),
        {"s.csv": "t,y\n" + "".join(f"01/{d:02d}/2024,{d}\n" for d in range(2, 30))},
    ),
    "csv log of zero": Case(
        (*FORECAST, "dataset.transform=log"),
        1,
        ("column 'y'", "transform=log needs positive values"),
        {"s.csv": replace_line(SERIES, 5, "3,0")},
    ),
    "csv seasonal without a season": Case(
        (*FORECAST, "dataset.transform=seasonal_diff"),
        1,
        ("s.csv", "transform=seasonal_diff needs a season", "got season 1"),
        {"s.csv": SERIES},
    ),
    "csv nothing to fill": Case(
        (*FORECAST, "dataset.missing=ffill"),
        1,
        ("s.csv, line 2", "nothing before it to fill from"),
        {"s.csv": replace_line(SERIES, 2, "0,")},
    ),
    "single class": Case(
        SEQUENCES, 1, ("q.csv", "at least 2 classes"), {"q.csv": sequences(["a"] * 12)}
    ),
    "label changes": Case(
        SEQUENCES,
        1,
        ("q.csv, line 3, column 'label'", "sequence 's0'"),
        {"q.csv": replace_line(sequences(["a", "b"] * 6), 3, "s0,1,1.0,b")},
    ),
    "empty id cell in Parquet": Case(
        (*SEQUENCES[:2], "dataset.path=q.parquet", *SEQUENCES[3:]),
        1,
        ("q.parquet, row 6, column 'id'", "missing value", "dataset.id_column"),
        {"q.parquet": parquet_sequences(["a", "b"] * 6, empty_row=5, column="id")},
    ),
    "empty label cell in Parquet": Case(
        (*SEQUENCES[:2], "dataset.path=q.parquet", *SEQUENCES[3:]),
        1,
        ("q.parquet, row 6, column 'label'", "missing value", "dataset.label_column"),
        {"q.parquet": parquet_sequences(["a", "b"] * 6, empty_row=5, column="label")},
    ),
    "unseen test class": Case(
        (*SEQUENCES, "dataset.test_path=t.csv"),
        1,
        ("t.csv, sequence 's1', column 'label'", "'c' was never seen"),
        {"q.csv": sequences(["a", "b"] * 6), "t.csv": sequences(["a", "c"])},
    ),
    "predict unseen class": Case(
        ("predict", "run_dir={classifier}", "input=u.csv"),
        1,
        ("u.csv, sequence 's1'", "'z' was never seen"),
        {"u.csv": sequences(["a", "z"])},
    ),
    "predict other features": Case(
        ("predict", "run_dir={classifier}", "input=w.csv"),
        1,
        ("w.csv", "'v' not found", "columns are: id, step, w, label"),
        {"w.csv": sequences(["a"], column="w")},
    ),
    # --- text files ---
    "text not utf8": Case(
        ("train", "dataset=text", "dataset.path=l.txt", *SMALL),
        1,
        ("l.txt", "not UTF-8", "byte 3"),
        {"l.txt": "caf\xe9 au lait ".encode("latin-1") * 50},
    ),
    "text empty": Case(
        ("train", "dataset=text", "dataset.path=e.txt", *SMALL),
        1,
        ("e.txt", "empty"),
        {"e.txt": ""},
    ),
    "text too short": Case(
        ("train", "dataset=text", "dataset.path=s.txt", *SMALL),
        1,
        ("s.txt", "fewer than seq_len+1=101"),
        {"s.txt": "short text " * 12},
    ),
    "feature too large to scale": Case(
        SEQUENCES,
        1,
        ("column 'v'", "too large to scale"),
        {"q.csv": sequences(["a", "b"] * 6).replace("s0,0,0.0,a", "s0,0,1e308,a")},
    ),
    # --- npz files ---
    "npz not a zip": Case(
        ("train", "dataset=npz", "dataset.path=a.npz", *SMALL),
        1,
        ("a.npz", "not a readable .npz"),
        {"a.npz": "plain text\n"},
    ),
    "npz no x": Case(
        ("train", "dataset=npz", "dataset.path=a.npz", *SMALL),
        1,
        ("a.npz", "no array 'x'", "arrays are: y"),
        {"a.npz": npz(y=np.zeros(3))},
    ),
    "npz y shape": Case(
        ("train", "dataset=npz", "dataset.path=a.npz", *SMALL),
        1,
        ("a.npz, array 'y'", "(9,)", "(10,)"),
        {"a.npz": npz(x=np.zeros((10, 5, 2)), y=np.zeros(9))},
    ),
    "npz x rank": Case(
        ("train", "dataset=npz", "dataset.path=a.npz", *SMALL),
        1,
        ("a.npz, array 'x'", "[N, T, F]"),
        {"a.npz": npz(x=np.zeros((10, 5)), y=np.zeros(10))},
    ),
    "npz lengths": Case(
        ("train", "dataset=npz", "dataset.path=a.npz", *SMALL),
        1,
        ("a.npz, array 'lengths'", "1..5"),
        {"a.npz": npz(x=np.zeros((10, 5, 2)), y=np.arange(10) % 2, lengths=np.full(10, 6))},
    ),
    "npz pickled": Case(
        ("train", "dataset=npz", "dataset.path=a.npz", *SMALL),
        1,
        ("a.npz", "not a readable .npz"),
        {"a.npz": npz(x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))},
    ),
    "npz complex": Case(
        ("train", "dataset=npz", "dataset.path=a.npz", *SMALL),
        1,
        ("a.npz, array 'x'", "complex128", "real numbers"),
        {"a.npz": npz(x=np.zeros((10, 5, 2), dtype=complex), y=np.arange(10) % 2)},
    ),
    "npz empty": Case(
        ("train", "dataset=npz", "dataset.path=a.npz", *SMALL),
        1,
        ("a.npz, array 'x'", "no sequences"),
        {"a.npz": npz(x=np.zeros((0, 5, 2)), y=np.zeros(0))},
    ),
    "npz bomb": Case(
        ("train", "dataset=npz", "dataset.path=a.npz", *SMALL),
        1,
        ("a.npz", "declare", "GiB, more than"),
        {"a.npz": declaring_terabytes},
    ),
    # --- checkpoints ---
    **{
        f"checkpoint {how}": Case(
            ("evaluate", "checkpoint=c.pt"), 1, ("c.pt", needle), {"c.pt": damaged(how)}
        )
        for how, needle in {
            "truncated": "not a readable checkpoint",
            "random": "not a readable checkpoint",
            "text": "not a readable checkpoint",
            "foreign": "not an lstm-train checkpoint",
            "crafted": "refused",
            "newer": "format 99 is newer",
            "incompatible": "the weights do not fit",
            "huge": "the weights do not fit",
            "no members": "members 0",
        }.items()
    },
}


THROUGH_THE_CLI = {
    "unknown command",
    "unknown key",
    "bad flag value",
    "evaluate both",
    "predict over a file",
    "resume changed",
    "wrong type",
    "no cuda",
    "loss for task",
    "checkpoint crafted",
    "checkpoint truncated",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A forecaster (airline) and a classifier (csv_sequences), each trained for one epoch."""
    forecaster = tmp_path_factory.mktemp("forecaster")
    assert run_cli("train", *SMALL, cwd=forecaster).returncode == 0
    classifier = tmp_path_factory.mktemp("classifier")
    (classifier / "q.csv").write_text(sequences(["a", "b"] * 6))
    assert run_cli(*SEQUENCES, cwd=classifier).returncode == 0
    return {
        "run": (forecaster / "outputs/train/latest").resolve(),
        "classifier": (classifier / "outputs/train/latest").resolve(),
    }


def snapshot(*roots: Path) -> dict[Path, str]:
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest()
        for root in roots
        for path in root.rglob("*")
        if path.is_file()
    }


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40


def test_the_cli_cases_are_in_the_corpus():
    assert set(CASES) >= THROUGH_THE_CLI


@pytest.mark.parametrize(
    ("name", "runner"),
    [(name, "in process") for name in CASES] + [(name, "cli") for name in sorted(THROUGH_THE_CLI)],
)
def test_bad_input(name: str, runner: str, tmp_path: Path, trained: dict[str, Path]) -> None:
    case = CASES[name]
    good_checkpoint = trained["run"] / "checkpoints" / "last.pt"
    for filename, content in case.files.items():
        target = tmp_path / filename
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif isinstance(content, str):
            target.write_text(content)
        elif filename.endswith(".pt"):
            content(target, good_checkpoint)
        else:
            content(target)
    earlier = tmp_path / "outputs" / "train" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "results.json").write_text("{}\n")
    os.symlink("earlier", tmp_path / "outputs" / "train" / "latest")
    before = snapshot(tmp_path, trained["run"], trained["classifier"])
    names = {"run": trained["run"], "ckpt": good_checkpoint, "classifier": trained["classifier"]}
    args = [arg.format(**names) for arg in case.args]
    run = run_cli if runner == "cli" else run_in_process
    result = run(*args, cwd=tmp_path)
    assert_clean_error(result, case.code, *case.needles)
    after = snapshot(tmp_path, trained["run"], trained["classifier"])
    assert {path: after.get(path) for path in before} == before, "a file written before changed"
    assert os.readlink(tmp_path / "outputs/train/latest") == "earlier"
    assert not (tmp_path / "pwned").exists(), "code in a checkpoint ran"
    shutil.rmtree(tmp_path / "outputs")
