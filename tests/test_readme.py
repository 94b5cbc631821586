"""The README's reference tables, its recipes and every `--help` example are checked against
the code: the recipes on files of the shapes they name."""

from __future__ import annotations

import dataclasses
import re
import shlex
import typing
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, run_in_process
from omegaconf import OmegaConf

from lstm_cli.config.dataset_schema import DATASETS
from lstm_cli.config.schema import (
    VARIANT_GROUPS,
    AugmentConfig,
    DataConfig,
    EvaluateConfig,
    ExportConfig,
    ModelConfig,
    PredictConfig,
    SearchConfig,
    TrainerConfig,
)
from lstm_cli.config.validate import dotted_keys

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
CONF = ROOT / "conf"
SELECTORS = {"kind", "name"}
NAMED_GROUPS = {"model": ModelConfig, "hparams_search": SearchConfig}


def table(marker: str) -> list[list[str]]:
    """The rows (cells) of the table after `<!-- reference: marker -->` in the README."""
    after = README.split(f"<!-- reference: {marker} -->", 1)[1].strip().splitlines()
    lines = [line for line in _leading_table(after)][2:]  # skip header and rule
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def _leading_table(lines: list[str]) -> list[str]:
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def quoted(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def fields(schema: type) -> set[str]:
    return {f.name for f in dataclasses.fields(schema)} - SELECTORS


def options_of(group: str) -> set[str]:
    return {path.stem for path in (CONF / group).glob("*.yaml")}


def test_the_groups_table_lists_every_group_option_and_key():
    rows = {quoted(row[0])[0]: row for row in table("groups")}
    assert set(rows) == {p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"}
    for group, (_, options, keys) in rows.items():
        assert set(quoted(options)) == options_of(group), group
        if group == "dataset":
            continue  # by kind: the datasets table
        if group == "recipe":  # keys of other groups, set together (`# @package _global_`)
            for option in options_of(group):
                values = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"))
                assert set(quoted(keys)) == set(dotted_keys(values)), option
            continue
        schemas = (
            [NAMED_GROUPS[group]] if group in NAMED_GROUPS else VARIANT_GROUPS[group][1].values()
        )
        expected = set().union(*(fields(schema) for schema in schemas))
        listed = {key for key in quoted(keys) if "." not in key}
        assert listed == expected, group


def test_the_datasets_table_lists_every_option_with_its_kinds_keys():
    rows = table("datasets")
    assert {quoted(row[0])[0] for row in rows} == options_of("dataset")
    for name_cell, _task, _data, keys in rows:
        name = quoted(name_cell)[0]
        kind = OmegaConf.load(CONF / "dataset" / f"{name}.yaml")
        kind = kind.dataset.kind if "dataset" in kind else kind.kind
        if keys.startswith("as "):
            assert quoted(keys) == [kind], name
        else:
            assert set(quoted(keys)) == fields(DATASETS[kind]), name


def train_yaml_values() -> dict:
    values = OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml"))
    values.pop("defaults")
    values["output_root"] = "outputs"  # ${oc.env:LSTM_TRAIN_OUTPUT_ROOT,outputs}
    return dotted_keys(values)


def as_yaml(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def test_the_train_settings_table_matches_the_schema_and_train_yaml():
    rows = {quoted(row[0])[0]: row[1] for row in table("train settings")}
    expected = (
        {f"trainer.{name}" for name in fields(TrainerConfig)}
        | {f"data.{name}" for name in fields(DataConfig)}
        | {f"augment.{name}" for name in fields(AugmentConfig)}
        | {"plots", "resume", "output_root"}
    )
    assert set(rows) == expected
    defaults = train_yaml_values()
    for key, default in rows.items():
        assert default == as_yaml(defaults[key]), key


def test_the_command_settings_table_matches_each_commands_schema_and_yaml():
    schemas = {"evaluate": EvaluateConfig, "predict": PredictConfig, "export": ExportConfig}
    listed: dict[str, dict[str, str]] = {command: {} for command in schemas}
    for commands, key, default, _meaning in table("command settings"):
        for command in commands.split(", "):
            listed[command][quoted(key)[0]] = default
    for command, schema in schemas.items():
        values = OmegaConf.to_container(OmegaConf.load(CONF / f"{command}.yaml"))
        values = {k: v for k, v in values.items() if k not in ("defaults", "hydra")}
        values["output_root"] = "outputs"
        defaults = dotted_keys(values)
        expected = schema_keys(schema)
        assert set(listed[command]) == expected == set(defaults), command
        for key, default in listed[command].items():
            shown = '""' if defaults[key] == "" else as_yaml(defaults[key])
            assert default == shown, (command, key)


def schema_keys(schema: type, prefix: str = "") -> set[str]:
    """The dotted keys a schema declares, nested schemas expanded."""
    hints = typing.get_type_hints(schema)
    keys: set[str] = set()
    for field in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[field.name]):
            keys |= schema_keys(hints[field.name], f"{prefix}{field.name}.")
        else:
            keys.add(prefix + field.name)
    return keys


def help_examples(command: str, tmp_path: Path) -> list[list[str]]:
    result = run_cli(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    examples = re.split(r"Examples[^\n]*:\n", result.stdout, maxsplit=1)[1].split("\n\n")[0]
    lines = [line.split(" # ", 1)[0].strip() for line in examples.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("lstm-train ")]


def test_every_train_help_example_composes_and_validates(tmp_path):
    """Pasted with `--cfg job` appended (a sweep: its first job), Hydra composes it and the
    config passes our validation; the training itself is what the rest of the suite tests."""
    from lstm_cli.config.checks import validate_train_config

    examples = help_examples("train", tmp_path)
    assert len(examples) >= 5
    for command, *rest in examples:
        if "--cfg" not in rest:
            rest = [a.split(",")[0] for a in rest if a != "-m"] + ["--cfg", "job"]
        result = run_cli(command, *rest, cwd=tmp_path)
        assert result.returncode == 0, (rest, result.stderr)
        validate_train_config(OmegaConf.to_container(OmegaConf.create(result.stdout)))


@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_every_help_example_of_the_trained_run_commands_runs(trained_airline, command):
    examples = help_examples(command, trained_airline)
    assert examples
    for args in examples:
        result = run_cli(*args, cwd=trained_airline)
        assert result.returncode == 0, (args, result.stderr)


def test_the_first_examples_run_as_pasted(trained_airline):
    """The README's opening commands, after its `lstm-train train` (here: the fixture's
    short training; CI runs the quick start's full one)."""
    block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines()]
    assert commands[0] == ["lstm-train", "train"]
    for command in commands[1:]:
        result = run_cli(*command[1:], cwd=trained_airline)
        assert result.returncode == 0, (command, result.stderr)
    assert "predictions: 12 rows written to" in result.stdout


@pytest.mark.parametrize("name", ["run", "test"])
def test_the_quick_start_is_one_command_with_the_cpu_torch(name):
    """.ci/run runs these as written, changing only where torch comes from."""
    command = README.split(f"<!-- quick start: {name} -->\n```bash\n", 1)[1].split("\n```")[0]
    assert "\n" not in command
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in command
    assert command.endswith("lstm-train train" if name == "run" else "python -m pytest -q -n auto")


def readme_commands(subcommand: str) -> list[list[str]]:
    """The arguments of every `lstm-train SUBCOMMAND ...` line in the README's bash blocks
    (continuation lines joined, comments cut)."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split(" #", 1)[0].strip()
            if command.startswith(f"lstm-train {subcommand} "):
                found.append(shlex.split(command)[2:])
    return found


def first_job(args: list[str]) -> list[str]:
    """A command line's overrides as its sweep's first job runs them (Hydra's own parser)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, overrides = OverridesParser.create(), []
    for arg in (a for a in args if not a.startswith("-") and not a.startswith("hydra")):
        override = parser.parse_overrides([arg])[0]
        if override.is_sweep_override():
            arg = f"{override.key_or_group}={next(override.sweep_string_iterator())}"
        overrides.append(arg)
    return overrides


def test_every_readme_train_command_composes_and_validates():
    """Each recipe's config is a valid one; the trainings themselves are the suite's."""
    from lstm_cli.config.checks import validate_train_config
    from lstm_cli.config.validate import composed

    commands = readme_commands("train")
    assert len(commands) >= 8
    for args in commands:
        validate_train_config(composed("train", first_job(args)))


def recipe_commands(heading: str) -> list[list[str]]:
    """The command lines of the bash block under a README heading, as bash would split them."""
    block = README.split(f"{heading}\n", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = (line.split(" #", 1)[0].strip() for line in block.replace("\\\n", " ").splitlines())
    return [shlex.split(line) for line in lines if line.startswith("lstm-train ")]


def write_recipe_data(folder: Path) -> None:
    """The files the recipes name: a daily sales CSV, labelled sequences, a text."""
    days = np.datetime64("2024-01-01") + np.arange(140)
    sales = [f"{day},{20 + n % 7 * 3 + n // 10}" for n, day in enumerate(days)]
    (folder / "sales.csv").write_text("date,units\n" + "\n".join(sales) + "\n")
    for name, count in (("train.csv", 60), ("test.csv", 20)):
        rows = [
            f"s{n},{step},{(n % 2) * 2 - 1 + 0.1 * step},{'up' if n % 2 else 'down'}"
            for n in range(count)
            for step in range(12 + n % 5)
        ]
        (folder / name).write_text("id,step,x,label\n" + "\n".join(rows) + "\n")
    verse = "In the beginning was the Word, and the Word was with God. Once upon a time. "
    (folder / "corpus.txt").write_text(verse * 400)


@pytest.mark.slow
def test_the_own_data_and_long_sequence_recipes_run_as_pasted(tmp_path):
    """Each README recipe on small files of the shape it names, a training cut to one epoch
    of the tiny model (appended overrides win) and run in process, each predict reading the
    training before it."""
    write_recipe_data(tmp_path)
    recipes = recipe_commands("### Your own data") + recipe_commands(
        "### Long sequences: truncated backpropagation through time"
    )
    assert len(recipes) == 7
    for command in recipes:
        if command[1] == "train":  # a run the predict after it reads, trained in process
            result = run_in_process(
                *command[1:], "trainer.max_epochs=1", "model=tiny", cwd=tmp_path
            )
        else:
            result = run_cli(*command[1:], cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        if "predict.prompt=Once upon" in command:
            assert result.stdout.count("Once upon") >= 1, "the continuation is printed"


@pytest.mark.slow
def test_the_sweep_and_export_recipes_run_as_pasted(tmp_path):
    """Each sweep with its trainings cut to one epoch (in process: the basic launcher runs
    its jobs in the one process anyway), report on the newest sweep (for the README's
    <stamp>), then both exports of a run."""
    sweeps = recipe_commands("### Sweeps")
    assert [command[1] for command in sweeps] == ["train", "train", "report"]
    for command in sweeps[:2]:
        budget = ("trainer.max_epochs=1", "trainer.refit=false", "plots=false")
        result = run_in_process(*command[1:], *budget, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert "best job: " in result.stdout
    newest = max((tmp_path / "outputs/multirun").iterdir())
    report = [arg.replace("<stamp>", newest.name) for arg in sweeps[2][1:]]
    result = run_cli(*report, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dataset airline, monitor val/loss (lower is better), 3 runs:" in result.stdout

    assert (
        run_in_process("train", "trainer.max_epochs=1", "model=tiny", cwd=tmp_path).returncode == 0
    )
    exports = recipe_commands("## Export")
    assert len(exports) == 2
    for command in exports:
        result = run_cli(*command[1:], cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
    written = {path.name for path in (tmp_path / "outputs/export").glob("2*/model.*")}
    assert written == {"model.onnx", "model.onnx.json", "model.pt", "model.pt.json"}
