"""Speed benchmark: lstm-train's training code against the hand-written tutorial loop.

    python benchmarks/speed.py                 # the standard workload (a few minutes)
    python benchmarks/speed.py --sequences 2048 --rounds 3   # quicker
    python benchmarks/speed.py --device cuda   # on a GPU (data held on it, cuDNN)

Alternates, in one process, an epoch of (a) the twenty-line PyTorch loop and (b)
lstm-train's own training step (`lstm_cli.training.step.train_batch` with its model, optimizer,
clipping and metric sums) on the same data, and prints sequences per second and the ratio
b/a (median of the rounds, min and max); the first epoch of each is a warm-up. Then:
lstm-train in mixed precision against its float32, variable-length batches (padded,
packed, bucketed), prediction at batch 256, `--help` wall times, time to the first
optimizer step and peak memory of a default training run.
Figures vary with the machine's load: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lstm_cli.common.runtime import cpu_runs_bfloat16
from lstm_cli.config.validate import option_config
from lstm_cli.data.batching import batch_order
from lstm_cli.data.splits import SequenceSplit
from lstm_cli.model.network import LSTMNetwork, ModelSpec
from lstm_cli.training.evaluation import predict_outputs
from lstm_cli.training.losses import build_loss
from lstm_cli.training.optim import build_optimizer
from lstm_cli.training.precision import Precision
from lstm_cli.training.step import EpochSums, Update, train_batch

SCRIPT = Path(sys.executable).with_name("lstm-train")
INPUTS, HIDDEN, LAYERS, DROPOUT, STEPS, BATCH = 16, 128, 2, 0.1, 100, 64


def workload(
    count: int,
    variable: bool,
    device: torch.device,
    seed: int = 0,
    shape: tuple[int, int, int] = (20, STEPS, INPUTS),  # shortest, longest, inputs
) -> SequenceSplit:
    """Random sequences, held on `device` as lstm-train does with data.on_device=auto."""
    shortest, steps, inputs = shape
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, steps, inputs, generator=generator)
    lengths = (
        torch.randint(shortest, steps + 1, (count,), generator=generator)
        if variable
        else torch.full((count,), steps)
    )
    x *= (torch.arange(steps) < lengths.unsqueeze(1)).unsqueeze(-1)
    return SequenceSplit(x, lengths, torch.randn(count, 1, generator=generator)).to(device)


def finish(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TutorialModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(INPUTS, HIDDEN, LAYERS, dropout=DROPOUT, batch_first=True)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def tutorial_epoch(model: TutorialModel, optimizer, data: SequenceSplit) -> float:
    """The loop from every LSTM tutorial, over pre-built tensors (on the same device)."""
    started = time.perf_counter()
    model.train()
    order = torch.randperm(len(data), device=data.x.device)
    for first in range(0, len(data), BATCH):
        index = order[first : first + BATCH]
        x, y = data.x[index], data.y[index]
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    finish(data.x.device)
    return len(data) / (time.perf_counter() - started)


class Ours:
    """lstm-train's model, optimizer and precision for one benchmark case."""

    def __init__(
        self,
        device: torch.device,
        packed: bool = False,
        precision: str = "32",
        bidirectional: bool = False,
        shape: tuple[int, int, int] = (INPUTS, HIDDEN, LAYERS),  # inputs, hidden, layers
    ) -> None:
        inputs, hidden, layers = shape
        spec = ModelSpec(inputs, 1, False, False, hidden, layers, bidirectional, DROPOUT, 32)
        self.device = device
        self.model = LSTMNetwork(spec, packed=packed).to(device)
        optimizer = build_optimizer(
            option_config("optimizer", "adam", lr=1e-3), self.model.parameters()
        )
        self.update = Update(
            optimizer,
            option_config("clip", "norm", max_norm=1.0),
            Precision(precision, device),
            False,
        )

    def epoch(self, data: SequenceSplit, bucket: bool = False) -> float:
        """lstm-train's own step, as its loop runs it: batch order, batching by index,
        `train_batch`, device sums read once at the end."""
        started = time.perf_counter()
        order = batch_order(data.sequence_lengths(), BATCH, shuffle=True, bucket=bucket)
        sums = EpochSums.zeros(self.device)
        loss_fn = build_loss(option_config("loss", "mse"), "regression")
        self.model.train()
        for position, index in enumerate(order):
            batch = data.take(index).to(self.device)
            train_batch(self.model, batch, position, self.update, loss_fn, sums)
        sums.raise_if_halted()
        sums.stats()
        return len(data) / (time.perf_counter() - started)


def ratios(rounds: int, data: SequenceSplit, device: torch.device) -> tuple[list[float], ...]:
    torch.manual_seed(0)
    tutorial = TutorialModel().to(device)
    tutorial_optimizer = torch.optim.Adam(tutorial.parameters(), lr=1e-3)
    ours = Ours(device)
    tutorial_epoch(tutorial, tutorial_optimizer, data)  # warm-up
    ours.epoch(data)
    a, b = [], []
    for _ in range(rounds):
        a.append(tutorial_epoch(tutorial, tutorial_optimizer, data))
        b.append(ours.epoch(data))
    return a, b


def precisions(rounds: int, data: SequenceSplit, device: torch.device) -> dict[str, float]:
    """lstm-train's throughput per trainer.precision (median of rounds, after a warm-up)."""
    speeds = {}
    names = ["32", "bf16-mixed", "16-mixed"] if device.type == "cuda" else ["32", "bf16-mixed"]
    if device.type == "cpu" and not cpu_runs_bfloat16():  # no kernel: the CLI refuses it
        names.remove("bf16-mixed")
    for name in names:
        ours = Ours(device, precision=name)
        ours.epoch(data)
        speeds[name] = statistics.median(ours.epoch(data) for _ in range(rounds))
    return speeds


def variable_length(sequences: int, device: torch.device) -> dict[str, float]:
    data = workload(sequences, variable=True, device=device)
    speeds = {}
    for name, packed, bucket in (
        ("padded", False, False),
        ("packed", True, False),
        ("bucketed", False, True),
        ("packed+bucketed", True, True),
    ):
        ours = Ours(device, packed=packed)
        ours.epoch(data, bucket)  # warm-up
        speeds[name] = ours.epoch(data, bucket)
    return speeds


def bidirectional(
    rounds: int, sequences: int, device: torch.device
) -> tuple[dict[str, float], list[float]]:
    """One direction against two on a 12-channel set of 7-29 steps, with the default
    network size (model=small: 64 units, one layer) and bucketing: two directions are twice
    the work, so 0.5x is the most they can reach. (Two layers are more than twice: the
    second layer's input doubles too.) The cases alternate epoch by epoch, so that a change
    of the machine's pace between them shows in every case alike: the medians, and the
    ratio one direction / bidirectional of each round."""
    data = workload(sequences, variable=True, device=device, shape=(7, 29, 12))
    cases = {
        name: Ours(device, packed=packed, bidirectional=both, shape=(12, 64, 1))
        for name, both, packed in (
            ("one direction", False, False),
            ("bidirectional", True, False),
            ("bidirectional packed", True, True),
        )
    }
    for ours in cases.values():
        ours.epoch(data, bucket=True)  # warm-up
    measured: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, ours in cases.items():
            measured[name].append(ours.epoch(data, bucket=True))
    one, both = measured["one direction"], measured["bidirectional"]
    per_round = [x / y for x, y in zip(one, both, strict=True)]
    return {name: statistics.median(speeds) for name, speeds in measured.items()}, per_round


def prediction(rounds: int, sequences: int, device: torch.device) -> tuple[float, float, list]:
    """Alternating rounds of the hand-written inference loop and lstm-train's predict pass."""
    data = workload(sequences, variable=False, device=device)
    tutorial, ours = TutorialModel().to(device).eval(), Ours(device).model.eval()

    def hand_written() -> None:
        with torch.inference_mode():
            outputs = [tutorial(data.x[i : i + 256]).cpu() for i in range(0, len(data), 256)]
            torch.cat(outputs)

    def ours_predict() -> None:
        predict_outputs(ours, data, 256, device)

    def speed(run: Callable[[], None]) -> float:
        started = time.perf_counter()
        run()
        return len(data) / (time.perf_counter() - started)

    hand_written(), ours_predict()  # warm-up
    a, b = [], []
    for _ in range(rounds):
        a.append(speed(hand_written))
        b.append(speed(ours_predict))
    return statistics.median(a), statistics.median(b), [y / x for x, y in zip(a, b, strict=True)]


def wall_time(*args: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([str(SCRIPT), *args], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def default_run() -> tuple[float, float]:
    """Seconds from lstm-train's start (as its log says) to the first optimizer step, and
    peak RSS (MiB)."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([str(SCRIPT), "train"], cwd=scratch, check=True, capture_output=True)
        run_dir = Path(scratch) / "outputs/train/latest"
        log = (run_dir / "train.log").read_text()
        first_step = float(re.search(r"first optimizer step ([\d.]+) s after", log).group(1))
        results = json.loads((run_dir / "results.json").read_text())
    return first_step, results["peak_host_memory_mib"]


def relative(title: str, speeds: dict[str, float], base: str) -> str:
    cases = (f"{k} {v:.0f} seq/s ({v / speeds[base]:.2f}x {base})" for k, v in speeds.items())
    return f"{title}: " + ", ".join(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--skip-cli", action="store_true", help="skip --help and default run")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    device = torch.device(options.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    print(
        f"machine: {platform.machine()}, {platform.system()}, {gpu}, python "
        f"{platform.python_version()}, torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, device {device}, date {time.strftime('%Y-%m-%d')}"
    )
    print(
        f"workload: {options.sequences} sequences x {STEPS} steps x {INPUTS} inputs, hidden "
        f"{HIDDEN} x {LAYERS} layers, dropout {DROPOUT}, batch {BATCH}, Adam, MSE, clip 1.0"
    )
    data = workload(options.sequences, variable=False, device=device)
    a, b = ratios(options.rounds, data, device)
    per_round = [y / x for x, y in zip(a, b, strict=True)]
    print(
        f"training: hand-written {statistics.median(a):.0f} seq/s, lstm-train "
        f"{statistics.median(b):.0f} seq/s, ratio b/a median {statistics.median(per_round):.2f}"
        f" (min {min(per_round):.2f}, max {max(per_round):.2f}, {options.rounds} rounds)"
    )
    print(relative("precision", precisions(options.rounds, data, device), "32"))
    print(relative("variable lengths 20-100", variable_length(options.sequences, device), "padded"))
    lengths_7_29, fewer = bidirectional(options.rounds * 3, options.sequences, device)
    print(
        relative("12 channels, lengths 7-29, 64x1, bucketed", lengths_7_29, "one direction")
        + f"; one direction / bidirectional per round: median {statistics.median(fewer):.2f}x"
        f" (min {min(fewer):.2f}x, max {max(fewer):.2f}x, {len(fewer)} rounds)"
    )
    hand, ours, per_round = prediction(options.rounds * 3, options.sequences, device)
    print(
        f"prediction at batch 256: hand-written {hand:.0f} seq/s, lstm-train {ours:.0f} seq/s,"
        f" ratio median {statistics.median(per_round):.2f} (min {min(per_round):.2f},"
        f" max {max(per_round):.2f}, {len(per_round)} rounds)"
    )
    if options.skip_cli:
        return
    print(
        f"lstm-train --help {wall_time('--help'):.2f} s; lstm-train train --help "
        f"{wall_time('train', '--help'):.2f} s (median of 5)"
    )
    first_step, peak = default_run()
    print(
        f"default run: first optimizer step {first_step:.2f} s after start; peak RSS {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
