"""Data pieces that are easy to get wrong: scaling, batching order, windows, grouping, time."""

from __future__ import annotations

import torch

from lstm_cli.config.validate import option_config
from lstm_cli.data import load_dataset
from lstm_cli.data.batching import batch_order
from lstm_cli.data.forecast import decode_targets
from lstm_cli.data.scaling import Scaler
from lstm_cli.data.timeindex import TimeIndex


def test_scaler_round_trip_and_constant_columns():
    values = torch.tensor([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]], dtype=torch.float64)
    for kind in ("standard", "minmax", "none"):
        scaler = Scaler.fit(kind, values)
        torch.testing.assert_close(scaler.inverse(scaler.transform(values)), values)
        assert scaler.scale[1] == 1.0  # a constant column is not divided by zero
    standard = Scaler.fit("standard", values).transform(values)
    assert abs(float(standard[:, 0].mean())) < 1e-12


def test_scaling_a_chunk_at_a_time_gives_the_values_of_scaling_whole():
    values = torch.randn(1001, 3, dtype=torch.float64) * 1e3 + 7
    scaler = Scaler.fit("standard", values)
    rows = torch.randperm(1001)
    chunked = scaler.rows_to_float32(values, rows, chunk=100)  # 11 chunks, the last short
    assert chunked.dtype == torch.float32
    assert torch.equal(chunked, scaler.transform(values[rows]).float())


def test_fitting_on_kept_rows_a_stretch_at_a_time_matches_fitting_on_them_whole():
    values = torch.randn(1001, 3, dtype=torch.float64) * 1e3 + 7
    keep = torch.rand(1001) < 0.7
    for kind in ("standard", "minmax", "none"):
        whole = Scaler.fit(kind, values[keep], ["a", "b", "c"])
        stretched = Scaler.fit_rows(kind, values, keep, ["a", "b", "c"], rows=100)
        torch.testing.assert_close(torch.tensor(stretched.offset), torch.tensor(whole.offset))
        torch.testing.assert_close(torch.tensor(stretched.scale), torch.tensor(whole.scale))
        assert Scaler.fit_rows(kind, values, keep, ["a", "b", "c"]) == whole  # one stretch


def test_batch_order_covers_every_sample_once_and_is_seeded():
    lengths = torch.randint(1, 50, (103,))
    for bucket in (False, True):
        first = batch_order(
            lengths, 10, shuffle=True, bucket=bucket, generator=torch.Generator().manual_seed(3)
        )
        again = batch_order(
            lengths, 10, shuffle=True, bucket=bucket, generator=torch.Generator().manual_seed(3)
        )
        assert sorted(torch.cat(first).tolist()) == list(range(103))
        assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_bucketing_cuts_padding():
    lengths = torch.randint(1, 100, (1000,))
    generator = torch.Generator().manual_seed(0)

    def padding(bucket: bool) -> int:
        batches = batch_order(lengths, 20, shuffle=True, bucket=bucket, generator=generator)
        return sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in batches)

    assert padding(True) < padding(False) / 5


def test_forecast_targets_never_cross_their_split(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("t,y\n" + "".join(f"{t},{10 + t}\n" for t in range(60)))
    config = option_config(
        "dataset",
        "csv_forecast",
        path=str(path),
        target="y",
        window=5,
        horizon=3,
        val_size=10,
        test_size=10,
        scaler="standard",
        transform="none",
    )
    data = load_dataset(config)
    to_time = lambda y: data.to_original(y) - 10  # noqa: E731  values are 10 + t
    for split, low, high in ((data.train, 0, 40), (data.val, 40, 50), (data.test, 50, 60)):
        targets = to_time(split.take(torch.arange(len(split))).y)
        assert targets.min() >= low - 1e-6 and targets.max() <= high - 1 + 1e-6
    assert len(data.train) == 40 - 5 - 3 + 1
    scaler = data.preprocessing["scaler"]
    assert abs(scaler["offset"][0] - (10 + 19.5)) < 1e-9, "fitted on the training part only"


def test_log_transform_round_trips_to_original_units():
    state = {
        "columns": ["y"],
        "targets": ["y"],
        "transform": "log",
        "scaler": {"kind": "standard", "offset": [4.0], "scale": [0.5]},
    }
    original = torch.tensor([[112.0], [600.0]], dtype=torch.float64)
    encoded = (original.log() - 4.0) / 0.5
    torch.testing.assert_close(decode_targets(encoded, state), original)


def test_sequences_of_different_lengths_are_grouped_and_ordered(tmp_path):
    path = tmp_path / "seq.csv"
    rows = ["id,step,a,label"]
    for sequence, length in enumerate([3, 5, 2, 4, 6, 3, 2, 5, 4, 3]):
        for step in reversed(range(length)):  # rows out of order on purpose
            rows.append(
                f"s{sequence},{step},{sequence * 100 + step},{'yes' if sequence % 2 else 'no'}"
            )
    path.write_text("\n".join(rows) + "\n")
    config = option_config(
        "dataset",
        "csv_sequences",
        path=str(path),
        id_column="id",
        step_column="step",
        features=["a"],
        scaler="none",
        val_fraction=0.2,
        test_fraction=0.2,
    )
    data = load_dataset(config)
    assert data.preprocessing["classes"] == ["no", "yes"]
    everything = [data.train, data.val, data.test]
    assert sum(len(s) for s in everything) == 10
    for split in everything:
        batch = split.take(torch.arange(len(split)))
        for x, length in zip(batch.x, batch.lengths, strict=True):
            steps = x[: int(length), 0] % 100
            assert steps.tolist() == list(range(int(length)))
            assert float(x[int(length) :].abs().sum()) == 0.0


def test_month_stamps_continue_in_months():
    index = TimeIndex.parse(["1960-10", "1960-11", "1960-12"], "month", str)
    assert index.future(3) == ["1961-01", "1961-02", "1961-03"]


def test_a_dated_series_keeps_its_stamps_as_spelled_for_the_pictures(tmp_path):
    """Evaluate's forecast.png dates its x axis with them, as predict's picture does."""
    path = tmp_path / "d.csv"
    days = [f"03/{day:02d}/2024" for day in range(1, 31)]
    path.write_text("day,y\n" + "".join(f"{d},{n % 7}\n" for n, d in enumerate(days)))
    keys = dict(path=str(path), target="y", time_column="day", time_format="%m/%d/%Y")
    cut = dict(window=7, horizon=1, val_size=5, test_size=5)
    data = load_dataset(option_config("dataset", "csv_forecast", **keys, **cut))
    assert data.stamps is not None and data.stamps.spelled() == days
    undated = {**keys, "time_column": None, "time_format": None}
    assert load_dataset(option_config("dataset", "csv_forecast", **undated, **cut)).stamps is None


def test_dates_continue_at_their_usual_step():
    index = TimeIndex.parse(["2024-02-27", "2024-02-28", "2024-02-29"], "day", str)
    assert index.future(2) == ["2024-03-01", "2024-03-02"]


def test_numeric_labels_are_one_class_however_spelled_and_a_bom_hides_no_column(tmp_path):
    path = tmp_path / "q.csv"
    spellings = ["0.5", "0.50", "1", "1.0"]
    rows = [f"s{n},{step},{n + step},{spellings[n % 4]}" for n in range(12) for step in range(3)]
    path.write_text("\ufeffid,step,v,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = option_config("dataset", "csv_sequences", path=str(path), id_column="id")
    data = load_dataset(config)
    assert data.preprocessing["classes"] == ["0.5", "1"]
    assert data.preprocessing["features"] == ["v"]
