"""Speed benchmark: lstm-train's training code against the hand-written tutorial loop.

    python benchmarks/speed.py                 # the standard workload (a few minutes)
    python benchmarks/speed.py --sequences 2048 --rounds 3   # quicker

Alternates, in one process, an epoch of (a) the twenty-line PyTorch loop and (b)
lstm-train's own training step (`lstm_cli.engine.train_steps` with its model, optimizer,
clipping and metric sums) on the same data, and prints sequences per second and the ratio
b/a (median of the rounds, min and max); the first epoch of each is a warm-up. Then:
variable-length batches (padded, packed, bucketed), prediction at batch 256, `--help`
wall times, time to the first optimizer step and peak memory of a default training run.
Figures vary with the machine's load: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from lstm_cli.config.schema import AdamConfig, ClipNormConfig, RegressionLossConfig
from lstm_cli.data.batching import batch_order
from lstm_cli.data.splits import SequenceSplit
from lstm_cli.engine import EpochSums, predict_outputs, train_steps
from lstm_cli.losses import build_loss
from lstm_cli.model import LSTMNetwork, ModelSpec
from lstm_cli.optim import build_optimizer

SCRIPT = Path(sys.executable).with_name("lstm-train")
INPUTS, HIDDEN, LAYERS, DROPOUT, STEPS, BATCH = 16, 128, 2, 0.1, 100, 64


def workload(count: int, variable: bool, seed: int = 0) -> SequenceSplit:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, STEPS, INPUTS, generator=generator)
    lengths = (
        torch.randint(20, STEPS + 1, (count,), generator=generator)
        if variable
        else torch.full((count,), STEPS)
    )
    x *= (torch.arange(STEPS) < lengths.unsqueeze(1)).unsqueeze(-1)
    return SequenceSplit(x, lengths, torch.randn(count, 1, generator=generator))


class TutorialModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(INPUTS, HIDDEN, LAYERS, dropout=DROPOUT, batch_first=True)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def tutorial_epoch(model: TutorialModel, optimizer, data: SequenceSplit) -> float:
    """The loop from every LSTM tutorial, over pre-built tensors."""
    started = time.perf_counter()
    model.train()
    order = torch.randperm(len(data))
    for first in range(0, len(data), BATCH):
        index = order[first : first + BATCH]
        x, y = data.x[index], data.y[index]
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return len(data) / (time.perf_counter() - started)


def lstm_train_model(packed: bool = False) -> LSTMNetwork:
    spec = ModelSpec(INPUTS, 1, False, False, HIDDEN, LAYERS, False, DROPOUT, 32)
    return LSTMNetwork(spec, packed=packed)


def lstm_train_epoch(model, optimizer, data: SequenceSplit, bucket: bool = False) -> float:
    """lstm-train's own step: batch order, batching by index, train_steps, device sums."""
    started = time.perf_counter()
    order = batch_order(data.sequence_lengths(), BATCH, shuffle=True, bucket=bucket)
    sums = EpochSums.zeros(torch.device("cpu"))
    train_steps(
        model,
        data,
        order,
        0,
        optimizer,
        build_loss(RegressionLossConfig(), "regression"),
        ClipNormConfig(max_norm=1.0),
        False,
        sums,
        torch.device("cpu"),
        lambda done, loss, sequences: False,
    )
    sums.stats()
    return len(data) / (time.perf_counter() - started)


def ratios(rounds: int, sequences: int) -> tuple[list[float], list[float]]:
    data = workload(sequences, variable=False)
    torch.manual_seed(0)
    tutorial = TutorialModel()
    tutorial_optimizer = torch.optim.Adam(tutorial.parameters(), lr=1e-3)
    ours = lstm_train_model()
    our_optimizer = build_optimizer(AdamConfig(lr=1e-3), ours.parameters())
    tutorial_epoch(tutorial, tutorial_optimizer, data)  # warm-up
    lstm_train_epoch(ours, our_optimizer, data)
    a, b = [], []
    for _ in range(rounds):
        a.append(tutorial_epoch(tutorial, tutorial_optimizer, data))
        b.append(lstm_train_epoch(ours, our_optimizer, data))
    return a, b


def variable_length(sequences: int) -> dict[str, float]:
    data = workload(sequences, variable=True)
    speeds = {}
    for name, packed, bucket in (
        ("padded", False, False),
        ("packed", True, False),
        ("bucketed", False, True),
    ):
        model = lstm_train_model(packed)
        optimizer = build_optimizer(AdamConfig(lr=1e-3), model.parameters())
        lstm_train_epoch(model, optimizer, data, bucket)  # warm-up
        speeds[name] = lstm_train_epoch(model, optimizer, data, bucket)
    return speeds


def prediction(sequences: int) -> tuple[float, float]:
    data = workload(sequences, variable=False)
    tutorial, ours = TutorialModel().eval(), lstm_train_model().eval()

    def hand_written() -> None:
        with torch.inference_mode():
            for first in range(0, len(data), 256):
                tutorial(data.x[first : first + 256])

    def ours_predict() -> None:
        predict_outputs(ours, data, 256, torch.device("cpu"))

    results = []
    for run in (hand_written, ours_predict):
        run()
        started = time.perf_counter()
        run()
        results.append(len(data) / (time.perf_counter() - started))
    return results[0], results[1]


def wall_time(*args: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([str(SCRIPT), *args], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def default_run() -> tuple[float, float]:
    """Seconds from process start to the first optimizer step, and peak RSS (MiB)."""
    with tempfile.TemporaryDirectory() as scratch:
        started = time.time()
        subprocess.run([str(SCRIPT), "train"], cwd=scratch, check=True, capture_output=True)
        log = (Path(scratch) / "outputs/train/latest/train.log").read_text()
        first_step = float(re.search(r"first optimizer step at ([\d.]+)", log).group(1))
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return first_step - started, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    print(
        f"machine: {platform.machine()}, {platform.system()}, python "
        f"{platform.python_version()}, torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, date {time.strftime('%Y-%m-%d')}"
    )
    print(
        f"workload: {options.sequences} sequences x {STEPS} steps x {INPUTS} inputs, hidden "
        f"{HIDDEN} x {LAYERS} layers, dropout {DROPOUT}, batch {BATCH}, Adam, MSE, clip 1.0"
    )
    a, b = ratios(options.rounds, options.sequences)
    per_round = [y / x for x, y in zip(a, b, strict=True)]
    print(
        f"training: hand-written {statistics.median(a):.0f} seq/s, lstm-train "
        f"{statistics.median(b):.0f} seq/s, ratio b/a median {statistics.median(per_round):.2f}"
        f" (min {min(per_round):.2f}, max {max(per_round):.2f}, {options.rounds} rounds)"
    )
    speeds = variable_length(options.sequences)
    print(
        "variable lengths 20-100: "
        + ", ".join(
            f"{name} {speed:.0f} seq/s ({speed / speeds['padded']:.2f}x padded)"
            for name, speed in speeds.items()
        )
    )
    hand, ours = prediction(options.sequences)
    print(
        f"prediction at batch 256: hand-written {hand:.0f} seq/s, lstm-train {ours:.0f} seq/s,"
        f" ratio {ours / hand:.2f}"
    )
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
