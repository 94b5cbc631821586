"""The one home of failures: the exception types the tool raises on purpose, the exit
codes, and `exit_for`, which every entry point calls to turn an exception into the single
`error: ...` line a person reads and the code a script tests.

The traceback goes to the run's log file only, unless LSTM_TRAIN_USER_FULL_ERROR (the
user's own HYDRA_FULL_ERROR, kept by the dispatcher) asks for it on the terminal.
"""

from __future__ import annotations

import os
import re

EXIT_OK = 0
EXIT_RUNTIME = 1  # data, checkpoint, a failed sweep job, anything unexpected in a job
EXIT_USAGE = 2  # the command line or the config
EXIT_HANGUP = 129  # SIGHUP (the terminal or ssh session closed): 128 + 1
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (`| head`): 128 + SIGPIPE, silently
EXIT_TERMINATED = 143  # SIGTERM (a batch scheduler's notice): 128 + 15

USER_FULL_ERROR_ENV = "LSTM_TRAIN_USER_FULL_ERROR"


class LstmCliError(Exception):
    """Base of the tool's expected errors; `exit_code` is what the process returns."""

    exit_code = EXIT_RUNTIME


class ConfigError(LstmCliError):
    """A config key, value or command-line argument that cannot be used (exit 2)."""

    exit_code = EXIT_USAGE


class DataError(LstmCliError):
    """An input file or dataset that cannot be read or does not fit (exit 1)."""


class CheckpointError(LstmCliError):
    """A checkpoint that is missing, corrupt, unsafe or incompatible (exit 1)."""


class Interrupted(LstmCliError):
    """A stopping signal arrived; the run checkpointed and can be resumed (exit 130/143)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_for(err: BaseException, *, in_job: bool) -> tuple[str, int]:
    """The one line and the exit code of an exception.

    Inside a job (a command's body) an unexpected exception is a runtime failure (1);
    outside one it came from Hydra composing the command line, a usage error (2).
    """
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(err, LstmCliError):
        return str(err), err.exit_code
    if is_system_error(err):  # the system refused: a missing file, a full disk, a size limit
        return describe(err), EXIT_RUNTIME
    if in_job:
        return describe(err), EXIT_RUNTIME
    return one_line(err), EXIT_USAGE


def is_system_error(err: BaseException) -> bool:
    """An OSError the system raised (it has an errno), not one of Hydra's config errors
    that subclass IOError (a missing config option)."""
    return isinstance(err, OSError) and (err.errno is not None or err.filename is not None)


def wants_traceback() -> bool:
    """Whether the user asked for Python's traceback instead of the one line."""
    return os.environ.get(USER_FULL_ERROR_ENV) == "1"


def describe(err: BaseException) -> str:
    """The one-line text of an error: ours as written, a file error by its file."""
    if isinstance(err, LstmCliError):
        return str(err)
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror}"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return f"{type(err).__name__}: {err}"


# Lines of Hydra's reports that describe its internals rather than the user's mistake.
_NOISE = ("full_key:", "object_type=", "reference_type=", "To append", "See https://", "provider=")


def one_line(err: BaseException | None) -> str:
    """Hydra's and OmegaConf's multi-line messages (and their causes) joined on one line."""
    parts: list[str] = []
    while err is not None:
        text = _compact(str(err))
        if text and text not in parts:
            parts.append(text)
        err = err.__cause__
    return ": ".join(parts) or "invalid command line"


def _compact(message: str) -> str:
    message = re.sub(r"^\w+ raised while resolving interpolation: ", "", message)
    lines = [line.strip().rstrip(".:") for line in message.splitlines() if line.strip()]
    if "Config search path" in lines:
        lines = lines[: lines.index("Config search path")]
    lines = [line for line in lines if not line.startswith(_NOISE)]
    for i, line in enumerate(lines):
        if line.startswith("Available options"):
            return "; ".join([*lines[:i], f"{line.lower()}: {', '.join(lines[i + 1 :])}"])
    return "; ".join(lines)
