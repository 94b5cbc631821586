"""`trainer.precision`: full float32, or mixed precision with bfloat16 or float16.

Mixed precision runs the forward pass under autocast (the LSTM and linear layers in the
lower precision, the loss in float32). float16 has a small range, so its gradients are
scaled up before backward and unscaled before clipping (torch's GradScaler), and a step
whose scaled gradients overflowed is skipped while the scale is lowered; bfloat16 has
float32's range and needs no scaling.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

from lstm_cli.config.checks import check_precision

LOWER_PRECISION = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class Precision:
    """How one training run computes: the autocast context and the optional loss scaler."""

    def __init__(self, name: str, device: torch.device) -> None:
        check_precision(name, device.type)
        self.name = name
        self.device = device
        self.dtype = LOWER_PRECISION.get(name)
        self.scaler = torch.amp.GradScaler(device.type) if name == "16-mixed" else None

    def autocast(self) -> AbstractContextManager[object]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward through time; with a scaler, the gradients are unscaled again after."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step; the scaler skips it if the gradients overflowed."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
