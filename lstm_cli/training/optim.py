"""Optimizer, learning-rate scheduler and gradient clipping, built from their config groups."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

FUSED_DEVICES = ("cuda", "cpu")

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def build_optimizer(cfg: Any, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The configured optimizer; Adam, AdamW and SGD use torch's fused kernels where they exist.

    A fused step is one kernel over all parameters and accepts a device-side flag that
    cancels it, which lets the training step guard against NaN without a host read.
    """
    params = list(parameters)
    if cfg.name in ("adam", "adamw"):
        kind = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
        options = dict(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
        return _fused_if_possible(kind, params, options)
    if cfg.name == "sgd":
        options = dict(
            lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
        return _fused_if_possible(torch.optim.SGD, params, options)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params,
            lr=cfg.lr,
            alpha=cfg.alpha,
            eps=cfg.eps,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
    raise ValueError(f"unknown optimizer {cfg.name}")


def _fused_if_possible(
    kind: type[torch.optim.Optimizer], params: list[nn.Parameter], options: dict[str, Any]
) -> torch.optim.Optimizer:
    """Fused kernels exist for CUDA and the CPU (torch checks only at the first step, so
    the device is looked at here); elsewhere (MPS, XLA) the foreach step runs."""
    fused = bool(params) and params[0].device.type in FUSED_DEVICES
    return kind(params, fused=fused or None, **options)


def build_scheduler(cfg: Any, optimizer: torch.optim.Optimizer, trainer: Any) -> Scheduler | None:
    """A per-epoch scheduler (plateau follows the monitored metric in its direction), or
    onecycle's per-step one (`PerStepScheduler`), which the training step advances."""
    max_epochs, mode = trainer.max_epochs, trainer.mode
    if cfg.name == "none":
        return None
    if cfg.name == "onecycle":
        total = cfg.steps or trainer.min_steps
        return PerStepScheduler(optimizer, _one_cycle(total, round(total * cfg.warmup), cfg.peak))
    if cfg.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr
        )
    if cfg.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=cfg.t_max or max_epochs, eta_min=cfg.eta_min
        )
    if cfg.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    raise ValueError(f"unknown scheduler {cfg.name}")


class PerStepScheduler(torch.optim.lr_scheduler.LambdaLR):
    """A schedule over optimizer steps rather than epochs: a small set's epoch is 2-5 steps,
    a large one's thousands, so only steps mean the same on both."""


def _one_cycle(total: int, warmup: int, peak: float) -> Callable[[int], float]:
    """The learning rate's multiple at each step: 1 -> `peak` linearly over `warmup` steps,
    then a half cosine down to 0 at `total`, and 0 after (early stopping ends the run)."""

    def factor(step: int) -> float:
        if step < warmup:
            return 1.0 + (peak - 1.0) * step / warmup
        done = min(1.0, (step - warmup) / max(1, total - warmup))
        return peak * 0.5 * (1.0 + math.cos(math.pi * done))

    return factor


def step_scheduler(scheduler: Scheduler | None, monitored: float | None) -> None:
    """At an epoch's end: per-epoch schedulers move on (per-step ones moved every step);
    plateau only with a monitored value (a refit has none: its rate stays)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if monitored is not None:
            scheduler.step(monitored)
    elif scheduler is not None and not isinstance(scheduler, PerStepScheduler):
        scheduler.step()


def clip_gradients(cfg: Any, parameters: list[nn.Parameter]) -> tuple[Tensor, Tensor]:
    """Clip as configured; return (pre-clip global L2 norm, 1 if clipping fired else 0).

    Both stay on the device, so the training step never waits for the host.
    """
    max_norm = cfg.max_norm if cfg.name == "norm" else float("inf")
    norm = nn.utils.clip_grad_norm_(parameters, max_norm)
    if cfg.name == "norm":
        return norm, (norm > max_norm).float()
    if cfg.name == "value":
        grads = [p.grad for p in parameters if p.grad is not None]
        largest = torch.stack([g.abs().max() for g in grads]).max()
        nn.utils.clip_grad_value_(parameters, cfg.clip_value)
        return norm, (largest > cfg.clip_value).float()
    return norm, torch.zeros((), device=norm.device)
