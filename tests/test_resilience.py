"""A run survives kills, signals, bad numbers, full disks and crowds of siblings."""

from __future__ import annotations

import csv
import random
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    SCRIPT,
    RunsCodeWhenUnpickled,
    assert_clean_error,
    budgeted,
    cli_env,
    run_cli,
    run_in_process,
)

SINE = (
    "dataset=sine",
    "trainer.max_epochs=8",
    "model=tiny",
    "model.num_layers=2",
    "model.dropout=0.2",
    "trainer.checkpoint_every_steps=7",
    "trainer.num_threads=1",
)
TIMING = {"epoch_seconds", "sequences_per_second"}


def start(workdir: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        budgeted("train", *args),
        cwd=workdir,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def wait_for_checkpoint(workdir: Path, process: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list((workdir / "outputs/train").glob("20*/checkpoints/last.pt"))
        if found:
            return found[0].parents[1]
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def final_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], list[dict[str, str]]]:
    weights = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["model_state"]
    with (run_dir / "metrics.csv").open() as stream:
        rows = [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(stream)]
    return weights, rows


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    result = run_in_process("train", *SINE, cwd=workdir)
    assert result.returncode == 0, result.stderr
    return final_state((workdir / "outputs/train/latest").resolve())


def assert_same_run(run_dir: Path, expected) -> None:
    weights, rows = final_state(run_dir)
    expected_weights, expected_rows = expected
    assert rows == expected_rows
    assert weights.keys() == expected_weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(tensor, expected_weights[name]), name


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_is_bit_identical(tmp_path, uninterrupted):
    process = start(tmp_path, *SINE)
    run_dir = wait_for_checkpoint(tmp_path, process)
    time.sleep(random.uniform(0.0, 1.0))
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before the kill: make it longer"
    result = run_in_process("train", *SINE, f"resume={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming after epoch" in result.stdout
    assert_same_run(run_dir, uninterrupted)


@pytest.mark.slow
def test_sigterm_finishes_the_step_checkpoints_and_resumes_mid_epoch(tmp_path, uninterrupted):
    process = start(tmp_path, *SINE)
    run_dir = wait_for_checkpoint(tmp_path, process)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    stderr = process.stderr.read()
    assert stderr.count("\n") == 1 and "interrupted by SIGTERM" in stderr
    assert f"lstm-train train resume={run_dir}" in stderr
    payload = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    result = run_in_process("train", *SINE, "resume=latest", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"batch {payload['batch_in_epoch']}" in result.stdout
    assert_same_run(run_dir, uninterrupted)


def test_sigint_exits_130_and_a_second_stops_at_once(tmp_path):
    process = start(tmp_path, *SINE)
    wait_for_checkpoint(tmp_path, process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert "interrupted by SIGINT" in process.stderr.read()
    again = tmp_path / "again"
    again.mkdir()
    process = start(again, *SINE, "model=medium")
    wait_for_checkpoint(again, process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert "Traceback" not in process.stderr.read()


def test_resume_refuses_a_different_config_and_lists_each_key(tmp_path):
    assert (
        run_in_process("train", "trainer.max_epochs=1", "model=tiny", cwd=tmp_path).returncode == 0
    )
    result = run_in_process(
        "train",
        "resume=latest",
        "trainer.max_epochs=1",
        "model=small",
        "optimizer.lr=0.01",
        cwd=tmp_path,
    )
    assert_clean_error(
        result,
        2,
        "model.hidden_size: saved 16, now 64",
        "optimizer.lr: saved 0.001, now 0.01",
        "Only these may change: output_root, trainer.max_epochs, trainer.patience",
    )
    nowhere = run_in_process("train", "resume=nowhere", cwd=tmp_path)
    assert_clean_error(nowhere, 2, "resume=nowhere")


def test_resume_continues_the_saved_config_as_the_interrupt_hint_says(tmp_path):
    first = ("model=tiny", "optimizer.lr=0.01", "trainer.max_epochs=2")
    assert run_in_process("train", *first, cwd=tmp_path).returncode == 0
    run_dir = (tmp_path / "outputs/train/latest").resolve()
    result = run_cli("train", f"resume={run_dir}", "trainer.max_epochs=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with (run_dir / "metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]  # not the default 1000 epochs
    assert {row["lr"] for row in rows} == {"0.01"}
    saved = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["config"]
    assert saved["model"]["hidden_size"] == 16 and saved["trainer"]["max_epochs"] == 3
    result = run_in_process("train", "resume=latest", cwd=tmp_path)  # nothing left to do
    assert result.returncode == 0, result.stderr
    with (run_dir / "metrics.csv").open() as stream:
        assert len(list(csv.DictReader(stream))) == 3


def test_resume_may_extend_max_epochs_and_appends_metrics(tmp_path):
    args = ("trainer.max_epochs=2", "model=tiny")
    assert run_in_process("train", *args, cwd=tmp_path).returncode == 0
    run_dir = (tmp_path / "outputs/train/latest").resolve()
    config = (run_dir / ".hydra/config.yaml").read_text()
    result = run_cli("train", "resume=latest", "model=tiny", "trainer.max_epochs=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with (run_dir / "metrics.csv").open() as stream:
        assert [row["epoch"] for row in csv.DictReader(stream)] == ["1", "2", "3", "4"]
    assert (run_dir / ".hydra/config.yaml").read_text() == config, "saved config kept"
    assert len(list((run_dir / ".hydra").glob("resumed_*/config.yaml"))) == 1
    assert "resuming after epoch 2" in (run_dir / "train.log").read_text()


def nonfinite_series(workdir: Path) -> tuple[str, ...]:
    body = "t,y\n" + "".join(f"{t},{1e30 if t == 50 else t % 7}\n" for t in range(100))
    (workdir / "big.csv").write_text(body)
    return (
        "dataset=csv_forecast",
        "dataset.path=big.csv",
        "dataset.target=y",
        "dataset.scaler=none",
        "dataset.window=5",
        "dataset.horizon=2",
        "dataset.val_size=5",
        "dataset.test_size=5",
        "model=tiny",
        "trainer.max_epochs=2",
    )


def test_nonfinite_loss_stops_naming_epoch_and_step(tmp_path):
    result = run_in_process("train", *nonfinite_series(tmp_path), cwd=tmp_path)
    assert_clean_error(
        result, 1, "non-finite loss or gradient at epoch 1, step", "trainer.on_nonfinite=skip_batch"
    )


def test_nonfinite_batches_can_be_skipped(tmp_path):
    result = run_in_process(
        "train", *nonfinite_series(tmp_path), "trainer.on_nonfinite=skip_batch", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    with (tmp_path / "outputs/train/latest/metrics.csv").open() as stream:
        skipped = [float(row["skipped_batches"]) for row in csv.DictReader(stream)]
    assert all(count >= 1 for count in skipped)


def test_a_full_disk_ends_clearly_and_keeps_the_previous_checkpoint(tmp_path):
    assert run_in_process("train", "trainer.max_epochs=1", cwd=tmp_path).returncode == 0
    last = tmp_path / "outputs/train/latest/checkpoints/last.pt"
    before = last.read_bytes()
    limit = len(before) // 2  # any write past this fails with EFBIG, as on a full disk

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [str(SCRIPT), "train", "resume=latest", "trainer.max_epochs=2"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
        timeout=120,
    )
    # epoch 2 improves: best.pt is written first (before the last.pt that records it)
    assert_clean_error(
        result, 1, "best.pt: could not write the checkpoint", "the previous one is intact"
    )
    assert last.read_bytes() == before
    assert not [p for p in last.parent.iterdir() if p.name.startswith(".")], "no temporary left"


def test_an_unwritable_output_directory_is_one_clear_error(tmp_path):
    (tmp_path / "a_file").write_text("not a directory\n")
    result = run_in_process("train", "output_root=a_file/runs", cwd=tmp_path)
    assert_clean_error(result, 1, "a_file/runs/train", "Not a directory")


@pytest.mark.slow
def test_eight_trainings_started_together_get_eight_directories(tmp_path):
    processes = [
        start(tmp_path, "trainer.max_epochs=1", "model=tiny", "trainer.num_threads=1")
        for _ in range(8)
    ]
    assert [p.wait(timeout=300) for p in processes] == [0] * 8
    runs = [p for p in (tmp_path / "outputs/train").iterdir() if not p.is_symlink()]
    assert len(runs) == 8 and all((run / "results.json").is_file() for run in runs)


def test_a_crafted_checkpoint_is_refused_by_the_cli_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": RunsCodeWhenUnpickled(marker)}, evil)
    for command in (
        ("evaluate", f"checkpoint={evil}"),
        ("predict", f"checkpoint={evil}", "input=x.csv"),
    ):
        assert_clean_error(run_cli(*command, cwd=tmp_path), 1, "evil.pt", "refused")
    assert not marker.exists()


def signalled_then_resumed(workdir: Path, args: tuple[str, ...], pause: float):
    """The run of `args` uninterrupted, then again with a SIGTERM `pause` seconds after its
    first checkpoint and a resume: (the resumed run's dir and output, the uninterrupted
    run's final state)."""
    whole = workdir / "whole"
    whole.mkdir()
    assert run_in_process("train", *args, cwd=whole).returncode == 0
    expected = final_state((whole / "outputs/train/latest").resolve())
    process = start(workdir, *args)
    run_dir = wait_for_checkpoint(workdir, process)
    time.sleep(pause)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143, "the run ended before the signal: make it longer"
    result = run_in_process("train", *args, "resume=latest", cwd=workdir)
    assert result.returncode == 0, result.stderr
    return run_dir, result.stdout, expected


@pytest.mark.slow
def test_augmented_batches_and_a_per_step_schedule_resume_mid_epoch_bit_identical(tmp_path):
    """Crops, scales, warps and mixup's blends are drawn from torch's generators, and
    scheduler=onecycle moves the learning rate every step: a checkpoint between two steps
    must carry the generators' states and the schedule's position, or the resumed run trains
    on other batches at other rates."""
    augmented = (
        "dataset=italy_power",
        "model=tiny",
        "augment.scale=0.2",
        "augment.crop=0.8",
        "augment.warp=0.2",
        "augment.mixup=0.2",
        "scheduler=onecycle",
        "scheduler.steps=300",
        "trainer.max_epochs=80",
        "trainer.patience=null",
        "trainer.checkpoint_every_steps=3",
        "trainer.num_threads=1",
    )
    run_dir, output, expected = signalled_then_resumed(tmp_path, augmented, 0.5)
    assert "augmented=random 80% of each sequence" in output
    assert "speed x exp(0.2 N(0, 1)) in 4 stretches, mixup Beta(0.2, 0.2)" in output
    assert_same_run(run_dir, expected)
    rates = [float(row["lr"]) for row in expected[1]]
    assert max(rates) == pytest.approx(3e-3, rel=0.05) and rates[-1] < rates[0] / 10
