"""The lines a run ends with when it stops before its end: a signal, or a bad number."""

from __future__ import annotations

from pathlib import Path

from lstm_cli.common.errors import Interrupted, LstmCliError
from lstm_cli.training.signals import StopRequest


def interrupted(stop: StopRequest, run_dir: Path, where: str, done: int) -> Interrupted:
    """Stopped by a signal in `where` (e.g. "epoch 3") after `done` of its batches."""
    if not (run_dir / "checkpoints" / "last.pt").exists():
        return Interrupted(
            f"interrupted by {stop.cause} before the first checkpoint; nothing to"
            " resume: start the run again",
            stop.exit_code,
        )
    return Interrupted(
        f"interrupted by {stop.cause} in {where} after {done} batches;"
        f" checkpoint saved; continue with: lstm-train train resume={run_dir}",
        stop.exit_code,
    )


def nonfinite(run_dir: Path, where: str, batch: int, batches: int) -> LstmCliError:
    """A NaN or infinite loss or gradient halted `where` at its `batch`-th batch."""
    last = run_dir / "checkpoints" / "last.pt"
    kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
    return LstmCliError(
        f"non-finite loss or gradient at {where}, step {batch} of {batches};"
        f" {kept} (trainer.on_nonfinite=skip_batch skips such batches)"
    )
