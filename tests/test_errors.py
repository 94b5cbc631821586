"""`exit_for`: the one mapping from an exception to its `error:` line and exit code."""

from __future__ import annotations

import pytest

from lstm_cli.common.errors import (
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    EXIT_TERMINATED,
    EXIT_USAGE,
    CheckpointError,
    ConfigError,
    DataError,
    Interrupted,
    exit_for,
)


@pytest.mark.parametrize(
    ("error", "in_job", "line", "code"),
    [
        (ConfigError("trainer.max_epochs=0 is out of range"), True, None, EXIT_USAGE),
        (DataError("s.csv, line 4: not a number"), True, None, EXIT_RUNTIME),
        (CheckpointError("c.pt: refused"), False, None, EXIT_RUNTIME),
        (Interrupted("interrupted by SIGTERM", EXIT_TERMINATED), True, None, EXIT_TERMINATED),
        (KeyboardInterrupt(), True, "interrupted", EXIT_INTERRUPTED),
        (FileNotFoundError(2, "No such file or directory", "x.csv"), True, "x.csv: No such", 1),
        (ValueError("boom"), True, "ValueError: boom", EXIT_RUNTIME),  # a bug inside a job
        (ValueError("Could not override 'a.b'.\nfull_key: a.b"), False, "Could not override", 2),
    ],
)
def test_every_exception_gets_one_line_and_its_exit_code(error, in_job, line, code):
    message, exit_code = exit_for(error, in_job=in_job)
    assert exit_code == code
    assert "\n" not in message and "full_key" not in message
    assert message.startswith(line or str(error))
