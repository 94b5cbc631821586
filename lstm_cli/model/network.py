"""The network: optional embedding, an optional convolutional block, `torch.nn.LSTM`
(cuDNN / oneDNN kernels), dropout, and a linear head reading either every step (language
models) or the sequence pooled over time (its last valid step, mean, max, attention).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_cli.config.schema import ModelConfig
from lstm_cli.data.batching import padding_mask
from lstm_cli.data.splits import PreparedData


@dataclass
class ModelSpec:
    """Everything needed to rebuild the network from a checkpoint, as plain data.

    `relative_inputs` (forecasting with transform=diff) are input columns, the targets, that
    the network reads relative to their last observed value; its outputs are changes from
    that value, added back so that the network still returns levels; with `anchor_season`
    > 1, changes from the seasonal forecast of `seasonal_anchor` instead. `conv_stride` is
    chosen from the training data: the stride that brings the longest training sequence
    down to `max_lstm_steps`. The defaults of the later fields rebuild checkpoints written
    before those fields existed.
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
    anchor_season: int = 1
    pooling: list[str] = field(default_factory=lambda: ["last"])
    forget_bias: float = 0.0
    conv_channels: int = 0
    conv_layers: int = 0
    conv_kernel: int = 7
    max_lstm_steps: int | None = None
    conv_stride: int = 1

    @classmethod
    def of(cls, cfg: ModelConfig, data: PreparedData) -> ModelSpec:
        """The network for this data: a language model reads every step, so it gets neither
        pooling nor the convolutional block (whose stride would merge steps). An unset
        forget bias is 1 for sequence tasks and 0 for language models (measured: see
        conf/train.yaml)."""
        per_step = data.task == "language_model"
        options = asdict(cfg)
        options["pooling"] = cfg.pooling_kinds()
        if cfg.forget_bias is None:
            options["forget_bias"] = 0.0 if per_step else 1.0
        if per_step or not cfg.conv_layers:
            options["conv_channels"] = options["conv_layers"] = 0
        longest = int(data.train.sequence_lengths().max())
        stride = math.ceil(longest / cfg.max_lstm_steps) if cfg.max_lstm_steps else 1
        return cls(
            input_size=data.input_size,
            output_size=data.output_size,
            token_input=data.token_input,
            per_step=per_step,
            relative_inputs=list(data.relative_inputs),
            anchor_season=data.anchor_season,
            conv_stride=max(stride, 1) if options["conv_layers"] else 1,
            **options,
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


def seasonal_anchor(x: Tensor, lengths: Tensor, horizon: int, season: int) -> Tensor:
    """[B, T, C] windows -> [B, horizon, C]: the forecast of seasonal differencing, step h
    ahead = the value c = ceil(h / season) seasons before it + c x the last seasonal change
    (Box & Jenkins' airline model with its noise terms at zero). A window no longer than a
    season (a panel's short series) gets its last value.
    """
    last = (lengths.to(x.device) - 1).view(-1, 1)
    ahead = torch.arange(1, horizon + 1, device=x.device).view(1, -1)
    seasons = torch.div(ahead + season - 1, season, rounding_mode="floor")
    covered = (last >= season).view(-1, 1, 1)

    def at(steps: Tensor) -> Tensor:
        index = steps.clamp_min(0).unsqueeze(2).expand(-1, -1, x.shape[2])
        return x.gather(1, index)

    latest = at(last)
    change = latest - at(last - season)
    seasonal = at(last + ahead - seasons * season) + seasons.unsqueeze(2) * change
    return torch.where(covered, seasonal, latest)


class ConvBlock(nn.Module):
    """`conv_layers` x (Conv1d -> BatchNorm -> ReLU) over time, the last one strided.

    Local shapes (spikes, edges, oscillations) are what convolutions find well and what an
    LSTM fed one raw value per step finds slowly; the stride shortens long sequences so
    that backpropagation through time spans a few hundred steps, not thousands. Each
    layer's output is zeroed past each sequence's end, so the next layer reads there what
    a sequence alone would read (zero padding): padding never changes a result.
    """

    def __init__(self, spec: ModelSpec, in_channels: int) -> None:
        super().__init__()
        self.stride = spec.conv_stride
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(
                    in_channels if index == 0 else spec.conv_channels,
                    spec.conv_channels,
                    spec.conv_kernel,
                    stride=self.stride if index == spec.conv_layers - 1 else 1,
                    padding=spec.conv_kernel // 2,
                ),
                nn.BatchNorm1d(spec.conv_channels),
                nn.ReLU(),
            )
            for index in range(spec.conv_layers)
        )

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """[B, T, F] and [B] lengths -> [B, ceil(T / stride), channels] and their lengths."""
        outputs = x.transpose(1, 2)
        for index, layer in enumerate(self.layers):
            if index == len(self.layers) - 1 and self.stride > 1:
                lengths = torch.div(lengths - 1, self.stride, rounding_mode="floor") + 1
            outputs = layer(outputs)
            outputs = outputs * padding_mask(lengths, outputs.shape[2], outputs.device).unsqueeze(1)
        return outputs.transpose(1, 2), lengths


class TimePooling(nn.Module):
    """[B, T, H] LSTM outputs -> [B, H x len(kinds)], reading only each sequence's real steps.

    `last`: the state after the last real step (the backward direction's after step 0);
    `mean` and `max` over the real steps; `attention`: a learned weighting of the steps.
    """

    def __init__(self, kinds: list[str], width: int, bidirectional: bool) -> None:
        super().__init__()
        self.kinds, self.bidirectional = kinds, bidirectional
        self.attention = nn.Linear(width, 1) if "attention" in kinds else None

    def forward(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        if self.kinds == ["last"]:  # the classic head: no mask to build
            return last_valid_step(outputs, lengths, self.bidirectional)
        real = padding_mask(lengths, outputs.shape[1], outputs.device).unsqueeze(2)
        pooled = []
        for kind in self.kinds:
            if kind == "last":
                pooled.append(last_valid_step(outputs, lengths, self.bidirectional))
            elif kind == "mean":
                counts = real.sum(1).clamp_min(1).to(outputs.dtype)
                pooled.append((outputs * real).sum(1) / counts)
            elif kind == "max":
                pooled.append(outputs.masked_fill(~real, torch.finfo(outputs.dtype).min).amax(1))
            else:  # attention
                scores = self.attention(outputs).masked_fill(~real, float("-inf"))
                pooled.append((scores.softmax(1) * outputs).sum(1))
        return torch.cat(pooled, dim=1)


class LSTMNetwork(nn.Module):
    """Embedding (token inputs) or convolutions (optional) -> LSTM -> pooling over time
    (sequence tasks) -> dropout -> linear head."""

    def __init__(self, spec: ModelSpec, packed: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.packed = packed
        self.embedding = (
            nn.Embedding(spec.input_size, spec.embedding_dim) if spec.token_input else None
        )
        lstm_inputs = spec.embedding_dim if spec.token_input else spec.input_size
        self.conv = ConvBlock(spec, lstm_inputs) if spec.conv_layers else None
        self.lstm = nn.LSTM(
            input_size=spec.conv_channels if spec.conv_layers else lstm_inputs,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            bidirectional=spec.bidirectional,
            dropout=spec.dropout if spec.num_layers > 1 else 0.0,
            batch_first=True,
        )
        set_forget_bias(self.lstm, spec.forget_bias)
        self.dropout = nn.Dropout(spec.dropout)
        relative = torch.zeros(spec.input_size)
        relative[spec.relative_inputs] = 1.0
        # 1 for the input columns read relative to their last value (not saved: from spec)
        self.register_buffer("relative_mask", relative, persistent=False)
        width = spec.hidden_size * (2 if spec.bidirectional else 1)
        self.pooling = TimePooling(spec.pooling, width, spec.bidirectional)
        pooled_width = width if spec.per_step else width * len(spec.pooling)
        self.head = nn.Linear(pooled_width, spec.output_size)
        if spec.relative_inputs:  # start as the naive (or seasonal) forecast, learn changes
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """[B, T(, F)] inputs and [B] lengths -> [B, O] or, per step, [B, T, O]."""
        inputs, anchor = x, None
        if self.embedding is not None:
            inputs = self.embedding(x)
        elif self.spec.relative_inputs:  # padding (a panel's short windows) stays zero
            last = last_valid_step(x, lengths, False)
            real = padding_mask(lengths, x.shape[1], x.device).unsqueeze(2)
            inputs = (x - (last * self.relative_mask).unsqueeze(1)) * real
            anchor = last[:, self.spec.relative_inputs].unsqueeze(1)
        if self.conv is not None:
            inputs, lengths = self.conv(inputs, lengths)
        outputs = self._run_lstm(inputs, lengths)
        if self.spec.per_step:
            return self.head(self.dropout(outputs))
        predicted = self.head(self.dropout(self.pooling(outputs, lengths)))
        if anchor is None:
            return predicted
        steps = predicted.unflatten(1, (-1, anchor.shape[2]))
        if self.spec.anchor_season > 1:
            columns = x[:, :, self.spec.relative_inputs]
            anchor = seasonal_anchor(columns, lengths, steps.shape[1], self.spec.anchor_season)
        return (steps + anchor).flatten(1)

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


def set_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """Start every forget gate at `value` (Jozefowicz et al. 2015: 1 lets gradients flow
    through long sequences from the first step); torch draws it at random around 0.

    torch adds two bias vectors, so `bias_ih` takes the value and `bias_hh` zero. Gate
    order in torch's layout: input, forget, cell, output.
    """
    hidden = lstm.hidden_size
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_"):
                bias[hidden : 2 * hidden] = value if name.startswith("bias_ih") else 0.0


def layer_summary(model: LSTMNetwork) -> dict[str, str]:
    """Each layer with its shape and parameter count, for the start-of-run summary."""
    spec, lstm = model.spec, model.lstm
    rows: dict[str, str] = {}
    if model.embedding is not None:
        shape = f"{spec.input_size} tokens -> {spec.embedding_dim}"
        rows["embedding"] = _counted(shape, model.embedding.parameters())
    if model.conv is not None:
        shape = (
            f"{spec.conv_layers} x conv1d (kernel {spec.conv_kernel}) + batch norm + ReLU"
            f" {spec.input_size} -> {spec.conv_channels}, stride {spec.conv_stride}"
        )
        rows["convolutions"] = _counted(shape, model.conv.parameters())
    directions = 2 if spec.bidirectional else 1
    kind = "bidirectional LSTM" if spec.bidirectional else "LSTM"
    for layer in range(spec.num_layers):
        suffixes = (f"_l{layer}", f"_l{layer}_reverse")
        weights = [p for name, p in lstm.named_parameters() if name.endswith(suffixes)]
        width = lstm.input_size if layer == 0 else spec.hidden_size * directions
        shape = f"{kind} {width} -> {spec.hidden_size * directions}"
        rows[f"lstm layer {layer + 1}"] = _counted(shape, weights)
    if spec.per_step:
        shape = f"linear on every step -> {spec.output_size}"
    else:
        shape = f"{' + '.join(spec.pooling)} over time, linear -> {spec.output_size}"
    rows["head"] = _counted(shape, [*model.head.parameters(), *model.pooling.parameters()])
    return rows


def _counted(text: str, parameters: Iterable[nn.Parameter]) -> str:
    return f"{text}, {sum(p.numel() for p in parameters):,} parameters"
