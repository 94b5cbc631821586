"""The few exception types the tool raises on purpose, each with its exit code.

Every expected failure is one of these; `lstm_cli.cli.main` turns it into a single
`error: ...` line and the exit code, and the traceback goes to the run's log file only.
"""

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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


def describe(err: BaseException) -> str:
    """The one-line text of an error: ours as written, a file error by its file."""
    if isinstance(err, LstmCliError):
        return str(err)
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror}"
    return f"{type(err).__name__}: {err}"
