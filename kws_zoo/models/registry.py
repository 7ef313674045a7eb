"""Model registry: architectures are registered builder presets, created by name (timm's convention).

A preset is (builder, config dataclass instance). `create_model(name, **overrides)` replaces config
fields, so `create_model("ds_cnn", filters=32)` is a valid experiment without a new preset.

Each family registers its presets when imported. Python runs kws_zoo/models/__init__.py, which imports every
family, before it runs any module of the package, so the registry is complete wherever this module is reachable.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any, Callable

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ModelError


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable[..., keras.Model]
    config: Any  # frozen dataclass of the family's settings
    streamable: bool = False  # can be converted by kws_zoo.streaming.to_streaming
    description: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, family: str, builder: Callable, config: Any, streamable: bool = False,
                   description: str = "") -> ModelEntry:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config of {name!r} must be a dataclass instance, got {type(config).__name__}")
    entry = ModelEntry(name, family, builder, config, streamable, description)
    _REGISTRY[name] = entry
    return entry


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style pattern, e.g. list_models('ds_cnn*')."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        close = [n for n in _REGISTRY if n.split("_")[0] == name.split("_")[0]] or sorted(_REGISTRY)
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(sorted(close))}")
    return _REGISTRY[name]


def model_config(name: str, **overrides) -> Any:
    entry = get_entry(name)
    fields = {f.name for f in dataclasses.fields(entry.config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ModelError(f"{name}: unknown config field(s) {unknown}; valid: {sorted(fields)}")
    return dataclasses.replace(entry.config, **overrides)


DEFAULT_INPUT_SHAPE = (49, 10)  # MLPerf Tiny's 49 frames x 10 MFCC


def create_model(name: str, *, input_shape=None, num_classes: int = 12, feature_stats=None,
                 **overrides) -> keras.Model:
    """Builds a registered model.

    input_shape: features (frames, bins) from the frontend, or (samples,) for raw-waveform models;
        None takes the preset's `default_input_shape` (or 49 x 10).
    feature_stats: optional (mean, variance) per feature bin, built into the graph as the first layer
        so the exported model consumes raw frontend output.
    overrides: replace fields of the preset's config dataclass.
    """
    entry = get_entry(name)
    config = model_config(name, **overrides)
    if input_shape is None:
        input_shape = getattr(config, "default_input_shape", None) or DEFAULT_INPUT_SHAPE
    model = entry.builder(config, input_shape=tuple(input_shape), num_classes=num_classes,
                          feature_stats=feature_stats)
    model._name = name  # noqa: SLF001 - keras has no public renamer; the name shows in summaries and files
    return model
