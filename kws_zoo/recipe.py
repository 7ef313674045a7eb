"""Recipes: one small declarative config naming a choice per stage, saved beside every run.

A recipe file is JSON. Unknown keys are errors (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
import json
import os

from kws_zoo.compress.config import CompressConfig
from kws_zoo.core.config import from_dict
from kws_zoo.core.errors import ConfigError, ModelError, RecipeError
from kws_zoo.core.files import atomic_write_text
from kws_zoo.data.augment import AugmentConfig
from kws_zoo.data.base import DataConfig
from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.models import get_entry, model_config


@dataclasses.dataclass(frozen=True)
class Schedule:
    epochs: int = 30
    batch_size: int = 100
    learning_rate: float = 3e-3
    final_learning_rate: float = 5e-5  # cosine decay ends here
    warmup_epochs: int = 1
    label_smoothing: float = 0.05
    weight_decay: float = 0.0  # decoupled (AdamW) when > 0
    # Loss weight of examples whose label is _silence_ or _unknown_: above 1 a false accept costs more than a
    # false reject, as wake-word trainers weigh their negatives (false accepts per hour are what users notice).
    negative_weight: float = 1.0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not self.learning_rate > 0 or self.final_learning_rate < 0 or self.weight_decay < 0:
            raise ConfigError("learning_rate must be > 0, final_learning_rate and weight_decay >= 0")
        if not self.negative_weight > 0:
            raise ConfigError(f"negative_weight must be > 0, got {self.negative_weight}")
        if self.warmup_epochs < 0 or not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"need warmup_epochs >= 0 and 0 <= label_smoothing < 1, got {self.warmup_epochs} "
                             f"and {self.label_smoothing}")


STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class DistributeConfig:
    """How training is spread over devices and machines (kws_zoo.distribute); it does not change the trained
    weights beyond float summation order, so it is not part of a run's training key."""
    strategy: str = "default"
    # Mid-epoch backups every this many training steps (0: the end-of-epoch checkpoint only). A run killed
    # mid-epoch resumes from the last backup: a restarted worker loses at most this many steps.
    backup_every_steps: int = 0

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"distribute.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.backup_every_steps < 0:
            raise ConfigError(f"distribute.backup_every_steps must be >= 0, got {self.backup_every_steps}")


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
    extra_eval: tuple[DataConfig, ...] = ()
    clip_ms: int = 1000
    seed: int = 0
    # Per-bin feature normalisation inside the model (kws_zoo.models.common.feature_input). Off for firmware that
    # feeds the micro frontend's int8 features straight in with fixed scaling (ESPHome's micro_wake_word).
    feature_norm: bool = True
    # Compression after training (prune or DSNN, then QAT), run on the re-parameterized model by `kws-zoo train`.
    compress: CompressConfig = CompressConfig()
    distribute: DistributeConfig = DistributeConfig()

    def __post_init__(self):
        if not self.name or not self.model:
            raise ConfigError("name and model must be non-empty")
        if self.clip_ms <= 0:
            raise ConfigError(f"clip_ms must be > 0, got {self.clip_ms}")

    @property
    def clip_samples(self) -> int:
        return self.frontend.sample_rate * self.clip_ms // 1000

    def to_dict(self) -> dict:
        """JSON-ready values; without `compress` and `distribute` when they are the defaults (recipes and runs from
        before those sections existed keep their exact JSON)."""
        values = dataclasses.asdict(self)
        for key, default in (("compress", CompressConfig()), ("distribute", DistributeConfig())):
            if getattr(self, key) == default:
                del values[key]
        return values

    def training_dict(self) -> dict:
        """What decides the float training run: everything but the compression settings, which only decide the
        stage after it (changing them re-runs compression, not training), and the distribution settings."""
        values = self.to_dict()
        values.pop("compress", None)
        values.pop("distribute", None)
        return values

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)


def recipe_from_dict(values: dict, where: str = "recipe") -> Recipe:
    """A Recipe from JSON-like values, checked whole (keys, types, ranges, the model and its overrides)
    before anything is trained or written. RecipeError names `where` and the field."""
    try:
        recipe = from_dict(Recipe, values)
    except ConfigError as err:
        raise RecipeError(f"{where}: {err}") from None
    try:
        get_entry(recipe.model)
    except ModelError as err:
        raise RecipeError(f"{where}: model: {err}") from None
    try:
        model_config(recipe.model, **recipe.model_overrides)
    except (TypeError, ValueError) as err:  # unknown fields (ModelError), or values the family's config refuses
        raise RecipeError(f"{where}: model_overrides: {err}") from None
    return recipe


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
    atomic_write_text(path, json.dumps(recipe.to_dict(), indent=2) + "\n")


def with_epochs(recipe: Recipe, epochs: int | None) -> Recipe:
    """The recipe with another epoch budget (None keeps its own), as `--epochs` asks."""
    if epochs is None:
        return recipe
    if epochs < 1:
        raise RecipeError(f"--epochs must be at least 1, got {epochs}")
    return recipe.replace(schedule=dataclasses.replace(recipe.schedule, epochs=epochs))


def with_distribute(recipe: Recipe, strategy: str | None, backup_every_steps: int | None) -> Recipe:
    """The recipe with another distribution strategy and backup interval (None keeps the recipe's), as `kws-zoo
    train --strategy/--backup-every/--workers` ask."""
    changes = {k: v for k, v in (("strategy", strategy), ("backup_every_steps", backup_every_steps)) if v is not None}
    if not changes:
        return recipe
    try:
        return recipe.replace(distribute=dataclasses.replace(recipe.distribute, **changes))
    except ConfigError as err:
        raise RecipeError(str(err)) from None
