"""The one strict parser from JSON-like dicts to the frozen config dataclasses (recipes, data, frontends,
augmentation, schedules), and back.

Keys must be fields (a typo must not silently fall back to a default); values must have the field's annotated
type (JSON lists become tuples, an int may stand for a float, a bool never for a number); nested dataclasses are
parsed the same way; each dataclass' __post_init__ then checks ranges. Every error names the place, e.g.
`recipes/x.json: schedule.epochs: expected int, got str 'ten'`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from kws_zoo.core.errors import ConfigError


def from_dict(cls, values: Any, where: str = ""):
    """An instance of dataclass `cls` from `values` (a dict), type-checked field by field."""
    name = where or cls.__name__
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: expected an object, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{name}: unknown {cls.__name__} keys {unknown}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {key: _typed(value, hints[key], f"{where}.{key}" if where else key) for key, value in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # from the dataclass' own checks
        raise ConfigError(f"{name}: {err}") from None


def to_dict(obj) -> dict[str, Any]:
    """The JSON-ready dict of a config dataclass (tuples as lists)."""
    return _plain(dataclasses.asdict(obj))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


# annotation -> (accepted JSON value types, what the error says is expected)
_SCALARS = {bool: ((bool,), "true or false"), int: ((int,), "int"), float: ((int, float), "a number"),
            str: ((str,), "a string"), dict: ((dict,), "an object")}


def _typed(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _typed(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {_shown(value)} fits none of {hint}")
    if hint is tuple or origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_shown(value)}")
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_typed(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    scalar = _SCALARS.get(dict if origin is dict else hint)
    if scalar is not None:
        accepted, expected = scalar
        # bool is an int in Python, but `true` is not a number in a config.
        if not isinstance(value, accepted) or (isinstance(value, bool) and hint is not bool):
            raise ConfigError(f"{where}: expected {expected}, got {_shown(value)}")
        return float(value) if hint is float else value
    return value  # Any and other hints: taken as they are


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
