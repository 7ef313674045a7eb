"""Recipes: one small declarative config naming a choice per stage, saved beside every run.

A recipe file is JSON. Unknown keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from kws_zoo.datasets.augment import AugmentConfig
from kws_zoo.datasets.base import DataConfig
from kws_zoo.frontends import FrontendConfig


class RecipeError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Schedule:
    epochs: int = 30
    batch_size: int = 100
    learning_rate: float = 3e-3
    final_learning_rate: float = 5e-5  # cosine decay ends here
    warmup_epochs: int = 1
    label_smoothing: float = 0.05
    weight_decay: float = 0.0  # decoupled (AdamW) when > 0


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    model: str
    data: DataConfig
    frontend: FrontendConfig = FrontendConfig()
    augment: AugmentConfig = AugmentConfig()
    schedule: Schedule = Schedule()
    model_overrides: dict = dataclasses.field(default_factory=dict)
    # Extra evaluation sets reported after training, e.g. real speech for a model trained on TTS.
    extra_eval: tuple = ()
    clip_ms: int = 1000
    seed: int = 0

    @property
    def clip_samples(self) -> int:
        return self.frontend.sample_rate * self.clip_ms // 1000

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)


def _build(cls, values: Any, where: str):
    if not isinstance(values, dict):
        raise RecipeError(f"{where}: expected an object, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {unknown}; valid: {sorted(fields)}")
    kwargs = {}
    for key, value in values.items():
        kind = _NESTED.get((cls, key))
        if kind is tuple:
            value = tuple(_build(DataConfig, v, f"{where}.{key}[{i}]") for i, v in enumerate(value))
        elif kind is not None:
            value = _build(kind, value, f"{where}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{where}: {err}") from None


_NESTED = {(Recipe, "data"): DataConfig, (Recipe, "frontend"): FrontendConfig,
           (Recipe, "augment"): AugmentConfig, (Recipe, "schedule"): Schedule, (Recipe, "extra_eval"): tuple}


def recipe_from_dict(values: dict, where: str = "recipe") -> Recipe:
    return _build(Recipe, values, where)


def load_recipe(path) -> Recipe:
    path = os.fspath(path)
    if not os.path.isfile(path):
        builtin = os.path.join(os.path.dirname(os.path.dirname(__file__)), "recipes", f"{path}.json")
        if os.path.isfile(builtin):
            path = builtin
        else:
            raise RecipeError(f"{path}: recipe file not found (and no built-in recipe of that name)")
    try:
        with open(path) as f:
            values = json.load(f)
    except json.JSONDecodeError as err:
        raise RecipeError(f"{path}: not valid JSON ({err})") from None
    return recipe_from_dict(values, where=path)


def save_recipe(recipe: Recipe, path) -> None:
    from kws_zoo.io import atomic_write_text

    atomic_write_text(path, json.dumps(recipe.to_dict(), indent=2) + "\n")
