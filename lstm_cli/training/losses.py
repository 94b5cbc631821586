"""Loss functions per task; per-step losses ignore padded steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor
from torch.nn import functional as F

from lstm_cli.config.tasks import Task
from lstm_cli.data.batching import padding_mask

IGNORE = -100
LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def build_loss(cfg: Any, task: Task) -> LossFn:
    """`loss(outputs, targets, lengths)`, averaged over sequences or over valid steps."""
    if cfg.name == "cross_entropy":
        smoothing = cfg.label_smoothing
        if task == "language_model":

            def per_step(outputs: Tensor, targets: Tensor, lengths: Tensor) -> Tensor:
                valid = padding_mask(lengths, targets.shape[1], targets.device)
                masked = targets.masked_fill(~valid, IGNORE)
                return F.cross_entropy(
                    outputs.flatten(0, 1),
                    masked.flatten(),
                    ignore_index=IGNORE,
                    label_smoothing=smoothing,
                )

            return per_step
        return lambda outputs, targets, _: F.cross_entropy(
            outputs, targets, label_smoothing=smoothing
        )
    if cfg.name == "mse":
        return lambda outputs, targets, _: F.mse_loss(outputs, targets)
    if cfg.name == "l1":
        return lambda outputs, targets, _: F.l1_loss(outputs, targets)
    if cfg.name == "huber":
        return lambda outputs, targets, _: F.huber_loss(outputs, targets, delta=cfg.delta)
    raise ValueError(f"unknown loss {cfg.name}")
