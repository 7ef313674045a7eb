"""Every recipe in recipes/ loads and builds its model on its own frontend's output (no training)."""
import dataclasses
import json
import pathlib

import pytest

from kws_zoo import cli
from kws_zoo.models import list_models
from kws_zoo.recipe import load_recipe
from kws_zoo.train import build_model
from kws_zoo.workflows.wakeword.config import is_wakeword_recipe, load_wakeword

RECIPES = pathlib.Path(__file__).resolve().parent.parent / "recipes"
WAKEWORD_FILES = sorted(p for p in RECIPES.glob("*.json") if is_wakeword_recipe(str(p)))
FILES = sorted(set(RECIPES.glob("*.json")) - set(WAKEWORD_FILES))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_recipe_loads_and_builds(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem  # the run dir is named after it; a stale copy-paste name would collide
    model = build_model(recipe, 12, None)
    assert tuple(model.input_shape[1:]) == recipe.frontend.output_shape(recipe.clip_samples)
    assert tuple(model.output_shape) == (None, 12)


@pytest.mark.parametrize("path", WAKEWORD_FILES, ids=[p.stem for p in WAKEWORD_FILES])
def test_wakeword_recipe_loads(path):
    cfg = load_wakeword(str(path))
    assert path.stem.startswith(f"wakeword_{cfg.phrase.replace(' ', '_')}")


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



def _good() -> dict:
    return {"name": "bad", "model": "ds_cnn_small", "data": {"kind": "folder", "path": "DATA"},
            "schedule": {"epochs": 1}}


# (what is changed, the field the one-line error must name); every level of the recipe.
BAD_RECIPES = [
    ({"schedule": {"epochs": "ten"}}, "schedule.epochs"),
    ({"schedule": {"epochs": -3}}, "schedule"),
    ({"schedule": {"batch_size": 0}}, "schedule"),
    ({"schedule": {"learning_rate": -1e-3}}, "schedule"),
    ({"schedule": {"epochz": 3}}, "schedule"),
    ({"frontend": {"hop_ms": 0}}, "frontend"),
    ({"frontend": {"sample_rate": -16000}}, "frontend"),
    ({"frontend": {"num_mels": "40"}}, "frontend.num_mels"),
    ({"frontend": {"kind": "wavelet"}}, "frontend"),
    ({"frontend": {"hop": 10}}, "frontend"),
    ({"augment": {"gain_db": [1]}}, "augment.gain_db"),
    ({"augment": {"speed_prob": 2}}, "augment"),
    ({"augment": {"gain": 1}}, "augment"),
    ({"data": {"kind": "librispeech", "path": "DATA"}}, "data"),
    ({"data": {"kind": "folder", "path": "DATA", "wordz": ["a"]}}, "data"),
    ({"data": {"kind": "folder", "path": "MISSING"}}, "data.path"),
    ({"data": {"kind": "folder", "path": "DATA", "words": "yes"}}, "data.words"),
    ({"data": {"kind": "folder", "path": "DATA", "skip_bad_files": 1}}, "data.skip_bad_files"),
    ({"data": {"kind": "folder"}}, "data"),
    ({"extra_eval": [{"kind": "fsdd", "path": "MISSING"}]}, "extra_eval[0].path"),
    ({"extra_eval": [{"kind": "nope"}]}, "extra_eval[0]"),
    ({"model": "ds_cnm"}, "model"),
    ({"model_overrides": {"filterz": 3}}, "model_overrides"),
    ({"model_overrides": 3}, "model_overrides"),
    ({"clip_ms": 0}, "clip_ms"),
    ({"seed": 1.5}, "seed"),
    ({"epochs": 3}, "unknown Recipe keys"),
]


@pytest.mark.parametrize("change,field", BAD_RECIPES, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_RECIPES)])
def test_bad_recipe_is_one_line_naming_file_and_field_and_writes_nothing(change, field, tmp_path, capsys):
    data = tmp_path / "corpus"
    data.mkdir()
    recipe = {**_good(), **change}
    text = json.dumps(recipe).replace('"DATA"', json.dumps(str(data))).replace('"MISSING"',
                                                                              json.dumps(str(tmp_path / "nope")))
    path = tmp_path / "bad.json"
    path.write_text(text)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert field in err and str(path) in err, err
    assert not out.exists()


def test_distribute_section_is_checked_and_does_not_change_the_training_key():
    from kws_zoo.core.errors import RecipeError
    from kws_zoo.recipe import recipe_from_dict, with_distribute
    from kws_zoo.train import training_key

    base = load_recipe("digits")
    spread = with_distribute(base, "multi_worker", 20)
    assert spread.distribute.strategy == "multi_worker" and spread.distribute.backup_every_steps == 20
    assert recipe_from_dict(spread.to_dict()) == spread and "distribute" not in base.to_dict()
    assert training_key(spread.training_dict()) == training_key(base.training_dict())  # a run resumes either way
    with pytest.raises(RecipeError, match="strategy must be one of"):
        recipe_from_dict({**base.to_dict(), "distribute": {"strategy": "parameter_server"}})
    with pytest.raises(RecipeError, match="backup_every_steps"):
        with_distribute(base, None, -1)
