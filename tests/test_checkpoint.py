"""Checkpoints round-trip under weights_only=True, and hostile or broken files are refused."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from conftest import RunsCodeWhenUnpickled

from lstm_cli.common.errors import CheckpointError
from lstm_cli.runs.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint


def payload() -> dict:
    return {
        "model_spec": {"input_size": 1},
        "model_state": {"weight": torch.randn(3, 2)},
        "config": {"trainer": {"seed": 0}, "optimizer": {"betas": [0.9, 0.999]}},
        "task": "forecasting",
        "preprocessing": {"scaler": {"kind": "standard", "offset": [1.5], "scale": [2.0]}},
        "rng": {"torch": torch.get_rng_state(), "python": (3, (1, 2, 3), None)},
    }


def test_round_trip_keeps_tensors_and_plain_data(tmp_path):
    original = payload()
    save_checkpoint(original, tmp_path / "ck.pt")
    loaded = load_checkpoint(tmp_path / "ck.pt")
    torch.testing.assert_close(loaded["model_state"]["weight"], original["model_state"]["weight"])
    assert loaded["preprocessing"] == original["preprocessing"]
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["rng"]["python"] == (3, (1, 2, 3), None)


def test_saving_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(payload(), path)
    save_checkpoint({**payload(), "task": "classification"}, path)
    assert load_checkpoint(path)["task"] == "classification"
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(payload(), path)
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_checkpoint({**payload(), "bad": lambda: None}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_a_checkpoint_whose_pickle_runs_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({**payload(), "format_version": 1, "extra": RunsCodeWhenUnpickled(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "random"])
def test_damaged_files_get_one_clear_error(tmp_path, damage):
    path = tmp_path / "ck.pt"
    save_checkpoint(payload(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_a_newer_format_is_refused_with_the_versions(tmp_path):
    path = tmp_path / "ck.pt"
    torch.save({**payload(), "format_version": FORMAT_VERSION + 1}, path)
    with pytest.raises(CheckpointError, match=f"format {FORMAT_VERSION + 1} is newer"):
        load_checkpoint(path)


def test_a_foreign_file_is_not_an_lstm_train_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not an lstm-train checkpoint"):
        load_checkpoint(path)
