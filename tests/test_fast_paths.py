"""The fast paths give the plain path's results: train_batch, bucketing, mixed precision."""

from __future__ import annotations

import copy
import types

import pytest
import torch
from conftest import assert_clean_error, read_json
from torch import nn

from lstm_cli.common import runtime
from lstm_cli.common.runtime import cpu_runs_bfloat16
from lstm_cli.config.validate import option_config
from lstm_cli.data.batching import batch_order
from lstm_cli.data.placement import keeps_data_on_device
from lstm_cli.data.splits import SequenceSplit
from lstm_cli.model.network import LSTMNetwork, ModelSpec
from lstm_cli.training.losses import build_loss
from lstm_cli.training.precision import Precision
from lstm_cli.training.step import EpochSums, NonFiniteGradient, Update, train_batch

CPU = torch.device("cpu")
CLIP = option_config("clip", "norm", max_norm=1.0)


def variable_lengths(count: int = 96) -> SequenceSplit:
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 13, (count,), generator=generator)
    x = torch.randn(count, 12, 4, generator=generator)
    x *= (torch.arange(12) < lengths.unsqueeze(1)).unsqueeze(-1)
    return SequenceSplit(x, lengths, torch.randn(count, 1, generator=generator))


def model() -> LSTMNetwork:
    torch.manual_seed(0)
    spec = ModelSpec(4, 1, False, False, 16, 2, False, 0.0, 8)
    return LSTMNetwork(spec)


def train_batches(
    net: nn.Module, data: SequenceSplit, order: list[torch.Tensor], update: Update, sums: EpochSums
) -> list[float]:
    """What the loop does with an epoch's batches: `train_batch` on each, in order."""
    net.train()
    loss_fn = build_loss(option_config("loss", "mse"), "regression")
    losses = []
    for position, index in enumerate(order):
        loss, _ = train_batch(net, data.take(index), position, update, loss_fn, sums)
        losses.append(loss.item())
    sums.raise_if_halted()
    return losses


def run_train_batches(
    net: nn.Module, data: SequenceSplit, order: list[torch.Tensor], precision: str = "32"
) -> list[float]:
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    update = Update(
        optimizer, option_config("clip", "norm", max_norm=1.0), Precision(precision, CPU), False
    )
    return train_batches(net, data, order, update, EpochSums.zeros(CPU))


def test_train_batch_matches_the_plain_loop_loss_for_loss_and_weight_for_weight():
    data = variable_lengths()
    order = batch_order(data.lengths, 16, shuffle=True, bucket=True)
    ours, plain = model(), model()
    our_losses = run_train_batches(ours, data, order)
    optimizer = torch.optim.Adam(plain.parameters(), lr=1e-2)
    plain_losses = []
    for index in order:
        batch = data.take(index)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(plain(batch.x, batch.lengths), batch.y)
        loss.backward()
        nn.utils.clip_grad_norm_(plain.parameters(), 1.0)
        optimizer.step()
        plain_losses.append(loss.item())
    assert our_losses == plain_losses
    for mine, theirs in zip(ours.parameters(), plain.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_bucketed_batches_give_every_sequence_the_loss_it_has_alone():
    """Bucketing only regroups sequences; each one's loss is unchanged (and padding shrinks)."""
    data, net = variable_lengths(), model().eval()

    def per_sequence_losses(bucket: bool) -> tuple[torch.Tensor, int]:
        losses, padded_steps = torch.zeros(len(data)), 0
        with torch.inference_mode():
            for index in batch_order(data.lengths, 16, shuffle=True, bucket=bucket):
                batch = data.take(index)
                predicted = net(batch.x, batch.lengths)
                losses[index] = ((predicted - batch.y) ** 2).squeeze(1)
                padded_steps += batch.x.shape[0] * batch.x.shape[1]
        return losses, padded_steps

    bucketed, bucketed_steps = per_sequence_losses(bucket=True)
    padded, padded_steps = per_sequence_losses(bucket=False)
    torch.testing.assert_close(bucketed, padded, rtol=1e-5, atol=1e-6)
    assert bucketed_steps < padded_steps


NO_BF16 = pytest.mark.skipif(not cpu_runs_bfloat16(), reason="no bfloat16 LSTM on this CPU")


@NO_BF16
def test_bf16_mixed_precision_follows_the_float32_losses():
    data = variable_lengths()
    order = batch_order(data.lengths, 16, shuffle=True, bucket=True)
    full = run_train_batches(model(), data, order)
    mixed = run_train_batches(model(), data, order, precision="bf16-mixed")
    assert full != mixed  # the lower precision really ran
    torch.testing.assert_close(torch.tensor(mixed), torch.tensor(full), rtol=0.05, atol=0.01)


@pytest.mark.parametrize(
    ("choice", "device", "data_bytes", "free_bytes", "kept"),
    [
        ("auto", "cuda", 1_000, 10_000, True),
        ("auto", "cuda", 5_000, 10_000, False),  # over a quarter of free memory
        ("always", "cuda", 50_000, 10_000, True),
        ("never", "cuda", 1, 10_000, False),
        ("always", "cpu", 1, 10_000, False),
    ],
)
def test_data_stays_on_the_gpu_only_when_asked_and_it_fits(
    choice, device, data_bytes, free_bytes, kept
):
    assert keeps_data_on_device(choice, device, data_bytes, free_bytes) is kept


def test_a_split_moved_to_a_device_hands_out_the_same_batches():
    data = variable_lengths()
    index = torch.tensor([5, 0, 17])
    moved = copy.deepcopy(data).to(CPU).take(index)
    original = data.take(index)
    assert torch.equal(moved.x, original.x) and torch.equal(moved.y, original.y)


def test_float16_on_the_cpu_is_a_config_error_before_any_work(tmp_path, train):
    result = train("trainer.precision=16-mixed", "trainer.device=cpu")
    assert_clean_error(result, 2, "trainer.precision=16-mixed", "bf16-mixed")
    assert not (tmp_path / "outputs").exists()


def test_a_bf16_mixed_run_trains_and_records_its_precision(tmp_path, train):
    """Where the CPU has no bfloat16 LSTM kernel (an AMD EPYC without AVX-512, say), the
    run is refused before any work instead of failing at its first step."""
    result = train("dataset=sine", "trainer.max_epochs=2", "trainer.precision=bf16-mixed")
    if not cpu_runs_bfloat16():
        assert_clean_error(result, 2, "trainer.precision=bf16-mixed", "trainer.precision=32")
        assert not (tmp_path / "outputs").exists()
        return
    assert result.returncode == 0, result.stderr
    results = read_json(tmp_path / "outputs/train/latest/results.json")
    assert all(value == value for value in results["test"].values())  # no NaN
    assert (
        "precision: bf16-mixed"
        in (tmp_path / "outputs/train/latest/.hydra/config.yaml").read_text()
    )


def test_precision_32_may_be_typed_as_a_number(cli):
    result = cli("train", "trainer.precision=32", "--cfg", "job")
    assert result.returncode == 0, result.stderr


def poisoned(data: SequenceSplit, order: list[torch.Tensor], batch: int) -> SequenceSplit:
    """`data` with one NaN input in the `batch`-th batch of `order` (1-based)."""
    bad = copy.deepcopy(data)
    bad.x[order[batch - 1][0], 0, 0] = float("nan")
    return bad


def train_with(
    fused: bool, data: SequenceSplit, order: list[torch.Tensor], skip: bool
) -> tuple[nn.Module, torch.optim.Optimizer, EpochSums, int]:
    """The trained network, its optimizer and sums, and the batch that halted it (0: none)."""
    net = model()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, fused=fused or None)
    update = Update(
        optimizer, option_config("clip", "norm", max_norm=1.0), Precision("32", CPU), skip
    )
    sums = EpochSums.zeros(CPU)
    try:
        train_batches(net, data, order, update, sums)
    except NonFiniteGradient as err:
        return net, optimizer, sums, err.args[0]
    return net, optimizer, sums, 0


@pytest.mark.parametrize("fused", [True, False], ids=["device-guard", "host-guard"])
def test_a_nonfinite_batch_stops_with_the_weights_before_it(fused):
    data = variable_lengths()
    order = batch_order(data.lengths, 16, shuffle=False, bucket=False)
    stopped, optimizer, _, halted_at = train_with(fused, poisoned(data, order, 3), order, False)
    assert update_guard(optimizer) is fused
    assert halted_at == 3
    before, *_ = train_with(fused, data, order[:2], skip=False)
    for mine, theirs in zip(stopped.parameters(), before.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    assert all(int(state["step"]) == 2 for state in optimizer.state.values())


@pytest.mark.parametrize("fused", [True, False], ids=["device-guard", "host-guard"])
def test_a_skipped_nonfinite_batch_is_as_if_it_were_not_there(fused):
    data = variable_lengths()
    order = batch_order(data.lengths, 16, shuffle=False, bucket=False)
    skipping, _, sums, _ = train_with(fused, poisoned(data, order, 3), order, skip=True)
    without, _, clean_sums, _ = train_with(fused, data, order[:2] + order[3:], skip=True)
    for mine, theirs in zip(skipping.parameters(), without.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    assert sums.stats()["skipped_batches"] == 1.0
    assert sums.stats()["train/loss"] == pytest.approx(clean_sums.stats()["train/loss"])


def update_guard(optimizer: torch.optim.Optimizer) -> bool:
    return Update(optimizer, None, Precision("32", CPU), False).guards_on_device


def test_num_threads_zero_divides_the_cores_among_the_local_ranks(monkeypatch):
    """torchrun --nproc-per-node=2 on 8 cores: 4 threads each, not 8 (oversubscribed)."""
    monkeypatch.setattr(runtime, "available_cores", lambda: 8)
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets when it is unset
        assert runtime.set_threads(0) == 4
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own choice wins
        assert runtime.set_threads(0) == 3
        assert runtime.set_threads(2) == 2  # and trainer.num_threads over both
        monkeypatch.delenv("LOCAL_WORLD_SIZE")
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert runtime.set_threads(0) == 8
    finally:
        torch.set_num_threads(before)


def test_onecycle_climbs_to_its_peak_then_falls_to_zero_by_optimizer_step():
    """Per step, not per epoch: the epoch's end leaves it where the steps took it."""
    from lstm_cli.training.optim import build_scheduler, step_scheduler

    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.01)
    cfg = option_config("scheduler", "onecycle", steps=None, warmup=0.1, peak=3.0)
    trainer = types.SimpleNamespace(max_epochs=5, mode="min", min_steps=100)
    scheduler = build_scheduler(cfg, optimizer, trainer)
    rates = []
    for _ in range(120):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        step_scheduler(scheduler, 0.0)  # an epoch end: no move
    assert rates[0] == pytest.approx(0.01) and rates[10] == pytest.approx(0.03)
    assert rates[:11] == sorted(rates[:11]) and rates[10:101] == sorted(rates[10:101], reverse=True)
    assert rates[100] == pytest.approx(0.0, abs=1e-12) and max(rates[100:]) == rates[100]


def test_onecycle_without_a_length_is_a_config_error_before_any_work(tmp_path, train):
    result = train("scheduler=onecycle", "trainer.min_steps=0")
    assert_clean_error(result, 2, "scheduler.steps", "trainer.min_steps")
    assert not (tmp_path / "outputs").exists()
