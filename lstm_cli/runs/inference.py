"""Using a trained model: restoring it from a checkpoint, forecasting, generating text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lstm_cli.common.errors import CheckpointError, ConfigError
from lstm_cli.config.schema import TrainConfig
from lstm_cli.config.tasks import Task
from lstm_cli.config.validate import build, completed
from lstm_cli.model.averaged import Network, build_network
from lstm_cli.model.network import CarriedState, LSTMNetwork, ModelSpec
from lstm_cli.runs.checkpoint import load_checkpoint


@dataclass
class TrainedModel:
    model: Network
    config: TrainConfig
    task: Task
    preprocessing: dict[str, Any]
    epoch: int
    checkpoint: Path


def load_trained(path: Path, device: torch.device) -> TrainedModel:
    """Rebuild the network of a checkpoint and load its weights, or say what does not fit."""
    payload = load_checkpoint(path)
    try:
        config = build(TrainConfig, completed(with_split_seed(payload["config"])))
        spec = ModelSpec(**payload["model_spec"])
    except (ConfigError, TypeError) as err:
        raise CheckpointError(f"{path}: written by an incompatible lstm-train ({err})") from err
    check_spec_fits_weights(spec, payload["model_state"], path)
    model = build_network(spec, packed=config.data.packed)
    try:
        model.load_state_dict(payload["model_state"])
    except (RuntimeError, TypeError) as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(
            f"{path}: the weights do not fit the model it describes ({first})"
        ) from err
    return TrainedModel(
        model.to(device).eval(),
        config,
        payload["task"],
        payload["preprocessing"],
        int(payload.get("epoch", 0)),
        path,
    )


def check_spec_fits_weights(spec: ModelSpec, state: dict[str, Tensor], path: Path) -> None:
    """Before building anything: the LSTM a spec describes needs at least 4H(I + H) weights
    per layer, direction and member; a spec asking for more than the file holds (a crafted
    `num_layers=1e9`, a `hidden_size` of gigabytes) is refused without allocating it."""
    if spec.members < 1 or spec.averages not in ("outputs", "probabilities"):
        raise CheckpointError(
            f"{path}: the model it describes is not one lstm-train builds (members"
            f" {spec.members}, averages {spec.averages!r})"
        )
    held = sum(t.numel() for t in state.values() if isinstance(t, Tensor))
    directions = 2 if spec.bidirectional else 1
    hidden = spec.hidden_size
    first_input = spec.conv_channels if spec.conv_layers else spec.input_size
    if spec.token_input and not spec.conv_layers:
        first_input = spec.embedding_dim
    needed = 0
    for layer in range(spec.num_layers):
        width = first_input if layer == 0 else hidden * directions
        needed += spec.members * directions * 4 * hidden * (width + hidden)
        if needed > held:
            raise CheckpointError(
                f"{path}: the weights do not fit the model it describes (its spec needs at"
                f" least {needed:,} LSTM weights by layer {layer + 1}; the file holds {held:,})"
            )


def with_split_seed(saved: dict[str, Any]) -> dict[str, Any]:
    """A config saved before `dataset.split_seed` existed split its data by `trainer.seed`:
    give it that seed, so that evaluate rebuilds the very same splits."""
    dataset = saved.get("dataset")
    if not isinstance(dataset, dict) or "split_seed" in dataset:
        return saved
    if dataset.get("kind") not in ("csv_sequences", "npz"):
        return saved
    seed = saved.get("trainer", {}).get("seed", 0)
    return {**saved, "dataset": {**dataset, "split_seed": seed}}


@torch.inference_mode()
def forecast(
    model: Network,
    series: Tensor,
    window: int,
    horizon: int,
    target_index: list[int],
    steps: int,
) -> Tensor:
    """Forecast `steps` values of each target after the end of `series` [T, C] (model units).

    Beyond the model's horizon the forecast rolls forward: predicted targets are appended
    to the series and the model is applied again, `horizon` steps at a time (only for
    series without covariates, whose future values would be unknown).
    """
    device = next(model.parameters()).device
    history = series.to(device)
    predicted: list[Tensor] = []
    produced = 0
    while True:
        inputs = history[-window:].unsqueeze(0)  # a panel's short series: all it has
        block = model(inputs, torch.tensor([inputs.shape[1]])).view(horizon, len(target_index))
        predicted.append(block)
        produced += horizon
        if produced >= steps:
            return torch.cat(predicted)[:steps].cpu()
        extension = torch.zeros(horizon, history.shape[1], dtype=history.dtype, device=device)
        extension[:, target_index] = block.to(history.dtype)
        history = torch.cat([history, extension])


@torch.inference_mode()
def generate_text(
    model: LSTMNetwork, prompt: Tensor, length: int, temperature: float, seed: int
) -> list[int]:
    """Sample `length` token ids after `prompt`, carrying the LSTM state step by step."""
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    carried = CarriedState()
    inputs = prompt.to(device).unsqueeze(0)
    produced: list[int] = []
    for _ in range(length):
        outputs = model(inputs, torch.tensor([inputs.shape[1]]), carried)
        logits = outputs[:, -1].float().cpu() / temperature
        logits[:, 0] = float("-inf")
        token = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        produced.append(int(token))
        inputs = token.to(device)
    return produced
