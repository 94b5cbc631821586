"""The meaning of each config key, as its YAML comment in conf/ gives it, for `--help`.

A key's comment is the text after `#` on its line plus the comment-only lines indented
under it. The composed config is annotated from the files that composed it: the command's
own file first, then the chosen option of each group in the order Hydra merged them, so
that a preset's comment on a key it sets (airline's `trainer.max_epochs`) wins, as its
value does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# `key: value  # comment`; a value never holds " #" in our files (Hydra's grammar allows it
# only quoted, and none is).
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.@-]*):(?P<rest>.*)$")
COMMENT_LINE = re.compile(r"^(?P<indent> *)# ?(?P<text>.*)$")
COMMENT_COLUMN = 26  # where conf/ files start their comments


def key_comments(text: str, package: str) -> dict[str, str]:
    """Dotted key (under `package`, "" for the root) -> its comment lines joined by newlines."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the mapping keys above this line
    last_key: tuple[int, str] | None = None  # the key a comment-only line may continue
    for line in text.splitlines():
        key_line, comment_line = KEY_LINE.match(line), COMMENT_LINE.match(line)
        if key_line:
            indent = len(key_line["indent"])
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, key_line["key"])]
            path = ".".join([package, *(k for _, k in stack)] if package else (k for _, k in stack))
            _, hash_, comment = key_line["rest"].partition(" #")
            last_key = (indent, path) if hash_ else None
            if hash_:
                comments[path] = comment.strip()
        elif comment_line and last_key and len(comment_line["indent"]) > last_key[0]:
            comments[last_key[1]] += "\n" + comment_line["text"].strip()
        else:
            last_key = None
    return comments


def composed_comments(root: Path, command: str, choices: dict[str, str | None]) -> dict[str, str]:
    """Comments of every key of `command`'s config with these group choices (Hydra's
    `hydra.runtime.choices`, listed last merged first)."""
    files = [(root / f"{command}.yaml", "")]
    for group, option in reversed(list(choices.items())):
        if option is not None and not group.startswith("hydra"):
            files.append((root / group / f"{option}.yaml", group.replace("/", ".")))
    comments: dict[str, str] = {}
    for path, group in files:
        text = path.read_text(encoding="utf-8")
        package = _package(text, group)
        if package is not None:
            comments.update(key_comments(text, package))
    return comments


def _package(text: str, group: str) -> str | None:
    """The package a conf file's keys land in ("" for the root; None: not the job's config)."""
    header = re.search(r"^# @package (\S+)", text, re.MULTILINE)
    if header is None:
        return group
    return "" if header[1] == "_global_" else None


def annotated(rendered: str, comments: dict[str, str]) -> str:
    """`rendered` (OmegaConf's YAML of the job config) with each key's comment beside it."""
    lines: list[str] = []
    stack: list[tuple[int, str]] = []
    for line in rendered.splitlines():
        lines.append(line)
        key_line = KEY_LINE.match(line)
        if not key_line:
            continue
        indent = len(key_line["indent"])
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, key_line["key"])]
        comment = comments.get(".".join(k for _, k in stack))
        if comment:
            lines[-1:] = _beside(line, comment.splitlines())
    return "\n".join(lines) + ("\n" if rendered.endswith("\n") else "")


def _beside(line: str, comment: Iterable[str]) -> list[str]:
    """The line with the comment's first line after it, the others aligned under it."""
    column = max(COMMENT_COLUMN, len(line) + 2)
    first, *rest = comment
    return [f"{line.ljust(column)}# {first}", *(f"{' ' * column}# {text}" for text in rest)]
