"""Every recipe in recipes/ loads and builds its model on its own frontend's output (no training)."""
import dataclasses
import pathlib

import pytest

from kws_zoo.models import list_models
from kws_zoo.recipe import load_recipe
from kws_zoo.train import build_model

RECIPES = pathlib.Path(__file__).resolve().parent.parent / "recipes"
FILES = sorted(RECIPES.glob("*.json"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_recipe_loads_and_builds(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem  # the run dir is named after it; a stale copy-paste name would collide
    model = build_model(recipe, 12, None)
    assert tuple(model.input_shape[1:]) == recipe.frontend.output_shape(recipe.clip_samples)
    assert tuple(model.output_shape) == (None, 12)


def test_every_registered_model_has_a_digits_recipe():
    digits = load_recipe(RECIPES / "digits.json")
    covered = {load_recipe(p).model for p in FILES if load_recipe(p).data == digits.data}
    assert sorted(set(list_models()) - covered) == []


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*_digits.json")), ids=lambda p: p.stem)
def test_digits_recipes_share_the_benchmark(path):
    """Same data, real-speech evaluation and schedule as digits.json; only model, frontend, SpecAugment differ."""
    digits, recipe = load_recipe(RECIPES / "digits.json"), load_recipe(path)
    assert recipe.data == digits.data and recipe.extra_eval == digits.extra_eval
    assert recipe.schedule == digits.schedule and recipe.clip_ms == digits.clip_ms
    spectral = {"time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins"}
    others = {f.name for f in dataclasses.fields(recipe.augment)} - spectral
    assert {k: getattr(recipe.augment, k) for k in others} == {k: getattr(digits.augment, k) for k in others}
    if recipe.frontend.kind != "raw":  # FSDD is 8 kHz: every feature frontend stops at 4 kHz like digits.json
        assert recipe.frontend.fmax == digits.frontend.fmax

