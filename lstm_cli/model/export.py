"""A trained network in a form that runs without lstm-train: ONNX or TorchScript.

Packed sequences do not export. `ExportableNetwork` runs a bidirectional LSTM the way the
network does on padded batches, each direction apart and the backward one on each
sequence reversed within its own length: the same results, from operations both formats
carry.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from lstm_cli.data.splits import Batch
from lstm_cli.model.averaged import AveragedNetwork, Network
from lstm_cli.model.network import LSTMNetwork

INPUT_NAMES = ["x", "lengths"]
OUTPUT_NAMES = ["y"]


class ExportableNetwork(LSTMNetwork):
    """LSTMNetwork that never packs and, bidirectional, always runs its directions apart:
    a traced graph keeps the path its example batch took, padded or not."""

    @classmethod
    def of(cls, trained: LSTMNetwork) -> ExportableNetwork:
        network = cls(trained.spec)
        network.load_state_dict(trained.state_dict())
        return network.eval()

    def _run_lstm(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        if self.spec.bidirectional:
            return self._run_directions(inputs, lengths)
        return super()._run_lstm(inputs, lengths)


@dataclass
class ExportedModel:
    """The exported file's bytes, its interface, and its distance from PyTorch's outputs."""

    body: bytes
    max_difference: float | None  # None: no runtime here to check it (onnxruntime missing)
    inputs: dict[str, list[str]]
    outputs: dict[str, list[str]]


def export(network: Network, trace: Batch, check: Batch, fmt: str) -> ExportedModel:
    """`network` as `fmt` (onnx or torchscript), traced on `trace`, then run on `check`.

    The check uses another batch than the trace, so a size fixed by mistake shows.
    """
    exportable = _exportable(network.cpu())
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


def reads_lengths(network: Network) -> bool:
    """A per-step, one-directional model never looks at the lengths (padding comes last)."""
    return not network.spec.per_step or network.spec.bidirectional


def _exportable(network: Network) -> ExportableNetwork | AveragedNetwork:
    """The network, or each member of an averaged one, as `ExportableNetwork`."""
    if isinstance(network, AveragedNetwork):
        members = [ExportableNetwork.of(member) for member in network.members]
        return AveragedNetwork(members, network.spec).eval()
    return ExportableNetwork.of(network)


def _torchscript_bytes(
    network: ExportableNetwork | AveragedNetwork, x: Tensor, lengths: Tensor
) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(network, (x, lengths)), buffer)
    return buffer.getvalue()


def _onnx_bytes(network: ExportableNetwork | AveragedNetwork, x: Tensor, lengths: Tensor) -> bytes:
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
