"""Turn a composed Hydra config into typed dataclasses, or fail with one clear line.

The checks run before any work: an unknown key (with the nearest valid one suggested), a
value of the wrong type, a value out of range, or a choice that is not offered each raise
`ConfigError` naming the full key, the value given and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, TypeVar, Union

from lstm_cli.common.errors import ConfigError
from lstm_cli.config.schema import VARIANT_GROUPS

T = TypeVar("T")

_BOUND_TEXT = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def build(schema: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """Build `schema` from plain `values`, checking keys, types and ranges recursively."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for key in values:
        if key not in fields:
            raise ConfigError(_unknown_key_message(prefix + key, key, list(fields)))
    kwargs: dict[str, Any] = {}
    for name, spec in fields.items():
        full_key = prefix + name
        if name not in values:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{full_key} is missing: this key has no default")
            continue
        value = values[name]
        if name in VARIANT_GROUPS and hints[name] is Any:
            kwargs[name] = build_variant(name, value)
            continue
        value = _check_type(full_key, value, hints[name])
        _check_bounds(full_key, value, spec.metadata)
        kwargs[name] = value
    return schema(**kwargs)


def build_variant(group: str, values: Any) -> Any:
    """Build one option of a group whose keys depend on the option (`optimizer`, ...)."""
    selector, options = VARIANT_GROUPS[group]
    if not isinstance(values, dict):
        raise ConfigError(f"{group} must be a mapping, got {values!r}")
    choice = values.get(selector)
    if choice not in options:
        raise ConfigError(
            f"{group}.{selector}={choice!r} is not one of: {', '.join(sorted(options))}"
        )
    return build(options[choice], values, prefix=f"{group}.")


def unknown_key(
    schema: type, dotted: str, chosen: dict[str, str] | None = None
) -> tuple[str | None, list[str]]:
    """For a `dotted` key the schema lacks: the nearest valid key (None when nothing is
    close) and the valid keys at the level where `dotted` goes wrong. `chosen` names the
    option of a group whose keys depend on it (dataset: its kind), when known."""
    names: list[str] = [f.name for f in dataclasses.fields(schema)]
    hints: dict[str, Any] = typing.get_type_hints(schema)
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1)
            nearest = ".".join([*parts[:depth], close[0], *parts[depth + 1 :]]) if close else None
            return nearest, [".".join([*parts[:depth], name]) for name in names]
        inner = _schemas_under(part, hints.get(part), (chosen or {}).get(part))
        names = sorted({f.name for s in inner for f in dataclasses.fields(s)})
        hints = {k: v for s in inner for k, v in typing.get_type_hints(s).items()}
    return None, []


def _schemas_under(name: str, hint: Any, choice: str | None) -> list[type]:
    if name in VARIANT_GROUPS and hint is Any:
        options = VARIANT_GROUPS[name][1]
        return [options[choice]] if choice in options else list(options.values())
    options = typing.get_args(hint) or (hint,)
    return [option for option in options if dataclasses.is_dataclass(option)]


def _unknown_key_message(full_key: str, key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {full_key[: -len(key)]}{close[0]}?)" if close else ""
    return f"{full_key} is not a known key{hint}; valid keys here: {', '.join(valid)}"


def _check_type(key: str, value: Any, hint: Any) -> Any:
    """Return `value` converted to `hint` (int -> float, list -> tuple), or raise."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for option in inner:
            try:
                return _check_type(key, value, option)
            except ConfigError as err:
                errors.append(err)
        literals = [option for option in inner if typing.get_origin(option) is Literal]
        scalars = [option for option in inner if option in (int, float, bool, str)]
        if literals and scalars and len(literals) + len(scalars) == len(inner):  # e.g. true/auto
            kinds = " or ".join(_type_name(option) for option in scalars)
            choices = ", ".join(str(a) for option in literals for a in typing.get_args(option))
            raise ConfigError(f"{key}={value!r} must be {kinds}, or one of: {choices}")
        raise errors[0]
    if origin is Literal:
        if isinstance(value, int) and str(value) in args:  # precision=32 is read as a number
            value = str(value)
        if value not in args:
            allowed = ", ".join(str(a) for a in args)
            raise ConfigError(f"{key}={value!r} is not allowed; choose one of: {allowed}")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return build(hint, value, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}={value!r} must be a list")
        if origin is tuple and len(value) != len(args):
            raise ConfigError(f"{key}={value!r} must have exactly {len(args)} items")
        item_types = args if origin is tuple else [args[0]] * len(value)
        items = [
            _check_type(f"{key}[{i}]", v, t)
            for i, (v, t) in enumerate(zip(value, item_types, strict=True))
        ]
        return tuple(items) if origin is tuple else items
    return _check_scalar(key, value, hint)


def _check_scalar(key: str, value: Any, hint: type) -> Any:
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key}={value!r} must be {_type_name(hint)}")


def _type_name(hint: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        hint, hint.__name__
    )


def _check_bounds(key: str, value: Any, bounds: typing.Mapping[str, float]) -> None:
    if value is None or not bounds:
        return
    tests = {
        "ge": value >= bounds.get("ge", value),
        "gt": "gt" not in bounds or value > bounds["gt"],
        "le": value <= bounds.get("le", value),
        "lt": "lt" not in bounds or value < bounds["lt"],
    }
    if not all(tests.values()):
        allowed = " and ".join(f"{_BOUND_TEXT[b]} {bounds[b]}" for b in _BOUND_TEXT if b in bounds)
        raise ConfigError(f"{key}={value!r} is out of range: must be {allowed}")


def resolve(cfg: Any) -> dict[str, Any]:
    """A composed DictConfig as plain containers, interpolations resolved.

    A required value left at `???` and an interpolation that cannot be resolved are
    config errors naming the key.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        key = getattr(err, "full_key", "") or "a key"
        raise ConfigError(f"{key} is required: set it with {key}=...") from None
    except InterpolationResolutionError as err:
        key = getattr(err, "full_key", "") or "a key"
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from None


def dotted_keys(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level: `{"a": {"b": 1}}` -> `{"a.b": 1}`."""
    if not isinstance(values, dict):
        return {prefix[:-1]: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat |= dotted_keys(value, f"{prefix}{key}.")
    return flat


def composed(command: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """The config a command would run with, composed from conf/ by Hydra outside an app
    (for code that builds configs itself: tests, benchmarks), as plain resolved values."""
    return resolve(_compose(command, overrides or []))


def _compose(command: str, overrides: list[str]) -> Any:
    """Hydra's composition of conf/<command>.yaml; inside a running app, through its own
    initialised Hydra (which searches the same conf/)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lstm_cli.common.paths import config_dir

    if GlobalHydra.instance().is_initialized():
        return compose(command, overrides)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(command, overrides)


def option_config(group: str, option: str, **values: Any) -> Any:
    """One option of a variant group, typed, from its YAML under conf/ with `values`
    replacing keys: e.g. option_config("loss", "mse") or option_config("dataset",
    "csv_forecast", path="sales.csv", target="units")."""
    from omegaconf import OmegaConf

    from lstm_cli.common.paths import config_dir

    loaded = OmegaConf.to_container(OmegaConf.load(config_dir() / group / f"{option}.yaml"))
    own = loaded.get(group, loaded)  # a preset (`@package _global_`) nests its group's keys
    own.pop("defaults", None)
    return build_variant(group, {**own, **values})


def completed(saved: dict[str, Any]) -> dict[str, Any]:
    """A train config saved by an earlier lstm-train, its keys added since filled from
    today's conf/ (the options it chose, composed by Hydra): the one source of defaults
    also completes old checkpoints, which are otherwise read exactly as saved."""
    from omegaconf import OmegaConf

    chosen = [
        f"{group}={saved[group][selector]}"
        for group, (selector, _) in VARIANT_GROUPS.items()
        if isinstance(saved.get(group), dict) and isinstance(saved[group].get(selector), str)
    ]
    base = _compose("train", chosen)
    OmegaConf.set_struct(base, False)
    return resolve(OmegaConf.merge(base, saved))
