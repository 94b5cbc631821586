"""Every YAML composes and validates, every key is commented, and the validator's messages."""

from __future__ import annotations

import dataclasses
import re

import pytest
from conftest import assert_clean_error
from hydra import compose, initialize_config_dir

from lstm_cli.common.errors import ConfigError
from lstm_cli.common.paths import config_dir
from lstm_cli.config import dataset_schema as dataset_schemas
from lstm_cli.config import schema as schemas
from lstm_cli.config.checks import validate_train_config
from lstm_cli.config.schema import ModelConfig, PredictConfig, TrainConfig, TrainerConfig
from lstm_cli.config.validate import build, unknown_key
from lstm_cli.config.validate import composed as train_values

CONF = config_dir()
SCHEMAS = [
    value
    for module in (schemas, dataset_schemas)
    for value in vars(module).values()
    if dataclasses.is_dataclass(value) and value.__module__ == module.__name__
]
GROUPS = ("model", "optimizer", "loss", "clip", "scheduler", "dataset")
NEEDS_PATH = {
    "csv_forecast": ["dataset.path=x.csv", "dataset.target=y"],
    "csv_sequences": ["dataset.path=x.csv"],
    "text": ["dataset.path=x.txt"],
    "npz": ["dataset.path=x.npz"],
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(*overrides: str) -> dict:
    return train_values("train", list(overrides))


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option):
    overrides = [f"{group}={option}", *NEEDS_PATH.get(option, [])]
    if group == "loss" and option == "cross_entropy":
        overrides.append("dataset=italy_power")
    if group == "loss" and option != "cross_entropy":
        overrides.append("dataset=airline")
    config, task = validate_train_config(composed(*overrides))
    assert getattr(config, group) is not None and task


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_evaluate_and_predict_configs_compose(command):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        assert "run_dir" in compose(command)


def test_every_yaml_key_has_a_comment():
    for path in CONF.rglob("*.yaml"):
        block_indent = None  # inside a `|-` text block, whose lines are text, not keys
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            indent = len(line) - len(line.lstrip())
            if block_indent is not None and (not line.strip() or indent > block_indent):
                continue
            block_indent = None
            stripped = line.strip()
            if ":" not in stripped or stripped.startswith(("#", "-")):
                continue
            value = stripped.split(":", 1)[1].split("#", 1)[0].strip()
            if value in ("|", "|-"):
                block_indent = indent
            if value:
                assert "#" in line, f"{path.relative_to(CONF)}:{number} has no comment: {line}"


def test_unknown_key_suggests_the_nearest_one():
    with pytest.raises(
        ConfigError,
        match=r"trainer.max_epoch is not a known key \(did you mean "
        r"trainer.max_epochs\?\)",
    ):
        build(TrainerConfig, {"max_epoch": 3}, prefix="trainer.")


def test_ints_become_floats_but_bools_are_not_numbers():
    model = composed()["model"]
    assert build(ModelConfig, {**model, "dropout": 0}).dropout == 0.0
    with pytest.raises(ConfigError, match=re.escape("model.hidden_size=True must be an integer")):
        build(ModelConfig, {**model, "hidden_size": True}, prefix="model.")


def test_choices_are_listed():
    with pytest.raises(
        ConfigError,
        match=re.escape("trainer.device='gpu' is not allowed; choose one of: auto, cpu, cuda, mps"),
    ):
        build(TrainerConfig, {**composed()["trainer"], "device": "gpu"}, prefix="trainer.")


def test_a_missing_key_is_an_error_never_a_silent_default():
    trainer = composed()["trainer"]
    del trainer["max_epochs"]
    with pytest.raises(ConfigError, match=re.escape("trainer.max_epochs is missing")):
        build(TrainerConfig, trainer, prefix="trainer.")


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.__name__)
def test_the_schema_holds_no_values_the_yaml_holds_them(schema):
    """One source for each default: conf/*.yaml. A default here would be a second one."""
    with_defaults = [
        f.name
        for f in dataclasses.fields(schema)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert not with_defaults, f"{schema.__name__} has defaults for {with_defaults}"


def test_nesterov_needs_momentum():
    values = composed("optimizer=sgd", "optimizer.momentum=0")
    with pytest.raises(
        ConfigError, match=re.escape("optimizer.nesterov=true needs optimizer.momentum > 0")
    ):
        validate_train_config(values)


def test_forecast_splits_must_hold_a_horizon():
    values = composed("dataset.horizon=30", "dataset.val_size=24")
    with pytest.raises(
        ConfigError, match=re.escape("dataset.val_size=24 is shorter than dataset.horizon=30")
    ):
        validate_train_config(values)


@pytest.mark.parametrize(
    ("schema", "typo", "meant"),
    [
        (TrainConfig, "trainer.max_epoch", "trainer.max_epochs"),
        (TrainConfig, "trainr.max_epochs", "trainer.max_epochs"),
        (TrainConfig, "optimizer.lrr", "optimizer.lr"),  # a key of one option of a group
        (TrainConfig, "dataset.windw", "dataset.window"),
        (PredictConfig, "predict.stpes", "predict.steps"),
        (TrainConfig, "zzz", None),
    ],
)
def test_the_closest_key_to_a_typo_is_found_in_the_schema(schema, typo, meant):
    assert unknown_key(schema, typo)[0] == meant


def test_a_misspelled_override_gets_a_suggestion(cli):
    result = cli("train", "trainer.max_epoch=3")
    assert_clean_error(result, 2, "trainer.max_epoch", "did you mean trainer.max_epochs?")
