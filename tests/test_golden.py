"""Golden losses: a change that alters what the network learns fails here, not in a user's run.

The end-to-end tests check keys and ranges, which a slower or broken optimizer still
passes. This one pins the exact per-epoch train and validation losses of a small run (seed
0, one thread, the embedded airline data, model=tiny, 3 epochs), to the 6 significant
digits metrics.csv holds, with room for floating-point reordering only. If a change is
meant to alter learning, rerun the command in GOLDEN_RUN and update GOLDEN, saying why.
"""

from __future__ import annotations

import csv

import pytest
from conftest import run_in_process

GOLDEN_RUN = ("train", "model=tiny", "trainer.max_epochs=3", "trainer.num_threads=1")
# epoch -> (train/loss, val/loss), from metrics.csv of GOLDEN_RUN on 2026-11-30, torch 2.13,
# after the airline preset became [log, seasonal_diff] and a forecaster's head began at zero
GOLDEN = {1: (0.093011, 0.0171506), 2: (0.0908542, 0.0160664), 3: (0.0894957, 0.0147859)}
REORDERING = 2e-5  # relative; a 1% change of the learning rate moves epoch 1 by 5e-4


def losses(tmp_path, *overrides: str) -> dict[int, tuple[float, float]]:
    result = run_in_process(*GOLDEN_RUN, "trainer.seed=0", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with (tmp_path / "outputs/train/latest/metrics.csv").open() as stream:
        return {
            int(row["epoch"]): (float(row["train/loss"]), float(row["val/loss"]))
            for row in csv.DictReader(stream)
        }


def matches_golden(measured: dict[int, tuple[float, float]]) -> bool:
    return measured.keys() == GOLDEN.keys() and all(
        measured[epoch] == pytest.approx(GOLDEN[epoch], rel=REORDERING) for epoch in GOLDEN
    )


def test_the_golden_run_learns_exactly_as_before(tmp_path):
    measured = losses(tmp_path)
    assert matches_golden(measured), f"losses changed: {measured} (golden: {GOLDEN})"


def test_a_silently_changed_learning_rate_breaks_the_golden_losses(tmp_path):
    """The golden test can fail: 1% more learning rate is already far outside its tolerance."""
    assert not matches_golden(losses(tmp_path, "optimizer.lr=0.00101"))
