"""`trainer.tbptt`: state carried across chunks equals one long pass, gradients stop at the
chunk boundary, parallel text streams continue row by row, and a run killed mid-stream
resumes bit-identical."""

from __future__ import annotations

import itertools
import random
import signal
import time
from dataclasses import asdict

import pytest
import torch
from conftest import assert_clean_error, model_config, read_json, run_in_process
from test_resilience import assert_same_run, final_state, start, wait_for_checkpoint

from lstm_cli.data.batching import padding_mask
from lstm_cli.data.splits import StreamSplit, WindowSplit
from lstm_cli.model.network import CarriedState, LSTMNetwork, ModelSpec

CPU = torch.device("cpu")


def network(per_step: bool, tbptt: int | None = None, **model: object) -> LSTMNetwork:
    torch.manual_seed(0)
    keys = {"hidden_size": 8, "num_layers": 2, "dropout": 0.0, "forget_bias": 1.0}
    keys |= {"conv_layers": 0, "pooling": ["mean", "max", "last"]} | model
    spec = ModelSpec(3, 2, False, per_step, **asdict(model_config(**keys)))
    return LSTMNetwork(spec, tbptt=tbptt)


def test_state_carried_across_chunks_equals_one_long_pass():
    model = network(per_step=True).eval()
    x = torch.randn(2, 12, 3)
    whole = model(x, torch.full((2,), 12))
    carried = CarriedState()
    chunks = [model(x[:, i : i + 4], torch.full((2,), 4), carried) for i in range(0, 12, 4)]
    torch.testing.assert_close(torch.cat(chunks, dim=1), whole, rtol=1e-5, atol=1e-6)


def test_the_gradient_stops_at_the_chunk_boundary():
    model = network(per_step=True).train()
    first, second = torch.randn(1, 4, 3, requires_grad=True), torch.randn(1, 4, 3)
    carried = CarriedState()
    model(first, torch.tensor([4]), carried)
    assert not carried.state[0].requires_grad  # detached: the next chunk's graph ends here
    model(second, torch.tensor([4]), carried).sum().backward()
    assert first.grad is None


@pytest.mark.parametrize("conv_layers", [0, 2])
def test_truncated_sequences_give_the_outputs_of_one_whole_pass(conv_layers):
    lengths = torch.tensor([12, 9, 3, 7])
    x = torch.randn(4, 12, 3) * padding_mask(lengths, 12, CPU).unsqueeze(2)
    model = network(per_step=False, tbptt=4, conv_layers=conv_layers, conv_channels=4)
    model.train()
    truncated = model(x, lengths)
    model.tbptt = None
    torch.testing.assert_close(truncated, model(x, lengths), rtol=1e-5, atol=1e-6)


def test_a_sequence_gradient_reaches_its_last_tbptt_steps_only():
    lengths = torch.tensor([12, 9, 3, 7])
    x = (torch.randn(4, 12, 3) * padding_mask(lengths, 12, CPU).unsqueeze(2)).requires_grad_()
    network(per_step=False, tbptt=4).train()(x, lengths).sum().backward()
    reached = x.grad.abs().sum(2) > 0
    steps = torch.arange(12)
    expected = (steps >= (lengths - 4).clamp_min(0).unsqueeze(1)) & (steps < lengths.unsqueeze(1))
    assert torch.equal(reached, expected)


@pytest.mark.parametrize(("windows", "streams"), [(12, 3), (10, 4), (3, 5)])
def test_parallel_streams_read_every_window_once_row_after_row(windows, streams):
    ids = torch.arange(windows * 5 + 1)
    split = StreamSplit(WindowSplit(ids, ids, torch.arange(windows) * 5, 5, 1, 5, False), streams)
    order = split.order()
    assert sorted(torch.cat(order).tolist()) == list(range(windows))
    for before, after in itertools.pairwise(order):
        assert len(after) <= len(before)  # a stream that ends leaves the last rows
        assert torch.equal(after, before[: len(after)] + 1)  # row i continues row i


def write_text(path, characters: int = 24_000) -> None:
    words = ["in", "the", "beginning", "was", "word", "and", "light", "shone", "darkness"]
    rng = random.Random(0)
    text = []
    while sum(map(len, text)) < characters:
        text.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + ".\n")
    path.write_text("".join(text))


TEXT = (
    "dataset=text",
    "dataset.path=corpus.txt",
    "trainer.tbptt=20",
    "trainer.batch_size=8",
    "model=tiny",
    "trainer.num_threads=1",
)


def test_text_trains_as_streams_and_evaluate_carries_the_state_as_training_did(tmp_path):
    write_text(tmp_path / "corpus.txt")
    result = run_in_process("train", *TEXT, "trainer.max_epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trained = read_json(tmp_path / "outputs/train/latest/results.json")
    assert "8 parallel streams, state carried (trainer.tbptt)" in result.stdout
    assert trained["test"]["test/bpc"] < trained["baselines"]["unigram"]["test/bpc"]
    evaluated = run_in_process("evaluate", "run_dir=outputs/train/latest", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    scores = read_json(next((tmp_path / "outputs/evaluate").glob("2*/metrics.json")))
    assert scores["metrics"]["test/bpc"] == pytest.approx(trained["test"]["test/bpc"], rel=1e-5)


@pytest.mark.parametrize(
    ("setting", "culprit"),
    [
        ("model.bidirectional=true", "model.bidirectional=true"),
        ("dataset=sine", "dataset.window"),
    ],
)
def test_tbptt_where_no_state_can_carry_is_refused_before_any_work(tmp_path, setting, culprit):
    result = run_in_process("train", "trainer.tbptt=10", setting, cwd=tmp_path)
    assert_clean_error(result, 2, "trainer.tbptt=10", culprit)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_a_run_killed_mid_stream_resumes_bit_identical(tmp_path):
    args = (*TEXT, "trainer.max_epochs=6", "trainer.checkpoint_every_steps=7")
    for name in ("whole", "killed"):
        (tmp_path / name).mkdir()
        write_text(tmp_path / name / "corpus.txt")
    result = run_in_process("train", *args, cwd=tmp_path / "whole")
    assert result.returncode == 0, result.stderr
    expected = final_state((tmp_path / "whole/outputs/train/latest").resolve())
    process = start(tmp_path / "killed", *args)
    run_dir = wait_for_checkpoint(tmp_path / "killed", process)
    deadline = time.monotonic() + 60
    while torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["batch_in_epoch"] == 0:
        assert time.monotonic() < deadline and process.poll() is None, "no mid-epoch checkpoint"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before the kill: make it longer"
    saved = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    # mid-epoch, the streams' (h, c) travel with the checkpoint (unless an epoch just ended)
    assert saved["batch_in_epoch"] == 0 or len(saved["carried_state"]) == 2
    result = run_in_process("train", *args, f"resume={run_dir}", cwd=tmp_path / "killed")
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, expected)
