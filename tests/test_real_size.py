"""Data of real size (issue 14): Arrow reading in every format, ragged storage, the cache."""

from __future__ import annotations

import errno
import logging
import shutil
import subprocess
import sys
import threading
from subprocess import PIPE

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import torch
from conftest import run_in_process

from lstm_cli.common.errors import DataError
from lstm_cli.config.validate import option_config
from lstm_cli.data import cache as data_cache
from lstm_cli.data import csv_files, load_dataset, splits, table
from lstm_cli.data.splits import RaggedSplit, SequenceSplit


def long_rows(count: int = 40, seed: int = 0) -> list[tuple[str, int, float, float, str]]:
    """`id, step, a, b, label` rows of `count` sequences of 3-12 steps."""
    generator = np.random.default_rng(seed)
    rows = []
    for n in range(count):
        for step in range(int(generator.integers(3, 13))):
            a, b = generator.normal(size=2).round(4)
            rows.append((f"s{n}", step, float(a), float(b), "xy"[n % 2]))
    return rows


def write_rows(path, rows) -> None:
    if path.suffix == ".csv":
        lines = "".join(",".join(str(v) for v in row) + "\n" for row in rows)
        path.write_text("id,step,a,b,label\n" + lines)
        return
    columns = dict(zip(("id", "step", "a", "b", "label"), zip(*rows, strict=True), strict=True))
    table = pa.table({name: list(values) for name, values in columns.items()})
    (pq.write_table if path.suffix == ".parquet" else feather.write_feather)(table, path)


def sequences_config(path, **keys):
    return option_config("dataset", "csv_sequences", path=str(path), id_column="id", **keys)


def all_batches(split) -> list[torch.Tensor]:
    batch = split.take(torch.arange(len(split)))
    return [batch.x, batch.lengths, batch.y]


def assert_same_data(one, other) -> None:
    for split in ("train", "val", "test"):
        for ours, theirs in zip(
            all_batches(getattr(one, split)), all_batches(getattr(other, split)), strict=True
        ):
            assert torch.equal(ours, theirs), split
    assert one.preprocessing == other.preprocessing


@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_parquet_and_feather_read_like_the_same_csv(tmp_path, suffix):
    rows = long_rows()
    write_rows(tmp_path / "s.csv", rows)
    write_rows(tmp_path / f"s{suffix}", rows)
    from_csv = load_dataset(sequences_config(tmp_path / "s.csv"))
    from_binary = load_dataset(sequences_config(tmp_path / f"s{suffix}"))
    assert_same_data(from_csv, from_binary)


@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_forecast_series_read_from_parquet_and_feather(tmp_path, suffix):
    values = np.sin(np.arange(120) / 5).round(5)
    (tmp_path / "f.csv").write_text("v\n" + "".join(f"{v}\n" for v in values))
    path = tmp_path / f"f{suffix}"
    table = pa.table({"v": values})
    (pq.write_table if suffix == ".parquet" else feather.write_feather)(table, path)

    def windows(name: str) -> torch.Tensor:
        config = option_config(
            "dataset", "csv_forecast", path=str(tmp_path / name), target="v", window=12
        )
        return all_batches(load_dataset(config).train)[0]

    assert torch.equal(windows("f.csv"), windows(path.name))


def test_rows_in_any_order_make_the_same_sequences(tmp_path):
    rows = long_rows()
    write_rows(tmp_path / "sorted.csv", rows)
    shuffled = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]
    # the first appearances keep their order, so the sequences are numbered alike
    firsts = {}
    for row in rows:
        firsts.setdefault(row[0], row)
    shuffled = list(firsts.values()) + [row for row in shuffled if row not in firsts.values()]
    write_rows(tmp_path / "shuffled.csv", shuffled)
    assert_same_data(
        load_dataset(sequences_config(tmp_path / "sorted.csv")),
        load_dataset(sequences_config(tmp_path / "shuffled.csv")),
    )


def test_a_csv_read_in_pieces_and_parts_makes_the_same_sequences(tmp_path, monkeypatch):
    """A large CSV is parsed a piece of bytes at a time and converted a part of rows at a
    time; pieces that end mid-file, a byte-order mark, Windows line ends, blank lines and a
    last line without its line end change nothing."""
    lines = [",".join(map(str, row)) for row in long_rows(count=60)]
    lines[10:10] = ["", ""]
    text = "\ufeffid,step,a,b,label\r\n" + "\r\n".join(lines)  # no line end at the end
    (tmp_path / "s.csv").write_bytes(text.encode())
    whole = load_dataset(sequences_config(tmp_path / "s.csv"))
    monkeypatch.setattr(csv_files, "PIECE_BYTES", 97)
    monkeypatch.setattr(table, "PART_ROWS", 7)
    assert_same_data(load_dataset(sequences_config(tmp_path / "s.csv")), whole)


def test_converted_feature_columns_leave_the_table(tmp_path, monkeypatch):
    """Their memory is freed as the numbers fill (the id and label columns stay)."""
    monkeypatch.setattr(table, "PART_ROWS", 7)
    write_rows(tmp_path / "s.csv", long_rows(count=5))
    read = table.Table.read(tmp_path / "s.csv", text=("id", "label"))
    expected = np.stack([read.numbers(name, "k") for name in ("a", "b")], axis=1)
    assert np.array_equal(read.take_numbers(["a", "b"], "k", False, release=True), expected)
    assert [read.data.column(name).type for name in ("a", "b")] == [pa.null(), pa.null()]
    assert read.strings("id", "k")[:2] == ["s0", "s0"] and read.data.num_rows == len(expected)


@pytest.mark.parametrize("piece_bytes", [64 << 20, 4096])
def test_a_bad_cell_far_down_a_numeric_column_names_its_line(tmp_path, monkeypatch, piece_bytes):
    """Far enough for Arrow to have typed the column as numbers from the first block (or
    the first of many pieces, converted in many parts)."""
    monkeypatch.setattr(csv_files, "PIECE_BYTES", piece_bytes)
    monkeypatch.setattr(table, "PART_ROWS", 1000 if piece_bytes == 4096 else table.PART_ROWS)
    lines = ["id,step,a,b,label"] + [",".join(map(str, row)) for row in long_rows(count=9000)]
    bad_line = len(lines) - 3
    cells = lines[bad_line - 1].split(",")
    cells[3] = "oops"
    lines[bad_line - 1] = ",".join(cells)
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    assert (tmp_path / "s.csv").stat().st_size > 2**20  # more than Arrow's first block
    with pytest.raises(DataError, match=rf"s.csv, line {bad_line}, column 'b': 'oops' is not"):
        load_dataset(sequences_config(tmp_path / "s.csv"))


@pytest.mark.parametrize("stretch_rows", [1 << 18, 7, 64])
def test_ragged_batches_equal_padded_ones(monkeypatch, stretch_rows):
    """Also copied a few rows at a time: stretches shorter than a sequence, and a last
    sequence that spans several of them."""
    monkeypatch.setattr(splits, "STRETCH_ROWS", stretch_rows)
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 30, (50,), generator=generator)
    lengths[-1] = 29
    padded = torch.randn(50, 30, 3, generator=generator)
    padded *= (torch.arange(30) < lengths.unsqueeze(1)).unsqueeze(2)
    y = torch.randint(0, 4, (50,), generator=generator)
    steps = padded[torch.arange(30) < lengths.unsqueeze(1)]  # sequences end to end
    everything = torch.arange(50)
    ragged = RaggedSplit.of(steps, lengths, y, everything)
    reference = SequenceSplit(padded, lengths, y)
    assert ragged.nbytes() < reference.nbytes()
    for index in (everything, torch.tensor([7]), torch.randperm(50, generator=generator)[:16]):
        ours, theirs = ragged.take(index), reference.take(index)
        assert torch.equal(ours.x, theirs.x)
        assert torch.equal(ours.lengths, theirs.lengths) and torch.equal(ours.y, theirs.y)
    subset = RaggedSplit.of(steps, lengths, y, torch.tensor([3, 1, 40]))
    assert torch.equal(subset.take(torch.arange(3)).x, reference.take(torch.tensor([3, 1, 40])).x)
    assert len(subset.steps) == int(lengths[[3, 1, 40]].sum())


def cached_load(path, cache, **keys):
    """The data through the cache, once its entry is written (the write runs in the background)."""
    data = load_dataset(sequences_config(path, **keys), cache=cache)
    data_cache.wait_for_fills()
    return data


def entries(cache):
    return [p for p in cache.iterdir() if p.is_dir()]


def test_a_run_gets_its_data_while_its_cache_entry_is_written(tmp_path, monkeypatch):
    """The entry is written by a background thread; the caller does not wait for it."""
    path, cache = tmp_path / "s.csv", tmp_path / "cache"
    write_rows(path, long_rows())
    may_write = threading.Event()
    write = data_cache._write

    def held_back(*args):
        assert may_write.wait(timeout=60)
        return write(*args)

    monkeypatch.setattr(data_cache, "_write", held_back)
    data = load_dataset(sequences_config(path), cache=cache)  # returns with the write held
    assert entries(cache) == []
    may_write.set()
    data_cache.wait_for_fills()
    assert len(entries(cache)) == 1
    assert_same_data(cached_load(path, cache), data)


def test_a_cache_that_cannot_be_written_warns_and_the_data_still_comes(
    tmp_path, monkeypatch, caplog
):
    path, cache = tmp_path / "s.csv", tmp_path / "cache"
    write_rows(path, long_rows())

    def disk_full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(data_cache, "_write", disk_full)
    with caplog.at_level(logging.WARNING, logger="lstm_cli.data"):
        data = cached_load(path, cache)
    assert_same_data(data, load_dataset(sequences_config(path)))
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "could not be cached" in warning and "No space left" in warning
    assert entries(cache) == []


def test_a_killed_builds_leftovers_are_removed_when_the_entry_is_built(tmp_path):
    path, cache = tmp_path / "s.csv", tmp_path / "cache"
    write_rows(path, long_rows())
    cached_load(path, cache)
    (entry,) = entries(cache)
    leftover = cache / f".{entry.name}.k1ll3d"  # what a SIGKILL during a build leaves
    leftover.mkdir()
    (leftover / "steps.bin").write_bytes(b"half")
    shutil.rmtree(entry)
    cached_load(path, cache)
    assert not leftover.exists() and entries(cache) == [entry]


def test_the_cache_parses_once_then_maps(tmp_path, caplog):
    write_rows(tmp_path / "s.csv", long_rows())
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="lstm_cli.data"):
        first = cached_load(tmp_path / "s.csv", cache)
        second = cached_load(tmp_path / "s.csv", cache)
    said = [record.getMessage() for record in caplog.records]
    assert sum("parsed and cached" in line for line in said) == 1
    assert sum("mapped from the cache" in line for line in said) == 1
    assert_same_data(first, second)
    assert_same_data(first, load_dataset(sequences_config(tmp_path / "s.csv")))
    assert len(entries(cache)) == 1


def test_an_edited_file_replaces_its_stale_entry(tmp_path):
    path, cache = tmp_path / "s.csv", tmp_path / "cache"
    write_rows(path, long_rows(seed=0))
    cached_load(path, cache)
    (old_entry,) = entries(cache)
    write_rows(path, long_rows(seed=1))
    assert_same_data(cached_load(path, cache), load_dataset(sequences_config(path)))
    (new_entry,) = entries(cache)
    assert new_entry != old_entry
    # another parsing key is another entry, and the first one stays
    cached_load(path, cache, features=["a"])
    assert len(entries(cache)) == 2


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "manifest"])
def test_a_damaged_entry_is_rebuilt_never_trusted(tmp_path, caplog, damage):
    path, cache = tmp_path / "s.csv", tmp_path / "cache"
    write_rows(path, long_rows())
    expected = cached_load(path, cache)
    (entry,) = entries(cache)
    steps = entry / "steps.bin"
    if damage == "flipped byte":
        content = bytearray(steps.read_bytes())
        content[-5] ^= 0x40
        steps.write_bytes(bytes(content))
    elif damage == "truncated":
        steps.write_bytes(steps.read_bytes()[:-64])
    else:
        (entry / "manifest.json").write_text('{"format": 1, "files"')
    with caplog.at_level(logging.WARNING, logger="lstm_cli.data"):
        assert_same_data(cached_load(path, cache), expected)
    assert any("is damaged" in record.getMessage() for record in caplog.records)
    assert_same_data(cached_load(path, cache), expected)  # rebuilt whole


BUILD = """
import logging, sys
from pathlib import Path
from lstm_cli.config.validate import option_config
from lstm_cli.data import csv_files, load_dataset, table
logging.basicConfig(level=logging.INFO, format="%(message)s")
cfg = option_config("dataset", "csv_sequences", path=sys.argv[1], id_column="id")
data = load_dataset(cfg, cache=Path(sys.argv[2]))
print(float(data.train.steps.sum()))
"""


def test_two_processes_building_at_once_parse_once(tmp_path):
    path, cache = tmp_path / "s.csv", tmp_path / "cache"
    write_rows(path, long_rows(count=3000))
    command = [sys.executable, "-c", BUILD, str(path), str(cache)]
    both = [subprocess.Popen(command, stdout=PIPE, stderr=PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    said = "".join(stderr for _, stderr in outputs)
    assert said.count("parsed and cached") == 1 and said.count("mapped from the cache") == 1
    assert outputs[0][0] == outputs[1][0]
    assert len(entries(cache)) == 1
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no half-built entry


def test_train_uses_the_cache_under_the_output_root_unless_told_not_to(tmp_path):
    write_rows(tmp_path / "s.csv", long_rows())
    args = ("dataset=csv_sequences", "dataset.path=s.csv", "dataset.id_column=id", "model=tiny")
    for extra in ("trainer.max_epochs=1", "trainer.max_epochs=1"):
        result = run_in_process("train", *args, extra, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    logs = [p / "train.log" for p in (tmp_path / "outputs/train").iterdir() if not p.is_symlink()]
    first, second = sorted(logs, key=lambda log: log.stat().st_mtime)  # stamps may tie
    assert "parsed and cached" in first.read_text()  # the run waited for its entry to end
    assert "mapped from the cache" in second.read_text()
    assert (tmp_path / "outputs/cache").is_dir()
    (tmp_path / "x").mkdir()
    (tmp_path / "x/s.csv").write_bytes((tmp_path / "s.csv").read_bytes())
    result = run_in_process(
        "train", *args, "trainer.max_epochs=1", "data.cache=false", cwd=tmp_path / "x"
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "x/outputs/cache").exists()


def test_npz_targets_may_come_as_a_column(tmp_path):
    from lstm_cli.data.npz import read_npz

    x = np.zeros((5, 3, 2))
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5.0).reshape(5, 1))
    assert read_npz(tmp_path / "d.npz", need_labels=True).labels == [
        "0.0",
        "1.0",
        "2.0",
        "3.0",
        "4.0",
    ]
