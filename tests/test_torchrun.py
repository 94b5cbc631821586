"""torchrun with 2 CPU processes (gloo): one run directory, rank 0 writes, the same result
as one process on the same global batch, and resume under DDP."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env, read_json, run_cli

TORCHRUN = Path(sys.executable).with_name("torchrun")
ARGS = ("trainer.max_epochs=3", "model=tiny", "trainer.num_threads=1", "trainer.batch_size=16")


def torchrun(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """torchrun with 2 CPU ranks. Rarely (2 of about 60 starts here, never reproduced in
    isolation) a rank aborts inside gloo while the group forms ("terminate called without an
    active exception", SIGABRT) before any training; such an attempt is cleaned away and
    started once more, and PYTHONFAULTHANDLER makes the ranks print where it happened."""
    command = [
        str(TORCHRUN),
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "lstm_cli",
        "train",
        *args,
    ]
    runs = workdir / "outputs" / "train"
    for attempt in range(2):
        before = set(runs.iterdir()) if runs.is_dir() else set()
        result = subprocess.run(
            command,
            cwd=workdir,
            env=cli_env(PYTHONFAULTHANDLER="1"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        aborted = result.returncode != 0 and "Signal 6 (SIGABRT)" in result.stderr
        if not aborted or attempt:
            return result
        for leftover in set(runs.iterdir()) - before:
            if not leftover.is_symlink():
                shutil.rmtree(leftover)
        latest = runs / "latest"
        if latest.is_symlink() and not latest.exists():
            latest.unlink()
    return result


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
