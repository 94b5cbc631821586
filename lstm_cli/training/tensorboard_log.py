"""`logger=tensorboard`: the run's scalars and hyperparameters as TensorBoard event files.

Written through torch's own SummaryWriter into <run dir>/tensorboard: every epoch's row of
metrics.csv (tags as there: train/loss, val/acc, ...; the others under epoch/), per-step
loss, gradient norm and learning rate every `every_steps` steps (under step/), and at the
end the hyperparameters with the best and test metrics for the HParams view.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_cli.config.validate import dotted_keys

if TYPE_CHECKING:
    from torch import Tensor


class TensorBoardLog:
    def __init__(self, run_dir: Path, every_steps: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.every_steps = every_steps

    def step(self, global_step: int, loss: Tensor, grad_norm: Tensor, lr: float) -> None:
        """Per-step scalars, every `every_steps` steps (each is a read from the device)."""
        if global_step % self.every_steps:
            return
        self.writer.add_scalar("step/loss", float(loss.detach()), global_step)
        self.writer.add_scalar("step/grad_norm", float(grad_norm), global_step)
        self.writer.add_scalar("step/lr", lr, global_step)

    def epoch(self, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if key != "epoch":
                tag = key if "/" in key else f"epoch/{key}"
                self.writer.add_scalar(tag, value, row["epoch"])
        self.writer.flush()

    def hyperparameters(self, config: dict[str, Any], metrics: dict[str, float]) -> None:
        """The flattened config beside the final metrics, in the HParams view."""
        scalars = {
            key: value if isinstance(value, bool | int | float | str) else str(value)
            for key, value in dotted_keys(config).items()
        }  # HParams takes scalars: lists and None become text
        self.writer.add_hparams(
            scalars, {f"hparams/{k}": v for k, v in metrics.items()}, run_name="."
        )
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
