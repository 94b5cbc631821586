"""A trained network in a form that runs without lstm-train: ONNX or TorchScript.

Packed sequences do not export, yet a bidirectional LSTM needs them on padded batches
(its backward direction would otherwise read the padding first). `ExportableNetwork` runs
each layer and direction as its own single-layer LSTM with the trained weights, and feeds
the backward direction each sequence reversed within its own length: the same results on
padded batches, from operations both formats carry.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lstm_cli.data.splits import Batch
from lstm_cli.model.network import LSTMNetwork

INPUT_NAMES = ["x", "lengths"]
OUTPUT_NAMES = ["y"]


class ExportableNetwork(LSTMNetwork):
    """LSTMNetwork without packing; built from a trained one with `of`."""

    @classmethod
    def of(cls, trained: LSTMNetwork) -> ExportableNetwork:
        network = cls(trained.spec)
        network.load_state_dict(trained.state_dict())
        network.directions = nn.ModuleList(
            _single_layer(trained.lstm, layer, suffix)
            for layer in range(trained.spec.num_layers)
            for suffix in (("", "_reverse") if trained.spec.bidirectional else ("",))
        )
        del network.lstm  # its weights now live in `directions`
        return network.eval()

    def _run_lstm(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        per_layer = 2 if self.spec.bidirectional else 1
        for layer in range(self.spec.num_layers):
            forward, _ = self.directions[layer * per_layer](inputs)
            if per_layer == 1:
                inputs = forward
                continue
            reversed_inputs = reverse_within_lengths(inputs, lengths)
            backward, _ = self.directions[layer * per_layer + 1](reversed_inputs)
            inputs = torch.cat([forward, reverse_within_lengths(backward, lengths)], dim=2)
        return inputs


def reverse_within_lengths(values: Tensor, lengths: Tensor) -> Tensor:
    """[B, T, F] with each sequence's first `length` steps reversed; padding stays behind.

    Step t of sequence b reads step length_b - 1 - t; past the length it reads itself.
    """
    steps = torch.arange(values.shape[1], device=values.device).unsqueeze(0)
    ends = lengths.to(values.device).unsqueeze(1)
    index = torch.where(steps < ends, ends - 1 - steps, steps)
    return values.gather(1, index.unsqueeze(2).expand(-1, -1, values.shape[2]))


def _single_layer(lstm: nn.LSTM, layer: int, suffix: str) -> nn.LSTM:
    """One direction of one layer of `lstm` as a standalone single-layer LSTM."""
    weight = getattr(lstm, f"weight_ih_l{layer}{suffix}")
    single = nn.LSTM(weight.shape[1], lstm.hidden_size, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(single, f"{name}_l0").copy_(getattr(lstm, f"{name}_l{layer}{suffix}"))
    return single


@dataclass
class ExportedModel:
    """The exported file's bytes, its interface, and its distance from PyTorch's outputs."""

    body: bytes
    max_difference: float | None  # None: no runtime here to check it (onnxruntime missing)
    inputs: dict[str, list[str]]
    outputs: dict[str, list[str]]


def export(network: LSTMNetwork, trace: Batch, check: Batch, fmt: str) -> ExportedModel:
    """`network` as `fmt` (onnx or torchscript), traced on `trace`, then run on `check`.

    The check uses another batch than the trace, so a size fixed by mistake shows.
    """
    exportable = ExportableNetwork.of(network.cpu())
    with torch.inference_mode():
        expected = network(check.x, check.lengths)
    with warnings.catch_warnings():  # both exporters warn about their own futures
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            body = _torchscript_bytes(exportable, trace.x, trace.lengths)
            reloaded = torch.jit.load(io.BytesIO(body))
            difference = _difference(reloaded(check.x, check.lengths), expected)
        else:
            body = _onnx_bytes(exportable, trace.x, trace.lengths)
            difference = _onnx_difference(body, check.x, check.lengths, expected)
    features = ["features"] if check.x.dim() == 3 else []
    time = ["time"] if network.spec.per_step else []
    inputs = {"x": ["batch", "time", *features], "lengths": ["batch"]}
    if fmt == "onnx" and not reads_lengths(network):
        del inputs["lengths"]  # the ONNX exporter drops an input the graph never reads
    return ExportedModel(body, difference, inputs, {"y": ["batch", *time, "outputs"]})


def reads_lengths(network: LSTMNetwork) -> bool:
    """A per-step, one-directional model never looks at the lengths (padding comes last)."""
    return not network.spec.per_step or network.spec.bidirectional


def _torchscript_bytes(network: ExportableNetwork, x: Tensor, lengths: Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(network, (x, lengths)), buffer)
    return buffer.getvalue()


def _onnx_bytes(network: ExportableNetwork, x: Tensor, lengths: Tensor) -> bytes:
    """The TorchScript-based exporter: it maps nn.LSTM to ONNX's LSTM operator with a free
    time axis (the dynamo exporter, torch 2.13, fixed the time steps to the sample's)."""
    output_axes = {0: "batch", 1: "time"} if network.spec.per_step else {0: "batch"}
    buffer = io.BytesIO()
    torch.onnx.export(
        network,
        (x, lengths),
        buffer,
        input_names=INPUT_NAMES,
        output_names=OUTPUT_NAMES,
        dynamic_axes={"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "y": output_axes},
        dynamo=False,
    )
    return buffer.getvalue()


def _onnx_difference(body: bytes, x: Tensor, lengths: Tensor, expected: Tensor) -> float | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(body, providers=["CPUExecutionProvider"])
    given = {"x": x.numpy(), "lengths": lengths.numpy()}
    (outputs,) = session.run(None, {i.name: given[i.name] for i in session.get_inputs()})
    return _difference(torch.from_numpy(outputs), expected)


def _difference(actual: Tensor, expected: Tensor) -> float:
    return float((actual.float() - expected.float()).abs().max())
