"""Shared helpers: run the installed `lstm-train` script in a subprocess, as a user would."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lstm_cli.config.checks import validate_train_config
from lstm_cli.config.schema import ModelConfig
from lstm_cli.config.validate import composed

SCRIPT = Path(sys.executable).with_name("lstm-train")
ANSI_ESCAPE = "\x1b["


def pytest_configure() -> None:
    """One torch thread in each test worker as in the runs it starts (see `cli_env`)."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first: the workers (`-n auto`) then end together on short ones
    instead of one waiting while the other finishes a kill-and-resume test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI run: no HYDRA_ or LSTM_TRAIN_ settings of the caller, and
    one torch thread (OMP_NUM_THREADS=1), since `-n auto` runs a test worker on every core:
    two runs each taking both cores of a 2-core machine took 2.3x the wall time of two
    one-thread runs (31.9 s against 13.8 s, two 4-epoch sine runs at once)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA_", "LSTM_TRAIN_"))}
    env["COLUMNS"] = "200"
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def budgeted(*args: str) -> list[str]:
    """`lstm-train ARGS` as the tests run it. A training (no `-m`, `--cfg` or `--help`) that
    sets no `plots` draws no curves.png (`plots=false`: about 1 s of matplotlib a run), and a new
    one that sets no `trainer.refit` trains without the refit (`trainer.refit=false`), which
    would double its time. The pictures and the refit have tests of their own that set
    them, and the README's quick start runs both in CI; a resume keeps the refit it was
    started with; a sweep's job folders are named by its overrides, so it is left as is."""
    if args[:1] != ("train",) or any(a.startswith("-") for a in args):
        return [str(SCRIPT), *args]
    added = [] if any(a.startswith("plots=") for a in args) else ["plots=false"]
    if not any(a.startswith(("trainer.refit=", "resume=")) for a in args):
        added.append("trainer.refit=false")
    return [str(SCRIPT), *args, *added]


def run_cli(
    *args: str, cwd: Path, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `lstm-train ARGS` (`budgeted`) in `cwd`; stdout and stderr are pipes (not a
    terminal)."""
    return subprocess.run(
        budgeted(*args),
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_process(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lstm-train ARGS` (`budgeted`) called in this process: the same `main()` without
    the interpreter start and the imports, which take about 6 of the 7-8 s of a short
    training run in a subprocess (0.8-1.1 s in process). For tests whose promise is the
    message and the exit code, and for the runs a test only starts from (the training
    before the `evaluate` under test, the uninterrupted run a resumed one is compared
    with). The process-wide state a run sets (environment, argv, argparse's error hook,
    the run stamp, the root logger's handlers) is put back."""
    import argparse
    import contextlib
    import io
    import logging

    from lstm_cli.cli.main import main
    from lstm_cli.common.paths import run_stamp

    root = logging.getLogger()
    saved = (dict(os.environ), list(sys.argv), argparse.ArgumentParser.error, Path.cwd())
    saved_logging = (list(root.handlers), root.level)
    os.environ.clear()
    os.environ.update(cli_env())
    out, err, code = io.StringIO(), io.StringIO(), 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(budgeted(*args)[1:])
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    finally:
        environ, sys.argv, argparse.ArgumentParser.error, where = saved
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(where)
        run_stamp.cache_clear()
        handlers, level = saved_logging
        for handler in set(root.handlers) - set(handlers):
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`cli("train", "a=b")` runs in a fresh directory (tmp_path) and returns the result."""
    return lambda *args, **env: run_cli(*args, cwd=tmp_path, **env)


@pytest.fixture
def train(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`train("a=b")`: `lstm-train train a=b` in process (`run_in_process`), in tmp_path."""
    return lambda *args: run_in_process("train", *args, cwd=tmp_path)


@pytest.fixture
def in_process(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`in_process("evaluate", "a=b")`: any command in process (`run_in_process`), in
    tmp_path: for what a command computes, where `cli` is for what a user's shell sees."""
    return lambda *args: run_in_process(*args, cwd=tmp_path)


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """One `error:` line naming the culprit, the expected exit code, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.stderr + result.stdout


class RunsCodeWhenUnpickled:
    """Unpickling this runs `touch <marker>`: what a crafted checkpoint would do."""

    def __init__(self, marker: Path | str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def trained_airline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short airline training run (in process) shared by the tests that only read it."""
    workdir = tmp_path_factory.mktemp("airline")
    result = run_in_process("train", "trainer.max_epochs=3", "plots=true", cwd=workdir)
    assert result.returncode == 0, result.stderr
    return workdir


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_width: int = 400, min_height: int = 300) -> None:
    """A real PNG picture of a sensible size (not an empty or truncated file)."""
    body = path.read_bytes()
    assert body.startswith(PNG_SIGNATURE), path
    assert body[12:16] == b"IHDR" and body.endswith(b"IEND\xaeB`\x82"), path
    width, height = struct.unpack(">II", body[16:24])
    assert width >= min_width and height >= min_height, (path, width, height)
    assert len(body) > 5_000, (path, len(body))  # axes, lines and text: a blank one is ~2 KB


def model_config(**values: object) -> ModelConfig:
    """The model keys of a default `lstm-train train`, with `values` replacing some."""
    return dataclasses.replace(_default_model(), **values)


@functools.cache
def _default_model() -> ModelConfig:
    return validate_train_config(composed("train"))[0].model
