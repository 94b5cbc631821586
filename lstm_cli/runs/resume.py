"""Which run `resume=` names, and whether the new config may continue it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstm_cli.common.errors import ConfigError
from lstm_cli.common.paths import rank_suffix, run_stamp
from lstm_cli.config.validate import dotted_keys

# Keys a resumed run may change: how long it goes on, how patient it is, where and how
# often it writes. Anything else would make the continued run a different experiment.
MAY_CHANGE = {
    "resume",
    "output_root",
    "trainer.max_epochs",
    "trainer.patience",
    "trainer.checkpoint_every_steps",
    "hparams_search.trials",
    "logger.name",
    "logger.every_steps",
}


def run_dir_for(output_root: str, command: str, resume: str | None) -> str:
    """The directory of this run: the resumed one, or a new `<root>/<command>/<stamp>`."""
    if not resume:
        return f"{output_root}/{command}/{run_stamp()}"
    directory = Path(output_root) / command / "latest" if resume == "latest" else Path(resume)
    if not (directory / "checkpoints" / "last.pt").is_file():
        raise ConfigError(f"resume={resume}: no checkpoints/last.pt in {directory}")
    return str(directory.resolve())


def config_subdir_for(resume: str | None) -> str | None:
    """Where Hydra saves the config: a resumed run keeps its original .hydra untouched;
    under torchrun only rank 0 saves it."""
    if rank_suffix():
        return None
    return f".hydra/resumed_{run_stamp()}" if resume else ".hydra"


def log_file_for(command: str) -> str:
    """The log file's name: `train.log`, or `train.rank1.log` for another torchrun rank."""
    return f"{command}{rank_suffix()}.log"


def check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """One ConfigError listing every key that differs, with both values, unless allowed."""
    old, new = dotted_keys(saved), dotted_keys(current)
    differing = [
        f"{key}: saved {old.get(key, '<absent>')!r}, now {new.get(key, '<absent>')!r}"
        for key in sorted(old.keys() | new.keys())
        if key not in MAY_CHANGE and old.get(key) != new.get(key)
    ]
    if differing:
        raise ConfigError(f"resume: the config differs from the saved run: {'; '.join(differing)}")
