"""`data.on_device`: keep a dataset's tensors in GPU memory when they fit.

A split held on the GPU hands out batches by indexing there: no host copy, no pinned
staging, nothing for the step to wait on. `auto` does it when the three splits take under
a quarter of the GPU's free memory, leaving the rest to activations of backprop through time.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from lstm_cli.data.splits import PreparedData

FREE_MEMORY_SHARE = 4


def keeps_data_on_device(choice: str, device_type: str, data_bytes: int, free_bytes: int) -> bool:
    if device_type != "cuda" or choice == "never":
        return False
    return choice == "always" or data_bytes * FREE_MEMORY_SHARE <= free_bytes


def place(data: PreparedData, device: torch.device, choice: str) -> tuple[PreparedData, bool]:
    """`data` with its splits on `device` if `choice` says so; and whether it moved."""
    if device.type != "cuda":
        return data, False
    splits = (data.train, data.val, data.test)
    free_bytes, _ = torch.cuda.mem_get_info(device)
    size = sum(split.nbytes() for split in splits)
    if not keeps_data_on_device(choice, device.type, size, free_bytes):
        return data, False
    return replace(
        data, train=data.train.to(device), val=data.val.to(device), test=data.test.to(device)
    ), True
