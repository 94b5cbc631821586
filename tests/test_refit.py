"""trainer.refit: once validation has chosen how long to train, a fresh network learns from
the training and validation data together for that long, and its weights are the run's."""

from __future__ import annotations

import torch
from conftest import read_json, run_cli

from lstm_cli.data.joined import JoinedSplit
from lstm_cli.data.splits import Batch, RaggedSplit, SequenceSplit

ITALY = (
    "dataset=italy_power",
    "model=tiny",
    "trainer.max_epochs=4",
    "trainer.min_steps=0",
    "trainer.refit=true",
    "trainer.num_threads=1",
)


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model_state"]


def assert_same_weights(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    assert ours.keys() == theirs.keys()
    for name, tensor in theirs.items():
        assert torch.equal(ours[name], tensor), name


def test_the_refit_learns_from_train_and_val_and_becomes_the_runs_model(tmp_path):
    refit, validated = tmp_path / "refit", tmp_path / "validated"
    refit.mkdir()
    validated.mkdir()
    result = run_cli("train", *ITALY, cwd=refit)
    assert result.returncode == 0, result.stderr
    assert "refit: a new network learns from the 67 training and validation sequences" in (
        result.stdout
    )
    assert run_cli("train", *ITALY, "trainer.refit=false", cwd=validated).returncode == 0
    run = (refit / "outputs/train/latest").resolve()
    results = read_json(run / "results.json")
    plain = read_json(validated / "outputs/train/latest/results.json")
    assert plain["refit"] is None
    refit_info = results["refit"]
    assert refit_info["sequences"] == 67  # 53 training + 14 validation sequences
    assert refit_info["steps"] >= 4 * results["best_epoch"]  # 4 batches of 16 an epoch before
    assert refit_info["steps"] == refit_info["epochs"] * 5  # 5 batches of 16 an epoch now
    # the same validated epochs as without refit: their best is kept, and scored alike
    assert results["best_epoch"] == plain["best_epoch"]
    assert results["best_value"] == plain["best_value"]
    assert refit_info["validated_test"] == plain["test"]
    checkpoints = run / "checkpoints"
    assert_same_weights(
        weights(checkpoints / "validated.pt"),
        weights(validated / "outputs/train/latest/checkpoints/best.pt"),
    )
    # best.pt and last.pt are the refit's: evaluate scores what results.json reports
    assert_same_weights(weights(checkpoints / "best.pt"), weights(checkpoints / "last.pt"))
    assert results["test"] != plain["test"]
    evaluated = run_cli("evaluate", f"run_dir={run}", cwd=refit)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = read_json(next(refit.glob("outputs/evaluate/*/metrics.json")))
    assert metrics["metrics"]["test/acc"] == results["test"]["test/acc"]


def test_a_joined_split_takes_each_index_from_its_own_part_padded_to_the_longest():
    first = SequenceSplit(
        torch.arange(12, dtype=torch.float32).reshape(2, 3, 2) + 1,
        torch.tensor([3, 2]),
        torch.tensor([0, 1]),
    )
    second = RaggedSplit.of(
        torch.arange(20, dtype=torch.float32).reshape(10, 2) + 100,
        torch.tensor([5, 5]),
        torch.tensor([2, 3]),
        torch.arange(2),
    )
    joined = JoinedSplit([first, second])
    assert len(joined) == 4
    assert joined.sequence_lengths().tolist() == [3, 2, 5, 5]
    batch: Batch = joined.take(torch.tensor([3, 0]))
    assert batch.lengths.tolist() == [3, 5] and batch.y.tolist() == [0, 3]
    assert batch.x.shape == (2, 5, 2)
    assert torch.equal(batch.x[0, :3], first.x[0]) and not batch.x[0, 3:].any()
    assert torch.equal(batch.x[1], second.take(torch.tensor([1])).x[0])
