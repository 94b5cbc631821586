"""`data.streaming`: sequences read from disk batch by batch, equal to the in-memory data."""

from __future__ import annotations

import signal
import time

import pytest
import torch
from conftest import assert_clean_error, run_in_process
from test_real_size import all_batches, long_rows, sequences_config, write_rows
from test_resilience import assert_same_run, final_state, start, wait_for_checkpoint

from lstm_cli.common.distributed import World
from lstm_cli.common.errors import DataError
from lstm_cli.data import load_dataset
from lstm_cli.data.batching import SHARD_WINDOW, batch_order, epoch_order, read_ahead
from lstm_cli.data.streamed import StreamedSplit


def streamed(path, cache, **keys):
    return load_dataset(sequences_config(path, **keys), cache=cache, streaming=True)


def both_ways(path, cache, **keys):
    config = sequences_config(path, **keys)
    return load_dataset(config), load_dataset(config, cache=cache, streaming=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".feather"])
def test_streamed_batches_equal_the_in_memory_ones(tmp_path, suffix):
    path = tmp_path / f"s{suffix}"
    write_rows(path, long_rows(count=60))
    in_memory, from_disk = both_ways(path, tmp_path / "cache")
    assert isinstance(from_disk.train, StreamedSplit)
    assert from_disk.train.nbytes() == 0
    for split in ("train", "val", "test"):
        ours, theirs = (
            all_batches(getattr(from_disk, split)),
            all_batches(getattr(in_memory, split)),
        )
        torch.testing.assert_close(ours[0], theirs[0], rtol=0, atol=1e-6)  # scaled alike
        assert torch.equal(ours[1], theirs[1]) and torch.equal(ours[2], theirs[2])
    for name in ("offset", "scale"):
        torch.testing.assert_close(
            torch.tensor(from_disk.preprocessing["scaler"][name]),
            torch.tensor(in_memory.preprocessing["scaler"][name]),
        )


def test_regression_labels_and_a_separate_test_file_stream_too(tmp_path):
    rows = [(i, s, a, b, str(round(a * 3, 3))) for i, s, a, b, _ in long_rows(count=50)]
    fixed = []
    for row in rows:  # one label per sequence: the first row's
        first = next(r for r in rows if r[0] == row[0])
        fixed.append((*row[:4], first[4]))
    write_rows(tmp_path / "train.csv", fixed)
    write_rows(tmp_path / "test.csv", fixed[:90])
    keys = {"task": "regression", "test_path": str(tmp_path / "test.csv")}
    in_memory, from_disk = both_ways(tmp_path / "train.csv", tmp_path / "cache", **keys)
    ours, theirs = all_batches(from_disk.test), all_batches(in_memory.test)
    torch.testing.assert_close(ours[2], theirs[2])
    for name in ("offset", "scale"):
        assert from_disk.preprocessing["target_scaler"][name] == pytest.approx(
            in_memory.preprocessing["target_scaler"][name]
        )


def test_a_streamed_file_must_keep_each_sequence_together_and_in_step_order(tmp_path):
    rows = long_rows(count=6)
    split = next(i for i, row in enumerate(rows) if row[0] == "s2")
    scattered = rows[:split] + rows[split + 1 :] + rows[split : split + 1]
    write_rows(tmp_path / "scattered.csv", scattered)
    with pytest.raises(DataError, match=r"row \d+: sequence 's2' continues here after other"):
        load_dataset(
            sequences_config(tmp_path / "scattered.csv"), cache=tmp_path / "c", streaming=True
        )
    backwards = list(rows)
    backwards[1], backwards[2] = backwards[2], backwards[1]
    write_rows(tmp_path / "backwards.csv", backwards)
    with pytest.raises(DataError, match="row 3: steps go backwards within a sequence"):
        load_dataset(
            sequences_config(tmp_path / "backwards.csv"), cache=tmp_path / "c", streaming=True
        )


def test_streaming_without_the_cache_is_refused_before_any_work(tmp_path):
    write_rows(tmp_path / "s.csv", long_rows())
    args = ("dataset=csv_sequences", "dataset.path=s.csv", "dataset.id_column=id")
    result = run_in_process("train", *args, "data.streaming=true", "data.cache=false", cwd=tmp_path)
    assert_clean_error(result, 2, "data.streaming=true reads batches from the prepared-data cache")
    assert not (tmp_path / "outputs").exists()


def test_a_streamed_epoch_reads_shard_by_shard_and_covers_each_sequence_once():
    lengths = torch.randint(1, 50, (1000,), generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    order = batch_order(lengths, 16, shuffle=True, bucket=True, generator=generator, shard=40)
    seen = torch.cat(order)
    assert torch.equal(seen.sort().values, torch.arange(1000))
    window_sequences = SHARD_WINDOW * 40
    shards_in_flight, covered = set(), 0
    for batch in order:  # each stretch of the epoch stays within one window of shards
        shards_in_flight |= set((batch // 40).tolist())
        covered += len(batch)
        if covered % window_sequences == 0:
            assert len(shards_in_flight) <= SHARD_WINDOW
            shards_in_flight = set()


@pytest.mark.parametrize("ranks", [2, 3])
def test_under_torchrun_each_sequence_is_seen_once_per_epoch_across_ranks(tmp_path, ranks):
    write_rows(tmp_path / "s.csv", long_rows(count=90))
    split = streamed(tmp_path / "s.csv", tmp_path / "c").train

    def order(world=None):
        return epoch_order(split, 8, True, torch.Generator().manual_seed(0), world)

    whole = order()
    kept = [batch for batch in whole if len(batch) >= ranks]
    read = []
    for rank in range(ranks):
        shares = order(World(rank=rank, size=ranks))
        assert len(shares) == len(kept)  # every rank steps on every kept batch
        for (_, batch), share in zip(read_ahead(split, shares), shares, strict=True):
            assert torch.equal(batch.y, split.y[share])
            read += share.tolist()
    assert sorted(read) == sorted(torch.cat(kept).tolist())  # once each, across the ranks
    assert sorted(torch.cat(whole).tolist()) == list(range(len(split)))
    assert len(split) - len(read) < ranks  # at most a last batch smaller than the world


STREAMED = (
    "dataset=csv_sequences",
    "dataset.id_column=id",
    "data.streaming=true",
    "model=tiny",
    "trainer.max_epochs=6",
    "trainer.batch_size=4",
    "trainer.checkpoint_every_steps=5",
    "trainer.num_threads=1",
)


@pytest.mark.slow
def test_a_streamed_run_killed_and_resumed_is_bit_identical(tmp_path):
    write_rows(tmp_path / "s.csv", long_rows(count=300))
    args = (*STREAMED, f"dataset.path={tmp_path / 's.csv'}")
    for name in ("whole", "killed"):
        (tmp_path / name).mkdir()
    result = run_in_process("train", *args, cwd=tmp_path / "whole")
    assert result.returncode == 0, result.stderr
    expected = final_state((tmp_path / "whole/outputs/train/latest").resolve())
    process = start(tmp_path / "killed", *args)
    run_dir = wait_for_checkpoint(tmp_path / "killed", process)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before the kill: make it longer"
    result = run_in_process("train", *args, f"resume={run_dir}", cwd=tmp_path / "killed")
    assert result.returncode == 0, result.stderr
    assert "mapped from the cache" in (run_dir / "train.log").read_text()
    assert_same_run(run_dir, expected)
