"""Property-based fuzzing of the CSV and text loaders: random bytes and mutated valid files
either load or fail with the tool's own DataError, never with any other exception."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_cli.common.errors import DataError
from lstm_cli.config.validate import option_config
from lstm_cli.data import load_dataset

VALID_SERIES = ("t,y,z\n" + "".join(f"{t},{10 + t % 7},{t % 3}\n" for t in range(30))).encode()
VALID_SEQUENCES = (
    "id,step,v,label\n"
    + "".join(
        f"s{n},{step},{n + step / 10},{'ab'[n % 2]}\n" for n in range(12) for step in range(3)
    )
).encode()
VALID_TEXT = ("In the beginning was the Word, and the Word was with God. " * 8).encode()

CONFIGS = {
    "series": lambda path: option_config(
        "dataset",
        "csv_forecast",
        path=str(path),
        target="y",
        covariates=["z"],
        time_column="t",
        window=3,
        horizon=1,
        val_size=2,
        test_size=2,
        missing="ffill",
    ),
    "sequences": lambda path: option_config(
        "dataset",
        "csv_sequences",
        path=str(path),
        id_column="id",
        step_column="step",
        val_fraction=0.3,
        test_fraction=0.3,
    ),
    "text": lambda path: option_config("dataset", "text", path=str(path), seq_len=4),
}
VALID = {"series": VALID_SERIES, "sequences": VALID_SEQUENCES, "text": VALID_TEXT}


def loads_or_fails_cleanly(kind: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "input"
        path.write_bytes(content)
        try:
            data = load_dataset(CONFIGS[kind](path))
        except DataError:
            return
        assert len(data.train) > 0


def mutated(original: bytes) -> st.SearchStrategy[bytes]:
    """The valid file with a few bytes replaced, inserted or deleted."""
    edit = st.tuples(
        st.sampled_from(["replace", "insert", "delete"]),
        st.integers(0, len(original) - 1),
        st.binary(min_size=1, max_size=3),
    )

    def apply(edits: list[tuple[str, int, bytes]]) -> bytes:
        data = bytearray(original)
        for how, where, payload in edits:
            where = min(where, len(data) - 1)
            if how == "replace":
                data[where : where + len(payload)] = payload
            elif how == "insert":
                data[where:where] = payload
            elif len(data) > 1:
                del data[where]
        return bytes(data)

    return st.lists(edit, min_size=1, max_size=6).map(apply)


# FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py searches harder than CI does.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")), deadline=None)


@FUZZ
@given(kind=st.sampled_from(sorted(CONFIGS)), content=st.binary(max_size=600))
def test_random_bytes_load_or_fail_cleanly(kind, content):
    loads_or_fails_cleanly(kind, content)


@FUZZ
@given(content=mutated(VALID_SERIES))
def test_mutated_series_csv_loads_or_fails_cleanly(content):
    loads_or_fails_cleanly("series", content)


@FUZZ
@given(content=mutated(VALID_SEQUENCES))
def test_mutated_sequences_csv_loads_or_fails_cleanly(content):
    loads_or_fails_cleanly("sequences", content)


@FUZZ
@given(content=mutated(VALID_TEXT))
def test_mutated_text_loads_or_fails_cleanly(content):
    loads_or_fails_cleanly("text", content)


def test_the_unmutated_files_load():
    """The fuzz starts from files that load, so its mutations probe real parsing paths."""
    for kind, content in VALID.items():
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "input"
            path.write_bytes(content)
            assert len(load_dataset(CONFIGS[kind](path)).train) > 0
