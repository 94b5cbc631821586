"""Nothing lost: a run directory is owned by one run, its checkpoints agree after a kill at
any point, and `latest`, sweep job names and `report` never point at or hide the wrong run.

Kill points are injected deterministically: the training runs in a subprocess whose
`save_checkpoint` is wrapped to end the process (as SIGKILL would, no cleanup) right after a
chosen write, so the window between two writes is hit every time, not by timing luck.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, budgeted, cli_env, read_json, run_cli, run_in_process

from lstm_cli.common.atomic import remove_leftovers
from lstm_cli.common.errors import CheckpointError, ConfigError
from lstm_cli.runs.ownership import exclusive, lock_holder
from lstm_cli.training.state import TrainingProgress, saved_rows

SMALL = ("model=tiny", "trainer.max_epochs=3", "trainer.num_threads=1")


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def run_patched(workdir: Path, patch: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`lstm-train train ARGS` in a subprocess after running `patch` (which may replace a
    function of `lstm_cli.training.loop`, imported as `loop`): a deterministic fault."""
    probe = "import os, signal\nimport lstm_cli.training.loop as loop\n" + textwrap.dedent(patch)
    command = budgeted("train", *args)[1:]  # lstm-train's arguments, as run_cli runs them
    probe += f"\nfrom lstm_cli.cli.main import main\nmain({command!r})\n"
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, env=cli_env(), capture_output=True, text=True
    )


def killed_when(workdir: Path, condition: str, *args: str, before: bool = False) -> int:
    """`lstm-train train ARGS`, ended without any cleanup when a checkpoint is written (or
    about to be, `before`) whose `path` and `payload` meet `condition`."""
    patch = f"""
        original = loop.save_checkpoint
        def save_then_die(payload, path):
            refit = payload.get("refit")
            if {before} and ({condition}):
                os._exit(137)
            original(payload, path)
            if {condition}:
                os._exit(137)
        loop.save_checkpoint = save_then_die
        """
    return run_patched(workdir, patch, *args).returncode


def killed_then_resumed(workdir: Path, args: tuple[str, ...], condition: str) -> tuple[Path, Path]:
    """The run of `args` uninterrupted, and again killed when a checkpoint meeting
    `condition` is written (see `killed_when`), then resumed: (that run, the whole one)."""
    whole, killed = workdir / "whole", workdir / "killed"
    whole.mkdir()
    killed.mkdir()
    assert run_in_process("train", *args, cwd=whole).returncode == 0
    assert killed_when(killed, condition, *args) == 137
    run_dir = next((killed / "outputs/train").glob("20*"))
    resumed = run_in_process("train", *args, f"resume={run_dir}", cwd=killed)
    assert resumed.returncode == 0, resumed.stderr
    return run_dir, (whole / "outputs/train/latest").resolve()


def assert_same_checkpoints(run_dir: Path, expected: Path, *names: str) -> None:
    for name in names:
        ours = torch.load(run_dir / "checkpoints" / name, weights_only=True)
        theirs = torch.load(expected / "checkpoints" / name, weights_only=True)
        assert ours["epoch"] == theirs["epoch"], name
        for key, tensor in theirs["model_state"].items():
            assert torch.equal(ours["model_state"][key], tensor), (name, key)


def long_training(workdir: Path) -> tuple[subprocess.Popen[str], Path]:
    """A 500-epoch run in the background, once its first checkpoint is written."""
    process = subprocess.Popen(
        budgeted("train", "dataset=sine", "model=tiny", "trainer.max_epochs=500"),
        cwd=workdir,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(workdir.glob("outputs/train/*/checkpoints/last.pt")):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    return process, next(workdir.glob("outputs/train/*/checkpoints/last.pt")).parents[1]


def test_a_second_run_into_the_same_directory_is_refused_and_the_first_kept(tmp_path):
    first = run_in_process("train", *SMALL, "hydra.run.dir=runs/nightly", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = snapshot(tmp_path / "runs/nightly")
    again = run_in_process("train", *SMALL, "hydra.run.dir=runs/nightly", cwd=tmp_path)
    assert_clean_error(again, 2, "hydra.run.dir=runs/nightly", "already holds a run", "resume=")
    assert snapshot(tmp_path / "runs/nightly") == before
    longer = [*SMALL[:1], "trainer.max_epochs=4", *SMALL[2:], "resume=runs/nightly"]
    resumed = run_cli("train", *longer, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert read_json(tmp_path / "runs/nightly/results.json")["epochs_completed"] == 4


def test_a_live_run_holds_its_directory_against_a_second_writer(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\n"
            "from lstm_cli.runs.ownership import exclusive\n"
            "with exclusive(Path(sys.argv[1])):\n    print('held', flush=True)\n"
            "    time.sleep(60)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock_holder(tmp_path) == holder.pid
        with (
            pytest.raises(ConfigError, match=f"in use by a running lstm-train \\(pid {holder.pid}"),
            exclusive(tmp_path),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert lock_holder(tmp_path) is None, "the kernel releases a dead holder's lock"
    with exclusive(tmp_path):
        assert lock_holder(tmp_path) is None or lock_holder(tmp_path) == os.getpid()


def test_resuming_a_run_that_is_still_training_is_refused(tmp_path):
    process, run_dir = long_training(tmp_path)
    try:
        result = run_in_process(
            "train", "dataset=sine", "model=tiny", f"resume={run_dir}", cwd=tmp_path
        )
        assert_clean_error(result, 2, "in use by a running lstm-train", f"pid {process.pid}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("kill_after", ["best.pt", "last.pt"])
def test_a_kill_between_the_checkpoint_writes_resumes_to_the_same_best_and_results(
    tmp_path, kill_after
):
    last_best_epoch = f'path.name == {kill_after!r} and payload["epoch"] == 3'
    run_dir, expected = killed_then_resumed(tmp_path, SMALL, last_best_epoch)
    assert_same_checkpoints(run_dir, expected, "best.pt", "last.pt")
    results, reference = read_json(run_dir / "results.json"), read_json(expected / "results.json")
    assert results["best_epoch"] == reference["best_epoch"]
    assert results["test"] == reference["test"]


def test_latest_moves_only_to_a_run_that_has_a_checkpoint(tmp_path):
    assert run_in_process("train", *SMALL, cwd=tmp_path).returncode == 0
    good = (tmp_path / "outputs/train/latest").resolve()
    assert killed_when(tmp_path, "True", *SMALL, before=True) == 137  # before any checkpoint
    assert (tmp_path / "outputs/train/latest").resolve() == good
    evaluated = run_cli("evaluate", "run_dir=outputs/train/latest", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr


def test_sweep_job_directories_stay_inside_the_sweep(tmp_path):
    result = run_in_process(
        "train", "-m", *SMALL[:2], "trainer.max_epochs=1", "dataset.name=../../../escape/x,ok",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sweep = next((tmp_path / "outputs/multirun").iterdir())
    jobs = sorted(path.name for path in sweep.iterdir() if path.is_dir())
    assert len(jobs) == 2 and all("/" not in job and ".." not in job for job in jobs)
    assert all((sweep / job / "results.json").is_file() for job in jobs)
    assert not list(tmp_path.rglob("escape")), "a job directory escaped its sweep"
    overrides = (sweep / jobs[0] / ".hydra/overrides.yaml").read_text()
    assert "../../../escape/x" in overrides, "the full override is kept"


def test_sighup_stops_a_run_like_sigterm(tmp_path):
    process, _ = long_training(tmp_path)
    process.send_signal(signal.SIGHUP)
    assert process.wait(timeout=60) == 129
    assert "interrupted by SIGHUP" in process.stderr.read()
    run_dir = (tmp_path / "outputs/train/latest").resolve()
    assert read_json(run_dir / "status.json")["status"] == "interrupted"


def test_temporary_files_of_interrupted_writes_are_removed(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"kept")
    leftovers = [tmp_path / ".last.pt.abc123", tmp_path / ".best.pt.x9"]
    for path in leftovers:
        path.write_bytes(b"half a checkpoint")
    (tmp_path / ".unrelated").write_text("mine")
    assert sorted(remove_leftovers(tmp_path, ("last.pt", "best.pt"))) == sorted(leftovers)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".unrelated", "last.pt"]


def test_report_skips_a_damaged_run_and_names_it(tmp_path):
    assert run_in_process("train", *SMALL, cwd=tmp_path).returncode == 0
    assert run_in_process("train", *SMALL, "optimizer.lr=0.01", cwd=tmp_path).returncode == 0
    damaged = sorted((tmp_path / "outputs/train").glob("20*"))[0]
    (damaged / "results.json").write_text("[1, 2]\n")
    with (damaged / "metrics.csv").open("a") as stream:
        stream.write("4,0.3x")
    result = run_cli("report", "outputs", "format=json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 1
    assert f"warning: skipped {damaged.relative_to(tmp_path)}: damaged" in result.stderr


def test_evaluate_scores_the_file_trained_on_from_any_directory_and_warns_when_it_changed(
    tmp_path,
):
    data = tmp_path / "data"
    data.mkdir()
    (data / "s.csv").write_text("t,y\n" + "".join(f"{t},{10 + t % 7 + t / 9}\n" for t in range(80)))
    forecast = ("dataset=csv_forecast", "dataset.path=s.csv", "dataset.target=y")
    assert run_in_process("train", *SMALL, *forecast, cwd=data).returncode == 0
    run_dir = (data / "outputs/train/latest").resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "s.csv").write_text("t,y\n" + "".join(f"{t},{t * 100}\n" for t in range(80)))
    here = run_cli("evaluate", f"run_dir={run_dir}", cwd=data)
    there = run_cli("evaluate", f"run_dir={run_dir}", cwd=elsewhere)
    assert here.returncode == there.returncode == 0, there.stderr
    scored = [
        read_json(next(d.glob("outputs/evaluate/20*/metrics.json"))) for d in (data, elsewhere)
    ]
    assert scored[0]["metrics"] == scored[1]["metrics"], "the same file, wherever evaluate runs"
    assert scored[1]["data_files"]["dataset.path"]["path"] == str((data / "s.csv").resolve())
    assert not scored[1]["warnings"] or "not the file" not in scored[1]["warnings"][0]
    (data / "s.csv").write_text("t,y\n" + "".join(f"{t},{20 + t % 5}\n" for t in range(80)))
    changed = run_cli("evaluate", f"run_dir={run_dir}", cwd=elsewhere)
    assert changed.returncode == 0, changed.stderr
    said = changed.stdout + changed.stderr
    assert "dataset.path=" in said and "is not the file this model was trained on" in said


def test_a_checkpoint_saved_before_newer_keys_existed_still_evaluates(tmp_path, trained_airline):
    """Keys added to conf/ since a run was saved come from today's YAML, not a schema."""
    best = trained_airline / "outputs/train/latest/checkpoints/best.pt"
    payload = torch.load(best, weights_only=True)
    del payload["config"]["hparams_search"], payload["config"]["trainer"]["min_steps"]
    del payload["config"]["model"]["pooling"]
    torch.save(payload, tmp_path / "old.pt")
    result = run_cli("evaluate", "checkpoint=old.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_sigterm_while_the_run_sets_up_records_interrupted(tmp_path):
    result = run_patched(
        tmp_path,
        """
        setup = loop.Training.__init__
        def setup_then_sigterm(self, *args):
            setup(self, *args)
            os.kill(os.getpid(), signal.SIGTERM)
        loop.Training.__init__ = setup_then_sigterm
        """,
        *SMALL,
    )
    assert_clean_error(result, 143, "interrupted by SIGTERM before the first checkpoint")
    run_dir = next((tmp_path / "outputs/train").glob("20*"))
    assert read_json(run_dir / "status.json")["status"] == "interrupted"


def test_a_second_ctrl_c_stops_at_once_and_records_interrupted(tmp_path):
    result = run_patched(
        tmp_path,
        """
        step = loop.train_batch
        def step_then_two_sigints(model, batch, position, *rest):
            if position == 1:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
            return step(model, batch, position, *rest)
        loop.train_batch = step_then_two_sigints
        """,
        *SMALL,
    )
    assert_clean_error(result, 130, "interrupted")
    run_dir = next((tmp_path / "outputs/train").glob("20*"))
    assert read_json(run_dir / "status.json")["status"] == "interrupted"


def test_a_full_disk_while_hydra_writes_the_run_directory_is_one_error_naming_it(tmp_path):
    def tiny_files() -> None:  # any write past 300 bytes fails, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))

    result = subprocess.run(
        budgeted("train", *SMALL),
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        preexec_fn=tiny_files,
        timeout=120,
    )
    assert_clean_error(result, 1, "outputs/train/20", "could not write the run's files")


def test_a_disk_that_fills_during_training_gives_one_error_and_no_logging_tracebacks(tmp_path):
    result = run_patched(
        tmp_path,
        """
        import resource
        setup = loop.Training.__init__
        def setup_then_fill_the_disk(self, *args):
            setup(self, *args)
            size = (self.run_dir / "train.log").stat().st_size
            resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, size + 10))
        loop.Training.__init__ = setup_then_fill_the_disk
        """,
        *SMALL,
    )
    assert_clean_error(result, 1, "could not write the checkpoint")
    assert "Logging error" not in result.stderr


def test_a_kill_while_drawing_the_curves_leaves_a_finished_run_finished(tmp_path):
    result = run_patched(
        tmp_path,
        """
        from lstm_cli.reporting import plots
        def killed_while_plotting(*args):
            os._exit(137)
        plots.learning_curves = killed_while_plotting
        """,
        *SMALL,
        "plots=true",
    )
    assert result.returncode == 137
    run_dir = next((tmp_path / "outputs/train").glob("20*"))
    assert read_json(run_dir / "status.json")["status"] == "finished"
    assert read_json(run_dir / "results.json")["epochs_completed"] == 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "moment", "refit"),
    [
        ("last.pt", 'refit["done"] == 0 and payload["batch_in_epoch"] == 2', "true"),  # mid-epoch
        ("last.pt", 'refit["done"] == 2', "true"),  # between two refit epochs
        ("best.pt", 'refit["done"] == refit["epochs"]', "true"),  # between the final writes
        ("best.pt", 'refit["done"] == refit["epochs"]', "average"),  # best.pt holds both
    ],
)
def test_a_run_killed_in_its_refit_resumes_to_the_same_weights_and_results(
    tmp_path, name, moment, refit
):
    args = (
        "dataset=italy_power",
        *SMALL,
        f"trainer.refit={refit}",
        "trainer.min_steps=0",
        "trainer.checkpoint_every_steps=2",
    )
    condition = f"path.name == {name!r} and refit and {moment}"
    run_dir, expected = killed_then_resumed(tmp_path, args, condition)
    assert_same_checkpoints(run_dir, expected, "best.pt", "last.pt", "validated.pt")
    results, reference = read_json(run_dir / "results.json"), read_json(expected / "results.json")
    assert results["test"] == reference["test"]
    for record in (results, reference):
        record["refit"].pop("validated_checkpoint")  # a path inside each run's own directory
    assert results["refit"] == reference["refit"]


def test_a_checkpoint_keeps_its_metrics_rows_as_json_and_reads_older_lists():
    """One string a checkpoint, exact floats (NaN too); a list written before still reads;
    damaged text is one CheckpointError naming last.pt."""
    rows = [{"epoch": 1, "train/loss": 0.1 + 0.2, "val/acc": float("nan"), "lr": 1e-3}]
    progress = TrainingProgress(torch.zeros(1), None, None, rows=list(rows))
    progress.add_row({"epoch": 2, "train/loss": 1 / 3, "val/acc": 0.5, "lr": 1e-3})
    text = progress.rows_json()
    back = saved_rows(text)
    assert back[0]["train/loss"] == 0.1 + 0.2 and math.isnan(back[0]["val/acc"])
    assert back[1]["train/loss"] == 1 / 3 and len(back) == 2
    assert saved_rows(rows) == rows
    with pytest.raises(CheckpointError, match=r"checkpoints/last\.pt: unreadable metrics rows"):
        saved_rows(text[:-5])
    with pytest.raises(CheckpointError, match="not a list of rows"):
        saved_rows("[1, 2]")
