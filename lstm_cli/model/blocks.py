"""The network's building blocks: the convolutional block, pooling over time, and the
index arithmetic on padded batches (last valid step, reversal within lengths, the
seasonal forecast a forecaster starts from), plus the forget-gate initialisation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstm_cli.data.batching import padding_mask


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
    """`conv_layers` x (Conv1d -> BatchNorm -> ReLU) over time, each with its stride.

    Local shapes (spikes, edges, oscillations) are what convolutions find well and what an
    LSTM fed one raw value per step finds slowly; the stride shortens long sequences so
    that backpropagation through time spans a few hundred steps, not thousands. Each
    layer's output is zeroed past each sequence's end, so the next layer reads there what
    a sequence alone would read (zero padding): padding never changes a result.
    """

    def __init__(self, in_channels: int, channels: int, kernel: int, strides: list[int]) -> None:
        super().__init__()
        self.strides = strides
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(
                    in_channels if index == 0 else channels,
                    channels,
                    kernel,
                    stride=stride,
                    padding=kernel // 2,
                ),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
            )
            for index, stride in enumerate(strides)
        )

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """[B, T, F] and [B] lengths -> [B, T / the strides' product (rounded up at each),
        channels] and their lengths."""
        outputs = x.transpose(1, 2)
        for stride, layer in zip(self.strides, self.layers, strict=True):
            if stride > 1:
                lengths = torch.div(lengths - 1, stride, rounding_mode="floor") + 1
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


def reverse_within_lengths(values: Tensor, lengths: Tensor) -> Tensor:
    """[B, T, F] with each sequence's first `length` steps reversed; padding stays behind.

    Step t of sequence b reads step length_b - 1 - t; past the length it reads itself.
    """
    steps = torch.arange(values.shape[1], device=values.device).unsqueeze(0)
    ends = lengths.to(values.device).unsqueeze(1)
    index = torch.where(steps < ends, ends - 1 - steps, steps)
    return values.gather(1, index.unsqueeze(2).expand(-1, -1, values.shape[2]))


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
