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
from lstm_cli.model.blocks import (
    ConvBlock,
    TimePooling,
    last_valid_step,
    reverse_within_lengths,
    seasonal_anchor,
    set_forget_bias,
)


def spread_stride(total: int, layers: int) -> list[int]:
    """Strides for `layers` convolutions whose product is at least `total`, as even as can
    be and the later ones the larger (12 over 3: 2, 2, 3; 2: 1, 1, 2). Striding early spares
    the later convolutions most of the steps: ACSF1's 1460 steps take 2.5x less time a
    training step than with the last convolution striding by 12 alone (conf/train.yaml)."""
    strides = [1] * layers
    while layers and math.prod(strides) < total:
        smallest = min(range(layers), key=lambda index: (strides[index], -index))
        strides[smallest] += 1
    return strides


@dataclass
class ModelSpec:
    """Everything needed to rebuild the network from a checkpoint, as plain data.

    `relative_inputs` (forecasting with transform=diff) are input columns, the targets, that
    the network reads relative to their last observed value; its outputs are changes from
    that value, added back so that the network still returns levels; with `anchor_season`
    > 1, changes from the seasonal forecast of `seasonal_anchor` instead. `conv_stride` is
    chosen from the training data: the stride that brings the longest training sequence
    down to `max_lstm_steps`, spread over the convolutions as `conv_strides` (empty in
    checkpoints from before: the last one strides alone). `members` > 1 describes that many
    such networks answering together (`model/averaged.py`), with the mean of their
    `averages`. The defaults of the later fields rebuild checkpoints written before those
    fields existed.
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
    members: int = 1
    averages: str = "outputs"  # or "probabilities": a classifier's members
    conv_strides: list[int] = field(default_factory=list)

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
        strides = spread_stride(max(stride, 1), options["conv_layers"])
        return cls(
            input_size=data.input_size,
            output_size=data.output_size,
            token_input=data.token_input,
            per_step=per_step,
            relative_inputs=list(data.relative_inputs),
            anchor_season=data.anchor_season,
            conv_stride=math.prod(strides),
            conv_strides=strides,
            **options,
        )

    def layer_strides(self) -> list[int]:
        """Each convolution's stride (a checkpoint from before `conv_strides`: the last's)."""
        return self.conv_strides or [1] * (self.conv_layers - 1) + [self.conv_stride]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CarriedState:
    """The LSTM's (h, c) after one chunk of parallel streams, the next chunk's start
    (`trainer.tbptt`); detached, so backpropagation stops at the chunk boundary. None:
    zeros. A batch with fewer rows (the last stream ended) continues the first ones."""

    state: tuple[Tensor, Tensor] | None = None

    def start(self, rows: int) -> tuple[Tensor, Tensor] | None:
        if self.state is None:
            return None
        h, c = self.state
        return h[:, :rows], c[:, :rows]

    def keep(self, state: tuple[Tensor, Tensor]) -> None:
        self.state = (state[0].detach(), state[1].detach())


class LSTMNetwork(nn.Module):
    """Embedding (token inputs) or convolutions (optional) -> LSTM -> pooling over time
    (sequence tasks) -> dropout -> linear head.

    `tbptt` (trainer.tbptt) truncates backpropagation through time while training a
    sequence task: the gradient reaches the last `tbptt` steps of each sequence only.
    """

    def __init__(self, spec: ModelSpec, packed: bool = False, tbptt: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.packed = packed
        self.tbptt = tbptt
        self.embedding = (
            nn.Embedding(spec.input_size, spec.embedding_dim) if spec.token_input else None
        )
        lstm_inputs = spec.embedding_dim if spec.token_input else spec.input_size
        self.conv = (
            ConvBlock(lstm_inputs, spec.conv_channels, spec.conv_kernel, spec.layer_strides())
            if spec.conv_layers
            else None
        )
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

    def forward(self, x: Tensor, lengths: Tensor, carried: CarriedState | None = None) -> Tensor:
        """[B, T(, F)] inputs and [B] lengths -> [B, O] or, per step, [B, T, O].

        With `carried` (parallel streams), the LSTM starts from its state and leaves the
        final one there."""
        inputs, anchor, steps_read = x, None, lengths  # the convolutions may stride lengths
        if self.embedding is not None:
            inputs = self.embedding(x)
        elif self.spec.relative_inputs:  # padding (a panel's short windows) stays zero
            last = last_valid_step(x, lengths, False)
            real = padding_mask(lengths, x.shape[1], x.device).unsqueeze(2)
            inputs = (x - (last * self.relative_mask).unsqueeze(1)) * real
            anchor = last[:, self.spec.relative_inputs].unsqueeze(1)
        if self.conv is not None:
            inputs, lengths = self.conv(inputs, lengths)
        if carried is not None:
            outputs, final = self.lstm(inputs, carried.start(len(inputs)))
            carried.keep(final)
        elif self.training and self.tbptt and inputs.shape[1] > self.tbptt:
            outputs = self._run_truncated(inputs, lengths, self.tbptt)
        else:
            outputs = self._run_lstm(inputs, lengths)
        if self.spec.per_step:
            return self.head(self.dropout(outputs))
        predicted = self.head(self.dropout(self.pooling(outputs, lengths)))
        if anchor is None:
            return predicted
        steps = predicted.unflatten(1, (-1, anchor.shape[2]))
        if self.spec.anchor_season > 1:
            columns = x[:, :, self.spec.relative_inputs]
            season = self.spec.anchor_season
            anchor = seasonal_anchor(columns, steps_read, steps.shape[1], season)
        return (steps + anchor).flatten(1)

    def _run_lstm(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """Packed when asked; a bidirectional LSTM on a padded batch runs its directions
        apart, the backward one on each sequence reversed within its length."""
        if self.packed:
            packed = pack_padded_sequence(
                inputs, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            outputs, _ = self.lstm(packed)
            outputs, _ = pad_packed_sequence(
                outputs, batch_first=True, total_length=inputs.shape[1]
            )
            return outputs
        if self.spec.bidirectional and bool((lengths < inputs.shape[1]).any()):
            return self._run_directions(inputs, lengths)
        outputs, _ = self.lstm(inputs)
        return outputs

    def _run_truncated(self, inputs: Tensor, lengths: Tensor, steps: int) -> Tensor:
        """Truncated backpropagation through time: each sequence's steps before its last
        `steps` run without a graph, and the state they reach starts the rest, which has
        one; the outputs are those of one whole pass (a test holds them equal)."""
        cut = (lengths - steps).clamp_min(0).to(inputs.device)  # steps read without gradient
        longest = int(cut.max())
        if not longest:
            return self._run_lstm(inputs, lengths)
        with torch.no_grad():
            early, start = self._run_prefixes(inputs[:, :longest], cut)
        offsets = cut.view(-1, 1) + torch.arange(steps, device=inputs.device)
        index = offsets.clamp_max(inputs.shape[1] - 1).unsqueeze(2)
        late, _ = self.lstm(inputs.gather(1, index.expand(-1, -1, inputs.shape[2])), start)
        # step t of a sequence comes from `early` before its cut and from `late` after it
        time = torch.arange(inputs.shape[1], device=inputs.device).view(1, -1)
        since_cut = (time - cut.view(-1, 1)).clamp(0, steps - 1)
        source = torch.where(time < cut.view(-1, 1), time, longest + since_cut)
        both = torch.cat([early, late], dim=1)
        return both.gather(1, source.unsqueeze(2).expand(-1, -1, both.shape[2]))

    def _run_prefixes(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, tuple]:
        """Outputs and (h, c) after each sequence's first `lengths` steps (0: zeros)."""
        if bool((lengths == inputs.shape[1]).all()):
            return self.lstm(inputs)
        outputs = inputs.new_zeros(*inputs.shape[:2], self.spec.hidden_size)
        h = inputs.new_zeros(self.spec.num_layers, len(inputs), self.spec.hidden_size)
        c = torch.zeros_like(h)
        read = (lengths > 0).nonzero().flatten()
        packed = pack_padded_sequence(
            inputs[read], lengths[read].cpu(), batch_first=True, enforce_sorted=False
        )
        read_outputs, (h[:, read], c[:, read]) = self.lstm(packed)
        outputs[read] = pad_packed_sequence(
            read_outputs, batch_first=True, total_length=inputs.shape[1]
        )[0]
        return outputs, (h, c)

    def _run_directions(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """A bidirectional LSTM without packing: layer by layer, the forward direction on
        the batch as it is, the backward one on each sequence reversed within its length
        (padding stays behind, read last), so neither reads padding before a real step.

        The same weights and arithmetic as `nn.LSTM` (`torch.lstm` is the operator it
        calls); packing instead measured 3.4x slower than one direction on CPU.
        """
        lstm, hidden = self.lstm, self.spec.hidden_size
        start = inputs.new_zeros(1, inputs.shape[0], hidden)  # traced: any batch size
        for layer in range(lstm.num_layers):
            if layer and self.training and lstm.dropout:
                inputs = nn.functional.dropout(inputs, lstm.dropout)
            outputs = []
            for suffix, reverse in (("", False), ("_reverse", True)):
                weights = [
                    getattr(lstm, f"{name}_l{layer}{suffix}")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                ]
                read = reverse_within_lengths(inputs, lengths) if reverse else inputs
                out = torch.lstm(read, (start, start), weights, True, 1, 0.0, False, False, True)
                outputs.append(reverse_within_lengths(out[0], lengths) if reverse else out[0])
            inputs = torch.cat(outputs, dim=2)
        return inputs


def layer_summary(model: LSTMNetwork) -> dict[str, str]:
    """Each layer with its shape and parameter count, for the start-of-run summary."""
    spec, lstm = model.spec, model.lstm
    rows: dict[str, str] = {}
    if model.embedding is not None:
        shape = f"{spec.input_size} tokens -> {spec.embedding_dim}"
        rows["embedding"] = _counted(shape, model.embedding.parameters())
    if model.conv is not None:
        strides = ", ".join(map(str, spec.layer_strides()))
        shape = (
            f"{spec.conv_layers} x conv1d (kernel {spec.conv_kernel}) + batch norm + ReLU"
            f" {spec.input_size} -> {spec.conv_channels}, strides {strides}"
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
