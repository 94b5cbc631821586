"""`text`: next-character language modelling on UTF-8 text.

The vocabulary is the set of characters of the training text, plus `<unk>` (id 0) for
characters never seen in training. Training windows are consecutive, non-overlapping
stretches of `seq_len` characters; the target of each character is the next one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lstm_cli.common.errors import DataError
from lstm_cli.config.dataset_schema import TextDatasetConfig
from lstm_cli.data.files import resolve_path
from lstm_cli.data.splits import PreparedData, StreamSplit, WindowSplit

UNKNOWN = "<unk>"


def read_text(path: Path) -> str:
    """The whole file as text; bytes that are not UTF-8 are an error naming the offset."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    if not text:
        raise DataError(f"{path}: the file is empty")
    return text


def encode(text: str, vocab: list[str]) -> Tensor:
    """Character ids; characters outside the vocabulary become <unk>."""
    index = {char: i for i, char in enumerate(vocab)}
    return torch.tensor([index.get(char, 0) for char in text], dtype=torch.long)


def decode(ids: list[int], vocab: list[str]) -> str:
    return "".join(vocab[i] if i > 0 else "\ufffd" for i in ids)


def windows(ids: Tensor, seq_len: int, where: str) -> WindowSplit:
    """Non-overlapping windows of `seq_len` inputs, each target shifted by one character."""
    if len(ids) < seq_len + 1:
        raise DataError(f"{where}: {len(ids)} characters are fewer than seq_len+1={seq_len + 1}")
    return WindowSplit(
        inputs=ids,
        targets=ids,
        starts=torch.arange(0, len(ids) - seq_len, seq_len),
        window=seq_len,
        target_offset=1,
        target_length=seq_len,
        flatten_targets=False,
    )


def prepare(
    cfg: TextDatasetConfig, fitted: dict[str, Any] | None, streams: tuple[int, int] | None
) -> PreparedData:
    """The text's three parts as windows of seq_len characters, or with `streams` (chunk,
    count) as parallel streams of chunk-character windows (trainer.tbptt)."""
    path = resolve_path(cfg.path, "dataset.path")
    text = read_text(path)
    parts = {"train": text, "val": None, "test": None}
    for part, key in (("val", "val_path"), ("test", "test_path")):
        given = getattr(cfg, key)
        if given:
            parts[part] = read_text(resolve_path(given, f"dataset.{key}"))
    tail_fractions = {"test": cfg.test_fraction, "val": cfg.val_fraction}
    for part, fraction in tail_fractions.items():
        if parts[part] is None:
            cut = int(len(parts["train"]) * (1 - fraction))
            parts["train"], parts[part] = parts["train"][:cut], parts["train"][cut:]
    vocab = fitted["vocab"] if fitted else [UNKNOWN, *sorted(set(parts["train"]))]
    state = {"kind": "text", "vocab": vocab, "seq_len": cfg.seq_len}
    length = streams[0] if streams else cfg.seq_len
    splits: dict[str, WindowSplit | StreamSplit] = {
        part: windows(encode(body, vocab), length, f"{path} ({part} part)")
        for part, body in parts.items()
    }
    if streams:
        splits = {part: StreamSplit(split, streams[1]) for part, split in splits.items()}
    return PreparedData(
        task="language_model",
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        input_size=len(vocab),
        output_size=len(vocab),
        token_input=True,
        preprocessing=state,
    )
