"""The trivial answers a model must beat, scored on the same split by the same metrics.

A metric means little alone: 0.5 accuracy is good on ten classes and chance on two, and a
forecast RMSE of 30 passengers may be worse than repeating last month. Each task's trivial
answers, fitted on the training split only:
- classification: always the majority class (its loss from the class frequencies);
- regression: always the mean target;
- forecasting: the last observed value (naive), and the value one season back (seasonal
  naive) when the series has a season; forecasts also get MASE, their mean absolute error
  over that of the in-sample (seasonal) naive forecast of the training part;
- language models: characters drawn by their training frequencies (a unigram model).

`skill` is the share of the best baseline's error that the model removes: 1 - error /
baseline error, with error 1 - accuracy, RMSE, MAE or bits per character by task; 0 is no
better than the baseline, below 0 worse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from lstm_cli.data.batching import batch_order
from lstm_cli.data.splits import PreparedData, SequenceSplit, Split, StreamSplit, WindowSplit
from lstm_cli.training.losses import LossFn
from lstm_cli.training.metrics import MetricAccumulator

Answer = Callable[[Split, Tensor], Tensor]  # (split, sample indices) -> outputs in model units


@dataclass
class Comparison:
    """A model's split metrics set against the trivial answers on that split."""

    model: dict[str, float]  # metric -> value
    baselines: dict[str, dict[str, float]]  # name -> metric -> value
    best: str  # the baseline with the lowest error
    skill: float  # 1 - model error / best baseline error
    error_metric: str  # the metric the skill is computed from

    def to_dict(self, split: str) -> dict:
        return {
            "baselines": {
                name: {f"{split}/{metric}": value for metric, value in scores.items()}
                for name, scores in self.baselines.items()
            },
            "skill": {
                "vs": self.best,
                "metric": f"{split}/{self.error_metric}",
                "value": self.skill,
            },
        }


def compare(
    model_scores: dict[str, float],
    data: PreparedData,
    split: Split,
    loss_fn: LossFn,
    batch_size: int,
) -> Comparison:
    """Score every trivial answer of the task on `split`; add MASE to forecast scores."""
    baselines = {
        name: score_answer(answer, data, split, loss_fn, batch_size)
        for name, answer in trivial_answers(data).items()
    }
    scale = data.preprocessing.get("naive_scale")
    if data.task == "forecasting" and scale:
        for scores in [model_scores, *baselines.values()]:
            scores["mase"] = scores["mae"] / scale
    metric = ERROR_METRIC[data.task]
    best = min(baselines, key=lambda name: _error(baselines[name], metric))
    baseline_error = _error(baselines[best], metric)
    model_error = _error(model_scores, metric)
    skill = 1.0 - model_error / baseline_error if baseline_error > 0 else 0.0
    return Comparison(model_scores, baselines, best, skill, metric)


ERROR_METRIC = {
    "classification": "acc",
    "regression": "rmse",
    "forecasting": "mae",
    "language_model": "bpc",
}


def _error(scores: dict[str, float], metric: str) -> float:
    return 1.0 - scores[metric] if metric == "acc" else scores[metric]


def trivial_answers(data: PreparedData) -> dict[str, Answer]:
    """The task's trivial answers by name, each fitted on the training split (computed on
    the CPU, wherever the data lives)."""
    if data.task == "classification":
        labels = cast(SequenceSplit, data.train).y.cpu().long()
        counts = torch.bincount(labels, minlength=data.output_size).double()
        log_prior = (counts / counts.sum()).clamp_min(1e-12).log().float()
        return {"majority class": _constant(log_prior)}
    if data.task == "regression":
        return {"mean": _constant(cast(SequenceSplit, data.train).y.cpu().float().mean(0))}
    if data.task == "language_model":
        return {"unigram": _unigram(data)}
    answers = {"last value": _seasonal_naive(1)}
    season = data.preprocessing.get("season") or 1
    if season > 1:
        answers[f"seasonal naive ({season})"] = _seasonal_naive(season)
    return answers


def score_answer(
    answer: Answer, data: PreparedData, split: Split, loss_fn: LossFn, batch_size: int
) -> dict[str, float]:
    """The task's metrics of one trivial answer over a split, as `evaluate_split` scores a model."""
    accumulator = MetricAccumulator(
        data.task, data.output_size, torch.device("cpu"), data.to_original
    )
    for index in batch_order(split.sequence_lengths(), batch_size, shuffle=False, bucket=False):
        batch = split.take(index).to(torch.device("cpu"))
        outputs = answer(split, index)
        accumulator.update(
            outputs, batch.y.cpu(), batch.lengths, loss_fn(outputs, batch.y.cpu(), batch.lengths)
        )
    return accumulator.compute()


def _constant(output: Tensor) -> Answer:
    return lambda _split, index: output.expand(len(index), -1).clone()


def _unigram(data: PreparedData) -> Answer:
    """Every step predicts the training text's character frequencies."""
    tokens = cast(WindowSplit | StreamSplit, data.train).targets.cpu().flatten().long()
    counts = torch.bincount(tokens, minlength=data.output_size)
    log_prior = (counts.double() + 1.0).div(counts.sum() + data.output_size).log().float()

    def answer(split: Split, index: Tensor) -> Tensor:
        steps = int(split.sequence_lengths()[index].max())
        return log_prior.expand(len(index), steps, -1).clone()

    return answer


def _seasonal_naive(season: int) -> Answer:
    """Step h ahead repeats the value `season * ceil(h / season)` steps before it (season 1:
    the last observed value), read from the series the windows are cut from, never from
    before that series' first step."""

    def answer(split: Split, index: Tensor) -> Tensor:
        # WindowSplit or a panel's PanelWindowSplit: both say where each window's targets
        # begin and where its series begins
        windows = cast(WindowSplit, split)
        horizon = torch.arange(1, windows.target_length + 1)
        lag = season * torch.ceil(horizon / season).long()
        first_target = windows.first_targets(index).unsqueeze(1)
        source = torch.maximum(
            first_target + horizon - 1 - lag, windows.series_firsts(index).unsqueeze(1)
        )
        return windows.targets[source.cpu()].reshape(len(index), -1).float().cpu()

    return answer


# What to try when a run does not beat its baseline, by task (the README has the longer story).
REMEDIES = {
    "classification": "trainer.min_steps=3000 trainer.max_epochs=2000 (train longer);"
    " recipe=shapes for a small set of shapes; augment.warp=0 augment.mixup=0 if a smooth"
    " set's classes hang on timing; model.bidirectional=true",
    "regression": "trainer.min_steps=2000 (train longer), optimizer.lr=0.003, model=medium",
    "forecasting": "dataset.transform=diff (or [log, diff] for positive series whose swings"
    " grow with the level; seasonal_diff with dataset.season for seasonal ones), a longer"
    " dataset.window",
    "language_model": "model=medium, more epochs (trainer.max_epochs)",
}


def warnings_for(
    comparison: Comparison, split: str, task: str, best_epoch: int = 0, epochs: int = 0
) -> list[str]:
    """One line for each sign that a run did not learn: no better than the best trivial
    answer, or (training) a best epoch that is the first."""
    lines = []
    if comparison.skill <= 0:
        metric = comparison.error_metric
        lines.append(
            f"no better than the baseline: {split}/{metric} {comparison.model[metric]:.4g}"
            f" vs {comparison.baselines[comparison.best][metric]:.4g} for"
            f" '{comparison.best}'; try {REMEDIES[task]}"
        )
    if best_epoch == 1 and epochs > 1:
        lines.append(
            "the best epoch was the first: the model got worse on validation data from"
            " there; try optimizer.lr=0.0003, model.dropout=0.2 or a larger"
            " validation split"
        )
    return lines


def baseline_rows(comparison: Comparison, split: str) -> dict[str, str]:
    """Summary-table rows: each baseline's error metric, and the model's skill."""
    metric = comparison.error_metric
    rows = {
        f"{name} {split}/{metric}": f"{scores[metric]:.4g}"
        for name, scores in comparison.baselines.items()
    }
    if "mase" in comparison.model:
        rows[f"{split}/mase"] = f"{comparison.model['mase']:.4g}"
    rows[f"skill vs {comparison.best}"] = f"{comparison.skill:.3f}"
    return rows
