"""Which run `resume=` names, and whether the new config may continue it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstm_cli.common.errors import ConfigError
from lstm_cli.common.paths import rank_suffix, run_stamp
from lstm_cli.config.validate import dotted_keys

# Keys a resumed run may change: how long it goes on, how patient it is, where and how
# often it writes, what it runs on. Anything else would make the continued run a
# different experiment.
MAY_CHANGE = (
    "resume",
    "output_root",
    "trainer.max_epochs",
    "trainer.patience",
    "trainer.min_steps",
    "trainer.checkpoint_every_steps",
    "trainer.log_every_epochs",
    "trainer.device",
    "trainer.num_threads",
    "data.on_device",
    "data.cache",
    "data.cache_dir",
    "hparams_search.trials",
    "logger.name",
    "logger.every_steps",
    "plots",
)

# Keys whose default became auto (null) after runs were saved without them, with the value
# they had then: such a run continues as it was trained (a warp it never had would change
# its batches). Any other key added since comes from today's config.
SAVED_WITHOUT = {"augment.warp": 0.0, "augment.mixup": 0.0}


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


def continued_config(
    saved: dict[str, Any], current: dict[str, Any], command_line: list[str]
) -> dict[str, Any]:
    """The config a resumed run continues with: the saved run's, with the keys that the
    command line sets and that may change (MAY_CHANGE) taken from it. A key the command
    line sets to another value that may not change is an error naming it, both values and
    the keys that may; keys added to lstm-train since the run was saved come from today's
    config, but for SAVED_WITHOUT's."""
    old, new = {**SAVED_WITHOUT, **dotted_keys(saved)}, dotted_keys(current)
    given = [_key_of(override) for override in command_line]
    continued = {key: old.get(key, new.get(key)) for key in old.keys() | new.keys()}
    refused = []
    for key in sorted(old.keys() | new.keys()):
        if not any(key == g or key.startswith(f"{g}.") for g in given if g):
            continue
        if old.get(key, new.get(key)) == new.get(key):
            continue
        if key in MAY_CHANGE:
            continued[key] = new.get(key)
        else:
            refused.append(f"{key}: saved {old.get(key, '<absent>')!r}, now {new.get(key)!r}")
    if refused:
        raise ConfigError(
            f"resume continues the saved run with its own config; {'; '.join(refused)}."
            f" Only these may change: {', '.join(MAY_CHANGE[1:])}"
        )
    return _nested(continued)


def _key_of(override: str) -> str:
    """`trainer.max_epochs=5` -> `trainer.max_epochs`; `+a=1`, `~a`, `model=tiny` alike
    (a group's name covers all its keys); `hydra.*` settings are not the run's config."""
    key = override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
    return "" if key == "hydra" or key.startswith("hydra.") else key


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested
