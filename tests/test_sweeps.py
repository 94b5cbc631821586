"""Sweeps on the engines people run: Optuna, joblib in parallel, submitit (local)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import budgeted, cli_env, read_json, run_cli

QUICK = ("trainer.max_epochs=1", "model=tiny")
JOBLIB_SWEEP = ("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")


def completed_trials(database: Path) -> int:
    """Trials the study has recorded as complete (0 while the sweeper is still creating it)."""
    try:
        with sqlite3.connect(database) as connection:
            (count,) = connection.execute(
                "SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'"
            ).fetchone()
    except sqlite3.OperationalError:  # tables not made yet, or the sweeper holds the lock
        return 0
    return count


@pytest.mark.slow
def test_optuna_search_interrupted_then_continued_holds_all_trials(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    args = budgeted(
        "train",
        "hparams_search=optuna",
        "hparams_search.trials=3",
        "trainer.max_epochs=3",
        "dataset=sine",
        "dataset.length=600",
    )
    first = subprocess.Popen(
        args, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not any(completed_trials(db) for db in tmp_path.glob("outputs/multirun/*/optuna.db")):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) in (143, -signal.SIGTERM)
    (sweep,) = (tmp_path / "outputs/multirun").iterdir()
    database = sweep / "optuna.db"
    done_before = completed_trials(database)
    assert 1 <= done_before < 3

    result = run_cli(*args[1:], f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    launched = len(re.findall(r"Launching 1 jobs", result.stdout))
    assert launched == 3 - done_before, "only the missing trials run"
    assert completed_trials(database) == 3
    assert "Best value" in result.stdout and "Directions: ['minimize']" in result.stdout


def test_optuna_direction_follows_the_monitor(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    result = run_cli(
        "train",
        "hparams_search=optuna",
        "hparams_search.trials=1",
        "dataset=italy_power",
        "trainer.monitor=val/acc",
        "trainer.mode=max",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Directions: ['maximize']" in result.stdout
    assert "\x1b[" not in result.stdout + result.stderr, "no colour codes off a terminal"


def test_a_failed_optuna_trial_is_recorded_and_the_search_goes_on(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    result = run_cli(
        "train",
        "hparams_search=optuna",
        "hparams_search.trials=2",
        "dataset=csv_forecast",
        "dataset.path=gone.csv",
        "dataset.target=y",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.count("dataset.path=gone.csv: no such file") == 2, "both trials ran"
    assert "2 sweep job(s) failed" in result.stderr


def test_joblib_runs_jobs_in_parallel_without_oversubscribing(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    result = run_cli(
        "train",
        *JOBLIB_SWEEP,
        "optimizer=adam,sgd",
        *QUICK,
        cwd=tmp_path,
        OMP_NUM_THREADS="",  # unset: the cores are divided among the jobs
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "outputs/multirun").iterdir())) == 1, "one sweep directory"
    logs = list(tmp_path.glob("outputs/multirun/*/*/train.log"))
    assert len(logs) == 2
    cores = len(os.sched_getaffinity(0))
    for log in logs:
        assert re.search(rf"threads={max(cores // 2, 1)}\b", log.read_text())
    assert len(list(tmp_path.glob("outputs/multirun/*/*/results.json"))) == 2


def test_a_job_failing_in_a_joblib_worker_fails_the_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    result = run_cli(
        "train",
        *JOBLIB_SWEEP,
        "dataset=sine",
        "dataset.length=600,5",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "1 sweep job(s) failed" in result.stderr and "dataset.length=5" in result.stderr
    assert len(list(tmp_path.glob("outputs/multirun/*/*/results.json"))) == 1


def test_submitit_local_launcher_runs_the_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = run_cli(
        "train",
        "-m",
        "hydra/launcher=submitit_local",
        "optimizer=adam,sgd",
        *QUICK,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "outputs/multirun").iterdir())) == 1, "one sweep directory"
    assert len(list(tmp_path.glob("outputs/multirun/*/*/results.json"))) == 2


@pytest.mark.slow
def test_killing_a_joblib_sweep_stops_its_workers_and_a_rerun_resumes_them(tmp_path):
    """SIGKILL to the sweep's process: each worker notices within a step, checkpoints and
    records `interrupted`; the same sweep run again into its directory resumes the jobs."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = [
        *JOBLIB_SWEEP,
        "dataset=sine",
        "dataset.length=6000",
        "model=tiny",
        "trainer.max_epochs=2",
        "trainer.refit=false",  # what is killed and resumed is the sweep, not the refit
        "trainer.checkpoint_every_steps=5",
        "optimizer.lr=0.001,0.002",
        "hydra.sweep.dir=outputs/multirun/nightly",
    ]
    parent = subprocess.Popen(
        budgeted("train", *sweep),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    jobs = tmp_path / "outputs/multirun/nightly"
    deadline = time.monotonic() + 120
    while len(list(jobs.glob("*/checkpoints/last.pt"))) < 2:
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60
    while sorted(read_json(j / "status.json")["status"] for j in jobs.glob("*/")) != [
        "interrupted",
        "interrupted",
    ]:
        assert time.monotonic() < deadline, "the orphaned workers did not stop"
        time.sleep(0.2)
    rerun = run_cli("train", *sweep, cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    for job in jobs.glob("*/"):
        assert read_json(job / "results.json")["epochs_completed"] == 2
        assert "resuming after epoch" in (job / "train.log").read_text()
