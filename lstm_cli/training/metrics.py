"""Metrics accumulated on the device and read once per epoch (no host sync per batch).

Regression metrics are computed in the data's own units (`to_original`), so an RMSE of
airline passengers is in passengers, not in standard deviations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from lstm_cli.common.distributed import sum_across_ranks
from lstm_cli.config.tasks import Task
from lstm_cli.data.batching import padding_mask


class MetricAccumulator:
    """Running sums for one pass over a split; `compute()` turns them into metrics.

    `sums` holds: loss x count, count, then per task: language model (summed NLL, correct
    tokens), regression (squared error, absolute error, absolute percentage error, values,
    nonzero targets).
    """

    def __init__(
        self,
        task: Task,
        num_outputs: int,
        device: torch.device,
        to_original: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.task = task
        self.to_original = to_original
        self.sums = torch.zeros(7, dtype=torch.float64, device=device)
        self.confusion = (
            torch.zeros(num_outputs * num_outputs, dtype=torch.long, device=device)
            if task == "classification"
            else None
        )
        self.num_classes = num_outputs

    @torch.no_grad()
    def update(self, outputs: Tensor, targets: Tensor, lengths: Tensor, loss: Tensor) -> None:
        outputs = outputs.detach().float()
        if self.task == "language_model":
            self._update_language_model(outputs, targets, lengths, loss)
        elif self.task == "classification":
            count = len(targets)
            self.sums[0] += loss.detach() * count
            self.sums[1] += count
            self.confusion += confusion_counts(outputs.argmax(-1), targets, self.num_classes)
        else:
            self._update_regression(outputs, targets, loss)

    def _update_language_model(
        self, outputs: Tensor, targets: Tensor, lengths: Tensor, loss: Tensor
    ) -> None:
        valid = padding_mask(lengths, targets.shape[1], targets.device)
        nll = F.cross_entropy(outputs.flatten(0, 1), targets.flatten(), reduction="none")
        tokens = valid.sum()
        self.sums[0] += loss.detach() * tokens
        self.sums[1] += tokens
        self.sums[2] += (nll * valid.flatten()).sum()
        self.sums[3] += ((outputs.argmax(-1) == targets) & valid).sum()

    def _update_regression(self, outputs: Tensor, targets: Tensor, loss: Tensor) -> None:
        if self.to_original is not None:
            outputs, targets = self.to_original(outputs), self.to_original(targets.float())
        error = outputs - targets
        self.sums[0] += loss.detach() * len(targets)
        self.sums[1] += len(targets)
        self.sums[2] += error.pow(2).sum()
        self.sums[3] += error.abs().sum()
        nonzero = targets != 0
        self.sums[4] += (error.abs() / targets.abs().clamp_min(1e-12))[nonzero].sum()
        self.sums[5] += targets.numel()
        self.sums[6] += nonzero.sum()

    def reduce_across_ranks(self) -> None:
        """Under torchrun each rank saw a share of the split: add up all ranks' sums."""
        sum_across_ranks(self.sums)
        if self.confusion is not None:
            sum_across_ranks(self.confusion)

    def compute(self) -> dict[str, float]:
        """Metric name -> value, for names in `tasks.METRICS[task]`."""
        sums = self.sums.tolist()
        count = max(sums[1], 1.0)
        metrics = {"loss": sums[0] / count}
        if self.task == "language_model":
            mean_nll = sums[2] / count
            metrics |= {
                "acc": sums[3] / count,
                "ppl": math.exp(min(mean_nll, 700.0)),
                "bpc": mean_nll / math.log(2),
            }
        elif self.task == "classification":
            metrics |= classification_metrics(
                self.confusion.view(self.num_classes, self.num_classes).cpu()
            )
        else:
            values = max(sums[5], 1.0)
            metrics |= {
                "rmse": math.sqrt(sums[2] / values),
                "mae": sums[3] / values,
                "mape": sums[4] / max(sums[6], 1.0),
            }
        return metrics


def confusion_counts(predicted: Tensor, actual: Tensor, classes: int) -> Tensor:
    """The flat [true x predicted] count matrix of one batch (view it as [classes, classes])."""
    return torch.bincount(actual.long() * classes + predicted.long(), minlength=classes**2)


def classification_metrics(confusion: Tensor) -> dict[str, float]:
    """Accuracy and macro-F1 from a [true, predicted] confusion matrix.

    Macro-F1 averages over the classes that occur as a target or a prediction.
    """
    confusion = confusion.double()
    true_positive = confusion.diag()
    support = confusion.sum(1)
    predicted = confusion.sum(0)
    present = (support + predicted) > 0
    f1 = 2 * true_positive / (support + predicted).clamp_min(1)
    total = confusion.sum().clamp_min(1)
    return {
        "acc": float(true_positive.sum() / total),
        "f1": float(f1[present].mean()) if present.any() else 0.0,
    }


def epoch_line(row: dict[str, Any], max_epochs: int, improved: bool) -> str:
    """The log line of one epoch: its metrics, learning rate, gradient norm and speed."""
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if "/" in k)
    mark = " *" if improved else ""
    return (
        f"epoch {row['epoch']}/{max_epochs}  {metrics}  lr {row['lr']:.3g}"
        f"  grad_norm {row['grad_norm']:.3g}  {row['epoch_seconds']:.2f}s"
        f"  {row['sequences_per_second']:.0f} seq/s{mark}"
    )
