"""The network and losses: padding never changes a result, pooling reads only real steps,
the convolutional block keeps lengths in step, the forget gate starts at its bias."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
from conftest import model_config

from lstm_cli.config.validate import option_config
from lstm_cli.data.batching import padding_mask
from lstm_cli.data.splits import PreparedData, SequenceSplit
from lstm_cli.model.blocks import TimePooling, last_valid_step, seasonal_anchor
from lstm_cli.model.network import LSTMNetwork, ModelSpec, spread_stride
from lstm_cli.training.losses import build_loss


def network(
    bidirectional: bool = False,
    packed: bool = False,
    per_step: bool = False,
    token_input: bool = False,
    pooling: list[str] | None = None,
    conv_layers: int = 0,
    conv_stride: int = 1,
    relative_inputs: list[int] | None = None,
    anchor_season: int = 1,
) -> LSTMNetwork:
    torch.manual_seed(0)
    config = model_config(
        hidden_size=8,
        num_layers=2,
        bidirectional=bidirectional,
        dropout=0.0,
        pooling=pooling or ["last"],
        conv_layers=conv_layers,
        conv_channels=4,
        conv_kernel=3,
        forget_bias=1.0,
    )
    spec = ModelSpec(
        input_size=5 if token_input else 3,
        output_size=5,
        token_input=token_input,
        per_step=per_step,
        conv_stride=conv_stride,
        relative_inputs=relative_inputs or [],
        anchor_season=anchor_season,
        **asdict(config),
    )
    model = LSTMNetwork(spec, packed=packed)
    torch.nn.init.normal_(model.head.weight)  # a forecaster's head starts at zero: not here
    if model.conv is not None:  # batch norm statistics other than the identity
        for layer in model.conv.layers:
            layer[1].running_mean.uniform_(-0.5, 0.5)
            layer[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three sequences of lengths 6, 2 and 4, zero-padded to 6 steps."""
    torch.manual_seed(1)
    x = torch.randn(3, 6, 3)
    lengths = torch.tensor([6, 2, 4])
    x[1, 2:] = 0
    x[2, 4:] = 0
    return x, lengths


SHAPES = {
    "last": {},
    "mean, max, attention": {"pooling": ["mean", "max", "attention"]},
    "convolutions": {"conv_layers": 2, "pooling": ["mean", "max"]},
    "strided convolutions": {"conv_layers": 3, "conv_stride": 2, "pooling": ["last", "max"]},
    "inputs relative to their last value": {"conv_layers": 2, "relative_inputs": [1]},
    "changes from the seasonal forecast": {"relative_inputs": [1], "anchor_season": 2},
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_padding_does_not_change_the_outputs(shape, bidirectional, packed):
    model = network(bidirectional=bidirectional, packed=packed, **SHAPES[shape])
    x, lengths = padded_batch()
    batched = model(x, lengths)
    for i, length in enumerate(lengths.tolist()):
        alone = model(x[i : i + 1, :length], lengths[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], alone, rtol=1e-5, atol=1e-6)


def test_packed_and_padded_paths_agree():
    x, lengths = padded_batch()
    torch.testing.assert_close(
        network(packed=True)(x, lengths), network()(x, lengths), rtol=1e-5, atol=1e-6
    )


def test_padding_does_not_change_the_per_step_loss():
    model = network(per_step=True, token_input=True)
    loss_fn = build_loss(option_config("loss", "cross_entropy"), "language_model")
    tokens = torch.tensor([[1, 2, 3, 4, 0, 0]])
    targets = torch.tensor([[2, 3, 4, 1, 3, 3]])
    padded = loss_fn(model(tokens, torch.tensor([4])), targets, torch.tensor([4]))
    short = loss_fn(model(tokens[:, :4], torch.tensor([4])), targets[:, :4], torch.tensor([4]))
    torch.testing.assert_close(padded, short)


def test_padding_does_not_change_the_sequence_loss():
    model = network()
    loss_fn = build_loss(option_config("loss", "mse"), "regression")
    x, lengths = padded_batch()
    targets = torch.randn(3, 5)
    batched = loss_fn(model(x, lengths), targets, lengths)
    alone = torch.stack(
        [
            loss_fn(model(x[i : i + 1, :n], lengths[i : i + 1]), targets[i : i + 1], None)
            for i, n in enumerate(lengths.tolist())
        ]
    ).mean()
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


def test_last_valid_step_reads_each_sequences_own_end():
    outputs = torch.arange(2 * 4 * 2, dtype=torch.float).view(2, 4, 2)
    pooled = last_valid_step(outputs, torch.tensor([4, 2]), bidirectional=False)
    torch.testing.assert_close(pooled, torch.stack([outputs[0, 3], outputs[1, 1]]))


def test_last_valid_step_takes_the_backward_half_from_the_first_step():
    outputs = torch.arange(2 * 3 * 4, dtype=torch.float).view(2, 3, 4)
    pooled = last_valid_step(outputs, torch.tensor([3, 2]), bidirectional=True)
    expected = torch.stack(
        [
            torch.cat([outputs[0, 2, :2], outputs[0, 0, 2:]]),
            torch.cat([outputs[1, 1, :2], outputs[1, 0, 2:]]),
        ]
    )
    torch.testing.assert_close(pooled, expected)


def test_pooling_reads_only_the_real_steps():
    outputs = torch.tensor([[[1.0], [5.0], [3.0]], [[2.0], [9.0], [9.0]]])
    lengths = torch.tensor([3, 1])
    pooled = TimePooling(["mean", "max", "last"], 1, bidirectional=False)(outputs, lengths)
    torch.testing.assert_close(pooled, torch.tensor([[3.0, 5.0, 3.0], [2.0, 2.0, 2.0]]))


@pytest.mark.parametrize(
    ("total", "layers", "strides"),
    [(1, 3, [1, 1, 1]), (2, 3, [1, 1, 2]), (12, 3, [2, 2, 3]), (13, 3, [2, 3, 3]), (5, 1, [5])],
)
def test_a_stride_is_spread_over_the_convolutions_the_later_ones_the_larger(total, layers, strides):
    assert spread_stride(total, layers) == strides


def test_a_checkpoint_from_before_spread_strides_keeps_the_last_convolution_striding():
    saved = asdict(network(conv_layers=3).spec)
    saved.pop("conv_strides")  # what checkpoints held before the field existed
    old = ModelSpec(**{**saved, "conv_stride": 12})
    assert old.layer_strides() == [1, 1, 12]
    assert [layer[0].stride for layer in LSTMNetwork(old).conv.layers] == [(1,), (1,), (12,)]


def test_strided_convolutions_shorten_lengths_by_the_stride():
    model = network(conv_layers=2, conv_stride=4)
    x = torch.randn(2, 10, 3)
    outputs, lengths = model.conv(x, torch.tensor([10, 5]))
    assert outputs.shape == (2, 3, 4)
    assert lengths.tolist() == [3, 2]
    assert outputs[1, 2:].abs().sum() == 0  # past the shortened end: zero
    spread = LSTMNetwork(replace(model.spec, conv_strides=[2, 2]))
    outputs, lengths = spread.conv(x, torch.tensor([10, 5]))  # 10 -> 5 -> 3, 5 -> 3 -> 2
    assert outputs.shape == (2, 3, 4) and lengths.tolist() == [3, 2]
    assert outputs[1, 2:].abs().sum() == 0


def training_data(task: str, train: SequenceSplit, inputs: int, token_input: bool):
    """Just what `ModelSpec.of` reads of a dataset: its task, sizes and training lengths."""
    return PreparedData(task, train, None, None, inputs, inputs, token_input, {})


def test_the_spec_strides_the_longest_training_sequence_down_to_max_lstm_steps():
    train = SequenceSplit(torch.zeros(2, 1460, 1), torch.tensor([1460, 700]), torch.zeros(2))
    data = training_data("classification", train, 1, token_input=False)
    spec = ModelSpec.of(model_config(max_lstm_steps=128), data)
    assert (spec.conv_stride, spec.conv_strides) == (12, [2, 2, 3])
    assert ModelSpec.of(model_config(), data).forget_bias == 1.0  # null: 1 for sequence tasks
    assert ModelSpec.of(model_config(max_lstm_steps=None), data).conv_stride == 1
    without = ModelSpec.of(model_config(conv_layers=0), data)
    assert (without.conv_layers, without.conv_stride) == (0, 1)


def test_forget_gates_start_at_the_configured_bias():
    model = network()
    hidden = model.spec.hidden_size
    for name, bias in model.lstm.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(bias[hidden : 2 * hidden] == 1.0), name
        if name.startswith("bias_hh"):
            assert torch.all(bias[hidden : 2 * hidden] == 0.0), name


def test_a_language_model_gets_no_convolutions_or_pooling_and_forget_bias_zero_unless_set():
    train = SequenceSplit(torch.zeros(2, 50, dtype=torch.long), torch.tensor([50, 50]), None)
    data = training_data("language_model", train, 30, token_input=True)
    spec = ModelSpec.of(model_config(), data)
    assert (spec.per_step, spec.conv_layers, spec.forget_bias) == (True, 0, 0.0)
    assert ModelSpec.of(model_config(forget_bias=1.0), data).forget_bias == 1.0


def airline_model_forecast(history: list[float], horizon: int, season: int) -> list[float]:
    """(1 - B)(1 - B^season) y = 0 rolled forward, one step at a time."""
    values = list(history)
    for _ in range(horizon):
        values.append(values[-season] + values[-1] - values[-season - 1])
    return values[len(history) :]


def test_the_seasonal_anchor_is_the_seasonally_differenced_forecast():
    torch.manual_seed(2)
    x = torch.randn(2, 9, 1)
    lengths = torch.tensor([9, 7])
    anchor = seasonal_anchor(x, lengths, horizon=8, season=3)
    for row, length in enumerate(lengths.tolist()):
        history = x[row, :length, 0].tolist()
        expected = torch.tensor(airline_model_forecast(history, 8, 3))
        torch.testing.assert_close(anchor[row, :, 0], expected)


def test_a_window_no_longer_than_its_season_is_anchored_at_its_last_value():
    x = torch.arange(1.0, 7.0).view(1, 6, 1)
    anchor = seasonal_anchor(x, torch.tensor([3]), horizon=2, season=3)
    assert anchor.flatten().tolist() == [3.0, 3.0]


@pytest.mark.parametrize("anchor_season", [1, 4])
@pytest.mark.parametrize("conv_stride", [1, 2])  # strided convolutions shorten what the LSTM reads
def test_an_untrained_forecaster_predicts_the_naive_or_seasonal_forecast(
    anchor_season, conv_stride
):
    torch.manual_seed(3)
    keys = {"hidden_size": 8, "num_layers": 1, "forget_bias": 1.0}
    keys |= {"conv_layers": 2, "conv_channels": 4, "conv_kernel": 3}
    spec = ModelSpec(
        input_size=2,
        output_size=3,
        token_input=False,
        per_step=False,
        relative_inputs=[0],
        anchor_season=anchor_season,
        conv_stride=conv_stride,
        **asdict(model_config(**keys)),
    )
    x, lengths = torch.randn(4, 10, 2), torch.tensor([10, 9, 7, 10])
    expected = seasonal_anchor(x[:, :, [0]], lengths, 3, anchor_season)
    if anchor_season == 1:
        expected = last_valid_step(x, lengths, False)[:, [0]].unsqueeze(1).expand(-1, 3, -1)
    torch.testing.assert_close(LSTMNetwork(spec).eval()(x, lengths), expected.flatten(1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bidirectional_without_packing_equals_the_packed_network_on_random_lengths(seed):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 12, (7,), generator=generator)
    lengths[0] = 12
    x = torch.randn(7, 12, 3, generator=generator) * padding_mask(
        lengths, 12, torch.device("cpu")
    ).unsqueeze(2)
    for per_step in (True, False):
        unpacked = network(bidirectional=True, per_step=per_step)
        packed = network(bidirectional=True, per_step=per_step, packed=True)
        ours, theirs = unpacked(x, lengths), packed(x, lengths)
        if per_step:  # padding steps are the loss's to ignore
            real = padding_mask(lengths, 12, torch.device("cpu"))
            ours, theirs = ours[real], theirs[real]
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
