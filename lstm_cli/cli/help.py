"""`lstm-train <command> --help`, rendered from the same config and template as Hydra's.

Hydra's own help lists the config groups by deep-copying its config repository once per
group and option (91 copies with the sweep plugins installed, about 0.3 s of a 0.6 s
help). Our groups are plain directories under conf/, so we list them from disk and compose
the config once; a test checks the text equals Hydra's, so the two cannot drift apart.
Each key also shows its YAML comment from conf/ (help_comments.py), which Hydra's omits.
"""

from __future__ import annotations

import copy
import string
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from lstm_cli.cli.help_comments import annotated, composed_comments
from lstm_cli.common.paths import config_dir

HELP_FLAGS = ("--help", "-h")


def is_plain_help(args: list[str]) -> bool:
    """True for `--help` with nothing but overrides beside it (the case rendered here)."""
    flags = [a for a in args if a.startswith("-")]
    return bool(flags) and all(f in HELP_FLAGS for f in flags)


def config_groups(root: Path) -> str:
    """`group: option, option` lines of the app's groups (Hydra's compact format)."""
    lines = []
    for group in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        if options:
            lines.append(f"{group.name}: {', '.join(options)}\n")
    return "".join(lines)


def render_help(command: str, args: list[str]) -> str:
    """The help text of `command` with the overrides among `args` applied to its config."""
    from hydra import compose, initialize_config_dir

    overrides = [a for a in args if a not in HELP_FLAGS]
    root = config_dir()
    with initialize_config_dir(config_dir=str(root), version_base="1.3"):
        cfg = compose(config_name=command, overrides=overrides, return_hydra_config=True)
    template = string.Template(cfg.hydra.help.template)
    comments = composed_comments(root, command, dict(cfg.hydra.runtime.choices))
    job = copy.deepcopy(cfg)
    with open_dict(job):
        del job["hydra"]
    return template.safe_substitute(
        APP_CONFIG_GROUPS=config_groups(root), CONFIG=annotated(OmegaConf.to_yaml(job), comments)
    )
