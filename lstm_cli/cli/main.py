"""The `lstm-train` console script: picks the subcommand and hands the rest to its Hydra app.

`lstm-train train a=b` runs the Hydra app of `train` as if it were `train a=b` alone, so
overrides, `-m`, `--cfg job`, `--help` and launchers all behave as Hydra documents them.
Nothing here imports torch, so `--help` stays fast. Hydra's own composition errors (an
unknown key, a missing option) come back as exceptions and leave as one `error:` line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NoReturn

from lstm_cli import __version__
from lstm_cli.common.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_RUNTIME,
    EXIT_USAGE,
    USER_FULL_ERROR_ENV,
    exit_for,
    is_system_error,
    one_line,
    wants_traceback,
)

SUBCOMMANDS = {
    "train": "train an LSTM on a dataset config; writes a run directory with checkpoints",
    "evaluate": "score a trained run (run_dir=DIR or checkpoint=FILE) on a data split",
    "predict": "predict with a trained run on a new input file (input=FILE [output=FILE])",
    "export": "write a trained run's model as ONNX or TorchScript, checked against PyTorch",
    "report": "a table of the runs under a sweep or outputs directory (report DIR)",
}

# Hydra plugins that the `sweep` extra installs.
SWEEP_PLUGINS = {"joblib", "submitit_local", "submitit_slurm", "optuna"}

USAGE = """usage: lstm-train <command> [overrides...] [hydra flags]

Train, evaluate and serve LSTM sequence models from Hydra YAML configs.

commands:
{commands}

Each command takes Hydra overrides (key=value, group=option), -m for sweeps, --cfg job to
print the composed config, and --help for its own options and examples. --version prints
the version.

examples:
  lstm-train train                                  # airline passengers, embedded
  lstm-train train model=large optimizer=sgd trainer.max_epochs=50
  lstm-train train -m optimizer=adam,sgd model=small,medium
  lstm-train evaluate run_dir=outputs/train/latest
  lstm-train predict run_dir=outputs/train/latest input=my_series.csv
  lstm-train export run_dir=outputs/train/latest format=onnx
  lstm-train report outputs/multirun                # compare the runs of your sweeps
  eval "$(lstm-train -sc install=bash)"             # shell completion
"""


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [f"  {name.ljust(width)}  {text}" for name, text in SUBCOMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; exits with the tool's exit code."""
    try:
        _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        sys.exit(_reader_gone())


def _reader_gone() -> int:
    """stdout's reader has gone (`lstm-train train --help | head -3`): stop quietly, as
    Unix tools do; stdout now points at /dev/null, so Python's flush at exit stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _dispatch(args: list[str]) -> None:
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        sys.exit(0)
    if args[0] in ("-V", "--version"):
        print(f"lstm-train {__version__}")
        sys.exit(0)
    if args[0] in ("-sc", "--shell-completion"):
        sys.exit(_shell_completion(args))
    command = args[0]
    if command not in SUBCOMMANDS:
        print(
            f"error: unknown command {command!r}; valid commands: {', '.join(SUBCOMMANDS)}",
            file=sys.stderr,
        )
        sys.exit(EXIT_USAGE)
    rest = args[1:]
    if command == "report" and rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"dir={rest[0]}", *rest[1:]]  # `report DIR` is short for `report dir=DIR`
    sys.exit(run_command(command, rest))


def run_command(command: str, args: list[str]) -> int:
    """Run one subcommand's Hydra app with `args` as its command line."""
    from lstm_cli.cli import apps, sweeps
    from lstm_cli.cli.help import is_plain_help, render_help
    from lstm_cli.common.paths import run_stamp

    _route_hydra_errors_here()
    _one_line_flag_errors(command)
    # The run's name is fixed here, before Hydra starts: sweep workers inherit it, and under
    # torchrun every rank agrees on rank 0's at this one point (Hydra's resolvers would ask
    # for it in whatever order each rank happens to).
    run_stamp()
    sys.argv = [sys.argv[0], *args]
    try:
        if is_plain_help(args):
            print(render_help(command, args))
        else:
            apps.APPS[command]()
    except (KeyboardInterrupt, Exception) as err:
        if isinstance(err, BrokenPipeError):
            return _reader_gone()
        if wants_traceback() and not isinstance(err, KeyboardInterrupt):
            raise
        if sweeps.failed_jobs():  # the sweeper gave up because its jobs failed: say which
            return _report_failed_jobs(sweeps.failed_jobs())
        message, code = exit_for(err, in_job=False)
        message = _unknown_key(command, message, args)
        hint = _suggestion(command, err) if code == EXIT_USAGE else ""
        if is_system_error(err) and not err.filename:  # Hydra writing .hydra/ or the log
            message = f"{_run_dir_being_made()}: could not write the run's files ({message})"
        print(f"error: {message}{hint}", file=sys.stderr)
        return code
    failed = sweeps.failed_jobs()
    return _report_failed_jobs(failed) if failed else 0


def _unknown_key(command: str, message: str, args: list[str]) -> str:
    """Hydra's `Could not override 'foo': Key 'foo' is not in struct` in our words: the
    unknown key, the nearest valid one, and the keys valid at that level (for a dataset
    key, those of the dataset kind the command line chose)."""
    from lstm_cli.config.schema import COMMAND_SCHEMAS
    from lstm_cli.config.validate import unknown_key

    typo = re.match(r"Could not override '([^']+)': Key '[^']+' is not in struct", message)
    if not typo:
        return message
    chosen = _chosen_options(command, args, typo.group(1))
    nearest, valid = unknown_key(COMMAND_SCHEMAS[command], typo.group(1), chosen)
    hint = f" (did you mean {nearest}?)" if nearest else ""
    listed = f"; valid keys there: {', '.join(valid)}" if valid else ""
    return f"unknown key {typo.group(1)}{hint}{listed}"


def _chosen_options(command: str, args: list[str], unknown: str) -> dict[str, str]:
    """The option each keyed group (dataset kind, optimizer name...) takes in the config
    the command line composes without its unknown key; {} if even that does not compose."""
    from lstm_cli.config.schema import VARIANT_GROUPS
    from lstm_cli.config.validate import composed

    rest = [a for a in args if not a.startswith("-") and a.lstrip("+~").split("=")[0] != unknown]
    try:
        values = composed(command, rest)
    except Exception:  # another mistake on the line: the lists of every option then
        return {}
    return {
        group: values[group].get(selector)
        for group, (selector, _) in VARIANT_GROUPS.items()
        if isinstance(values.get(group), dict)
    }


def _suggestion(command: str, err: BaseException) -> str:
    """How to quote a value that Hydra's override grammar cannot read (`~`, unicode)."""
    unreadable = re.search(r"LexerNoViableAltException: ([\w.]+)=([^;]*);", one_line(err))
    if unreadable:
        key, value = unreadable.groups()
        return f" (quote the value: '{key}=\"{value}\"')"
    plugin = re.search(r"Could not find 'hydra/(launcher|sweeper)/(\w+)'", str(err))
    if plugin and plugin.group(2) in SWEEP_PLUGINS:
        return f" (the {plugin.group(2)} {plugin.group(1)} needs: pip install 'lstm-train[sweep]')"
    return ""


def _run_dir_being_made() -> str:
    """The directory Hydra was setting up when a write failed, if it got that far."""
    from lstm_cli.cli.validate_callback import RUN_DIR_BEING_MADE

    return RUN_DIR_BEING_MADE[0] if RUN_DIR_BEING_MADE else "the run directory"


def _report_failed_jobs(jobs: list[str]) -> int:
    print(f"error: {len(jobs)} sweep job(s) failed: {', '.join(jobs)}", file=sys.stderr)
    return EXIT_RUNTIME


def _one_line_flag_errors(command: str) -> None:
    """A bad Hydra flag (`--cfg nope`) gets one line, not argparse's usage block.

    Hydra builds its argparse parser inside `hydra.main`, out of our reach, so the error
    method of argparse is replaced for this process, which only ever runs this command.
    """

    def error(_parser: argparse.ArgumentParser, message: str) -> NoReturn:
        print(f"error: {message} (see lstm-train {command} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    argparse.ArgumentParser.error = error  # type: ignore[method-assign]


def _route_hydra_errors_here() -> None:
    """Make Hydra raise instead of printing multi-line reports, remembering the user's choice.

    Hydra prints composition errors itself unless HYDRA_FULL_ERROR is set; we set it so
    they reach `run_command`, and keep the user's own setting for the traceback decision.
    """
    os.environ.setdefault(USER_FULL_ERROR_ENV, os.environ.get("HYDRA_FULL_ERROR", "0"))
    os.environ["HYDRA_FULL_ERROR"] = "1"


def _shell_completion(args: list[str]) -> int:
    """Shell completion: install/uninstall scripts, and queries routed to the subcommand.

    The installed script asks `lstm-train -sc query=bash` with the typed line in COMP_LINE.
    While the subcommand is still being typed we complete it here; after that the
    subcommand is cut from COMP_LINE (Hydra would read it as a malformed override) and the
    subcommand's app completes its own overrides.
    """
    is_query = any(a.startswith("query=") for a in args[1:])
    if not is_query:
        return run_command("train", args)
    words = os.environ.get("COMP_LINE", "").split(" ")
    typed = words[1:]
    if len(typed) <= 1:
        prefix = typed[0] if typed else ""
        print(" ".join(name for name in SUBCOMMANDS if name.startswith(prefix)))
        return 0
    command = typed[0]
    if command not in SUBCOMMANDS:
        return 0
    os.environ["COMP_LINE"] = " ".join([words[0], *typed[1:]])
    return run_command(command, args)
