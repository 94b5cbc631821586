"""trainer.refit: once validation has chosen how long to train, a fresh network learns from
the training and validation data together for that long, and its weights are the run's
(`true`), or it answers together with the validated network (`average`)."""

from __future__ import annotations

import pytest
import torch
from conftest import read_json, run_in_process

from lstm_cli.data.joined import JoinedSplit
from lstm_cli.data.splits import Batch, RaggedSplit, SequenceSplit
from lstm_cli.model.averaged import AveragedNetwork, build_network
from lstm_cli.model.network import LSTMNetwork, ModelSpec
from lstm_cli.runs.inference import load_trained

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
    result = run_in_process("train", *ITALY, cwd=refit)
    assert result.returncode == 0, result.stderr
    assert "refit: a new network learns from the 67 training and validation sequences" in (
        result.stdout
    )
    assert run_in_process("train", *ITALY, "trainer.refit=false", cwd=validated).returncode == 0
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
    evaluated = run_in_process("evaluate", f"run_dir={run}", cwd=refit)
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


def test_refit_average_answers_with_the_mean_of_the_validated_and_refit_networks(tmp_path):
    result = run_in_process("train", *ITALY, "trainer.refit=average", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "refit alone" in result.stdout and "before refit" in result.stdout
    run = (tmp_path / "outputs/train/latest").resolve()
    checkpoints = run / "checkpoints"
    best = torch.load(checkpoints / "best.pt", weights_only=True)
    assert best["model_spec"]["members"] == 2
    assert best["model_spec"]["averages"] == "probabilities"
    # best.pt holds both networks: the validated one first, then the refit (last.pt's)
    for index, source in enumerate(("validated.pt", "last.pt")):
        member = {
            name.removeprefix(f"members.{index}."): tensor
            for name, tensor in best["model_state"].items()
            if name.startswith(f"members.{index}.")
        }
        assert_same_weights(member, weights(checkpoints / source))
    # its probabilities are the mean of its members'
    averaged = load_trained(checkpoints / "best.pt", torch.device("cpu")).model
    validated = load_trained(checkpoints / "validated.pt", torch.device("cpu")).model
    refitted = load_trained(checkpoints / "last.pt", torch.device("cpu")).model
    x, lengths = torch.randn(5, 24, 1), torch.full((5,), 24)
    with torch.inference_mode():
        mean = (validated(x, lengths).softmax(-1) + refitted(x, lengths).softmax(-1)) / 2
        torch.testing.assert_close(averaged(x, lengths).softmax(-1), mean)
    # results.json scores the pair and each network alone; evaluate scores the pair alike
    results = read_json(run / "results.json")
    refit = results["refit"]
    assert refit["validated_test"].keys() == refit["refit_test"].keys() == results["test"].keys()
    assert results["parameters"] == 2 * sum(p.numel() for p in validated.parameters())
    evaluated = run_in_process("evaluate", f"run_dir={run}", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = read_json(next(tmp_path.glob("outputs/evaluate/*/metrics.json")))
    assert metrics["metrics"]["test/acc"] == results["test"]["test/acc"]
    assert metrics["metrics"]["test/loss"] == pytest.approx(results["test"]["test/loss"], rel=1e-6)


def test_averaged_outputs_are_means_and_averaged_probabilities_are_log_means():
    torch.manual_seed(0)
    spec = ModelSpec(2, 3, False, False, 8, 1, False, 0.0, 4)
    members = [LSTMNetwork(spec).eval() for _ in range(3)]
    x, lengths = torch.randn(4, 6, 2), torch.tensor([6, 3, 1, 5])
    with torch.inference_mode():
        outputs = torch.stack([member(x, lengths) for member in members])
        regression = AveragedNetwork.of(members, classifies=False)
        torch.testing.assert_close(regression(x, lengths), outputs.mean(0))
        classifier = AveragedNetwork.of(members, classifies=True)
        probabilities = classifier(x, lengths).exp()
        torch.testing.assert_close(probabilities, outputs.softmax(-1).mean(0))
    assert classifier.spec.members == 3 and classifier.spec.averages == "probabilities"
    rebuilt = build_network(classifier.spec)
    rebuilt.load_state_dict(classifier.state_dict())
    assert isinstance(rebuilt, AveragedNetwork) and len(rebuilt.members) == 3
