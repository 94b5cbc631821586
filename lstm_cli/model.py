"""The network: optional embedding, `torch.nn.LSTM` (cuDNN / oneDNN kernels), dropout, a
linear head reading either every step (language models) or each sequence's last valid step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_cli.config.schema import ModelConfig
from lstm_cli.data.splits import PreparedData


@dataclass
class ModelSpec:
    """Everything needed to rebuild the network from a checkpoint, as plain data.

    `relative_inputs` (forecasting with transform=diff) are input columns, the targets, that
    the network reads relative to their last observed value; its outputs are changes from
    that value, added back so that the network still returns levels.
    """

    input_size: int
    output_size: int
    token_input: bool
    per_step: bool
    hidden_size: int
    num_layers: int
    bidirectional: bool
    dropout: float
    embedding_dim: int
    relative_inputs: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, cfg: ModelConfig, data: PreparedData) -> ModelSpec:
        return cls(
            input_size=data.input_size,
            output_size=data.output_size,
            token_input=data.token_input,
            per_step=data.task == "language_model",
            relative_inputs=list(data.relative_inputs),
            **asdict(cfg),
        )

    def to_dict(self) -> dict:
        return asdict(self)


def last_valid_step(outputs: Tensor, lengths: Tensor, bidirectional: bool) -> Tensor:
    """[B, T, D*H] -> [B, D*H]: each sequence's state after its last real step.

    Never `outputs[:, -1]`, which is padding for all but the longest sequences. The backward
    direction has read the whole sequence when it reaches step 0, so its half comes from there.
    """
    index = (lengths.to(outputs.device, non_blocking=True) - 1).view(-1, 1, 1)  # no GPU wait
    forward = outputs.gather(1, index.expand(-1, 1, outputs.shape[2])).squeeze(1)
    if not bidirectional:
        return forward
    hidden = outputs.shape[2] // 2
    return torch.cat([forward[:, :hidden], outputs[:, 0, hidden:]], dim=1)


class LSTMNetwork(nn.Module):
    """Embedding (token inputs) -> LSTM -> dropout -> linear head."""

    def __init__(self, spec: ModelSpec, packed: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.packed = packed
        self.embedding = (
            nn.Embedding(spec.input_size, spec.embedding_dim) if spec.token_input else None
        )
        self.lstm = nn.LSTM(
            input_size=spec.embedding_dim if spec.token_input else spec.input_size,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            bidirectional=spec.bidirectional,
            dropout=spec.dropout if spec.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(spec.dropout)
        relative = torch.zeros(spec.input_size)
        relative[spec.relative_inputs] = 1.0
        # 1 for the input columns read relative to their last value (not saved: from spec)
        self.register_buffer("relative_mask", relative, persistent=False)
        directions = 2 if spec.bidirectional else 1
        self.head = nn.Linear(spec.hidden_size * directions, spec.output_size)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """[B, T(, F)] inputs and [B] lengths -> [B, O] or, per step, [B, T, O]."""
        inputs, anchor = x, None
        if self.embedding is not None:
            inputs = self.embedding(x)
        elif self.spec.relative_inputs:
            last = last_valid_step(x, lengths, False)
            inputs = x - (last * self.relative_mask).unsqueeze(1)
            anchor = last[:, self.spec.relative_inputs]
        outputs = self._run_lstm(inputs, lengths)
        if self.spec.per_step:
            return self.head(self.dropout(outputs))
        pooled = last_valid_step(outputs, lengths, self.spec.bidirectional)
        predicted = self.head(self.dropout(pooled))
        if anchor is None:
            return predicted
        steps = predicted.unflatten(1, (-1, anchor.shape[1])) + anchor.unsqueeze(1)
        return steps.flatten(1)

    def _run_lstm(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Packed when asked, and always when a backward direction would read padding first."""
        padded = bool((lengths < inputs.shape[1]).any())
        if self.packed or (self.spec.bidirectional and padded):
            packed = pack_padded_sequence(
                inputs, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            outputs, _ = self.lstm(packed)
            outputs, _ = pad_packed_sequence(
                outputs, batch_first=True, total_length=inputs.shape[1]
            )
            return outputs
        outputs, _ = self.lstm(inputs)
        return outputs


def layer_summary(model: LSTMNetwork) -> dict[str, str]:
    """Each layer with its shape and parameter count, for the start-of-run summary."""
    spec, lstm = model.spec, model.lstm
    rows: dict[str, str] = {}
    if model.embedding is not None:
        shape = f"{spec.input_size} tokens -> {spec.embedding_dim}"
        rows["embedding"] = _counted(shape, model.embedding.parameters())
    directions = 2 if spec.bidirectional else 1
    kind = "bidirectional LSTM" if spec.bidirectional else "LSTM"
    for layer in range(spec.num_layers):
        suffixes = (f"_l{layer}", f"_l{layer}_reverse")
        weights = [p for name, p in lstm.named_parameters() if name.endswith(suffixes)]
        width = lstm.input_size if layer == 0 else spec.hidden_size * directions
        shape = f"{kind} {width} -> {spec.hidden_size * directions}"
        rows[f"lstm layer {layer + 1}"] = _counted(shape, weights)
    pooling = "every step" if spec.per_step else "last valid step"
    shape = f"linear on the {pooling} -> {spec.output_size}"
    rows["head"] = _counted(shape, model.head.parameters())
    return rows


def _counted(text: str, parameters: Iterable[nn.Parameter]) -> str:
    return f"{text}, {sum(p.numel() for p in parameters):,} parameters"
