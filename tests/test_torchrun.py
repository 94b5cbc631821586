"""torchrun with 2 CPU processes (gloo): one run directory, rank 0 writes, the same result
as one process on the same global batch, and resume under DDP."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env, read_json, run_cli

TORCHRUN = Path(sys.executable).with_name("torchrun")
ARGS = ("trainer.max_epochs=3", "model=tiny", "trainer.num_threads=1", "trainer.batch_size=16")


def torchrun(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(TORCHRUN),
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "lstm_cli",
        "train",
        *args,
    ]
    return subprocess.run(
        command, cwd=workdir, env=cli_env(), capture_output=True, text=True, timeout=300
    )


def test_two_processes_share_one_run_and_match_one_process(tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    assert run_cli("train", *ARGS, cwd=single).returncode == 0
    result = torchrun(tmp_path, *ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [p for p in (tmp_path / "outputs/train").iterdir() if not p.is_symlink()]
    assert len(runs) == 1, "all ranks write into one run directory"
    run = runs[0]
    assert (run / "train.log").is_file() and (run / "train.rank1.log").is_file()
    assert (run / "checkpoints/last.pt").is_file() and (run / ".hydra/config.yaml").is_file()
    assert "epoch 3/3" not in (run / "train.rank1.log").read_text(), "rank 0 alone reports"
    ddp = read_json(run / "results.json")
    alone = read_json(single / "outputs/train/latest/results.json")
    # Same global batch; DDP drops the one-sample last batch and averages per-rank means.
    assert ddp["best_value"] == pytest.approx(alone["best_value"], rel=0.02)
    assert ddp["test"]["test/loss"] == pytest.approx(alone["test"]["test/loss"], rel=0.02)


def test_resume_under_torchrun(tmp_path):
    first = torchrun(tmp_path, *ARGS[1:], "trainer.max_epochs=2")
    assert first.returncode == 0, first.stderr[-3000:]
    again = torchrun(tmp_path, *ARGS[1:], "trainer.max_epochs=3", "resume=latest")
    assert again.returncode == 0, again.stderr[-3000:]
    runs = [p for p in (tmp_path / "outputs/train").iterdir() if not p.is_symlink()]
    assert len(runs) == 1
    with (runs[0] / "metrics.csv").open() as stream:
        assert [row["epoch"] for row in csv.DictReader(stream)] == ["1", "2", "3"]
