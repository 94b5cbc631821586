"""Every run knows its baseline: the trivial answers, the skill against them, the warning
when a run does not beat them; and honest data handling (split seed, feature columns)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
from conftest import read_json

from lstm_cli.config.validate import option_config
from lstm_cli.data import load_dataset
from lstm_cli.data.forecast import resolve_auto
from lstm_cli.data.splits import PreparedData, SequenceSplit
from lstm_cli.data.timeindex import TimeIndex
from lstm_cli.runs.inference import with_split_seed
from lstm_cli.training.baselines import compare, warnings_for
from lstm_cli.training.losses import build_loss


def labelled(train_labels: list[int], test_labels: list[int]) -> PreparedData:
    def split(labels: list[int]) -> SequenceSplit:
        count = len(labels)
        return SequenceSplit(
            torch.zeros(count, 4, 1), torch.full((count,), 4), torch.tensor(labels)
        )

    return PreparedData(
        task="classification",
        train=split(train_labels),
        val=split(test_labels),
        test=split(test_labels),
        input_size=1,
        output_size=2,
        token_input=False,
        preprocessing={},
    )


def test_the_majority_class_is_the_classification_baseline():
    data = labelled([0, 1, 1, 1], [1, 1, 1, 0])
    loss_fn = build_loss(option_config("loss", "cross_entropy"), "classification")
    comparison = compare({"acc": 0.875, "f1": 0.8}, data, data.test, loss_fn, 2)
    scores = comparison.baselines["majority class"]
    assert scores["acc"] == pytest.approx(0.75)
    assert scores["loss"] == pytest.approx(-(3 * math.log(0.75) + math.log(0.25)) / 4, rel=1e-5)
    assert comparison.skill == pytest.approx(0.5)  # half the majority class's errors remain
    assert warnings_for(comparison, "test", "classification", best_epoch=4, epochs=9) == []


def test_a_run_no_better_than_its_baseline_or_best_at_epoch_one_is_warned():
    data = labelled([0, 1, 1, 1], [1, 1, 1, 0])
    loss_fn = build_loss(option_config("loss", "cross_entropy"), "classification")
    comparison = compare({"acc": 0.75, "f1": 0.4}, data, data.test, loss_fn, 4)
    no_skill, first_epoch = warnings_for(comparison, "test", "classification", 1, 20)
    assert comparison.skill == 0.0
    assert "no better than the baseline: test/acc 0.75 vs 0.75 for 'majority class'" in no_skill
    assert "model.bidirectional=true" in no_skill
    assert "the best epoch was the first" in first_epoch
    assert warnings_for(comparison, "test", "classification", 1, 1)[1:] == []  # one epoch


def sine_comparison(noise: float, model_mae: float = 0.1):
    cfg = option_config(
        "dataset",
        "sine",
        length=400,
        period=20.0,
        noise=noise,
        window=30,
        horizon=5,
        val_size=50,
        test_size=50,
    )
    data = load_dataset(cfg)
    loss_fn = build_loss(option_config("loss", "mse"), "forecasting")
    model_scores = {"rmse": model_mae, "mae": model_mae, "mape": 0.1, "loss": 0.1}
    return compare(model_scores, data, data.test, loss_fn, 64)


def test_seasonal_naive_is_exact_on_a_periodic_series():
    comparison = sine_comparison(noise=0.0)
    assert comparison.baselines["seasonal naive (20)"]["mae"] < 1e-5
    assert comparison.baselines["last value"]["mae"] > 0.1
    assert comparison.best == "seasonal naive (20)" and comparison.skill < 0


def test_mase_scales_errors_by_the_in_sample_seasonal_naive_error(train):
    comparison = sine_comparison(noise=0.1, model_mae=0.05)
    seasonal = comparison.baselines["seasonal naive (20)"]
    assert seasonal["mase"] == pytest.approx(1.0, abs=0.15)  # the same noise in and out of sample
    assert comparison.baselines["last value"]["mase"] > 2 * seasonal["mase"]
    assert comparison.model["mase"] == pytest.approx(0.05 / seasonal["mae"] * seasonal["mase"])
    assert comparison.skill > 0


def write_sequences(path: Path, rows: list[tuple[int, float, str]], length: int = 8) -> None:
    """Long format with a step column and two features; `rows`: (id, level, label)."""
    lines = ["series_id,step,a,b,label"]
    generator = random.Random(0)
    for sequence_id, level, label in rows:
        for step in range(length):
            lines.append(
                f"{sequence_id},{step},{level + generator.gauss(0, 0.3):.4f},"
                f"{generator.gauss(0, 1):.4f},{label}"
            )
    path.write_text("\n".join(lines) + "\n")


def train_on(train, path: Path):
    return train(
        "dataset=csv_sequences",
        f"dataset.path={path}",
        "model=tiny",
        "model.conv_layers=0",
        "trainer.max_epochs=25",
        "trainer.min_steps=0",
    )


def test_results_and_console_report_the_baseline_and_a_learnable_set_is_not_warned(tmp_path, train):
    path = tmp_path / "signs.csv"
    write_sequences(
        path, [(i, 1.0 if i % 2 else -1.0, "up" if i % 2 else "down") for i in range(60)]
    )
    result = train_on(train, path)
    assert result.returncode == 0, result.stderr
    results = read_json(tmp_path / "outputs/train/latest/results.json")
    assert results["test"]["test/acc"] > 0.9
    assert set(results["baselines"]) == {"majority class"}
    assert results["skill"]["vs"] == "majority class" and results["skill"]["value"] > 0.5
    assert results["warnings"] == []
    assert "majority class test/acc=" in result.stdout and "warning" not in result.stdout
    log = (tmp_path / "outputs/train/latest/train.log").read_text()
    assert "features=a, b " in log  # by name, never the step or id column


def test_a_set_the_model_cannot_beat_its_baseline_on_is_warned(cli, tmp_path, train):
    path = tmp_path / "constant.csv"
    lines = ["series_id,step,a,label"]
    for sequence_id in range(40):
        label = "rare" if sequence_id % 4 == 0 else "common"
        lines += [f"{sequence_id},{step},1.0,{label}" for step in range(6)]
    path.write_text("\n".join(lines) + "\n")
    result = train_on(train, path)
    assert result.returncode == 0, result.stderr
    results = read_json(tmp_path / "outputs/train/latest/results.json")
    assert results["skill"]["value"] <= 0
    assert results["warnings"] and results["warnings"][0].startswith("no better than the baseline")
    warned = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert warned and "majority class" in warned[0] and "try " in warned[0]
    evaluated = cli("evaluate", "run_dir=outputs/train/latest")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "warning: no better than the baseline" in evaluated.stdout
    metrics = read_json(next((tmp_path / "outputs/evaluate").glob("2*/metrics.json")))
    assert metrics["skill"]["value"] == pytest.approx(results["skill"]["value"])


def test_the_validation_split_follows_split_seed_not_the_training_seed(tmp_path):
    path = tmp_path / "seq.csv"
    write_sequences(path, [(i, float(i % 3), str(i % 3)) for i in range(30)])

    def validation(split_seed: int) -> torch.Tensor:
        cfg = option_config("dataset", "csv_sequences", path=str(path), split_seed=split_seed)
        return load_dataset(cfg).val.steps

    torch.testing.assert_close(validation(0), validation(0))
    assert not torch.equal(validation(0), validation(1))


def test_step_and_id_columns_never_become_features(tmp_path):
    path = tmp_path / "seq.csv"
    write_sequences(path, [(i, float(i % 2), str(i % 2)) for i in range(10)])
    data = load_dataset(option_config("dataset", "csv_sequences", path=str(path)))
    assert data.preprocessing["features"] == ["a", "b"]
    assert data.preprocessing["step_column"] == "step"


def test_a_checkpoint_from_before_split_seed_keeps_the_split_it_was_trained_on():
    saved = {"dataset": {"kind": "csv_sequences", "path": "x.csv"}, "trainer": {"seed": 7}}
    assert with_split_seed(saved)["dataset"]["split_seed"] == 7
    current = {"dataset": {"kind": "csv_sequences", "split_seed": 2}, "trainer": {"seed": 7}}
    assert with_split_seed(current) == current


@pytest.mark.parametrize(
    ("stamps", "season"),
    [
        (["1949-01", "1949-02", "1949-03"], 12),
        (["2020-01-01", "2020-04-01", "2020-07-01"], 4),
        (["2024-03-01", "2024-03-02", "2024-03-03"], 7),
        (["2024-03-01T00:00", "2024-03-01T01:00", "2024-03-01T02:00"], 24),
        (["1972", "1973", "1974"], 1),
    ],
)
def test_the_season_follows_the_step_between_time_stamps(stamps, season):
    index = TimeIndex.parse(stamps, "t", str)
    assert index.season() == season
    assert TimeIndex.parse(index.spelled(), "t", str).values == index.values  # as it reads


def test_transform_auto_reads_positive_series_in_logs_and_others_as_changes():
    positive, mixed = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [-2.0]])
    assert resolve_auto(["auto"], positive, season=1, window=24) == ["log", "diff"]
    assert resolve_auto(["auto"], mixed, season=1, window=24) == ["diff"]
    assert resolve_auto(["log"], positive, season=12, window=24) == ["log"]


def test_transform_auto_differences_by_season_when_the_window_covers_one():
    positive, mixed = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [-2.0]])
    assert resolve_auto(["auto"], positive, season=12, window=24) == ["log", "seasonal_diff"]
    assert resolve_auto(["auto"], mixed, season=7, window=24) == ["seasonal_diff"]
    assert resolve_auto(["auto"], positive, season=24, window=24) == ["log", "diff"]
