"""Loss functions per task; per-step losses ignore padded steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from lstm_cli.tasks import Task

IGNORE = -100
LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def padding_mask(lengths: Tensor, steps: int, device: torch.device) -> Tensor:
    """[B, T] True on real steps, False on padding.

    The lengths live on the CPU; their copy is non-blocking, since a blocking host-to-GPU
    copy waits for every queued kernel.
    """
    return torch.arange(steps, device=device) < lengths.to(device, non_blocking=True).unsqueeze(1)


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
