"""Training: exact resume after a kill, atomic checkpoints, recipe validation."""
import json
import os

import numpy as np
import pytest

from kws_zoo.core.compat import tf
from kws_zoo.core.errors import RecipeError, RunDirError
from kws_zoo.recipe import load_recipe, recipe_from_dict
from kws_zoo.train import (Checkpointer, accuracy, build_model, feature_stats, holds_other_recipe, loss_for,
                           make_optimizer, prepare_data, train)

from helpers import make_tone_corpus, tiny_recipe_dict

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_train")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tone_corpus(tmp_path_factory.mktemp("tones"))


def test_killed_and_resumed_run_equals_uninterrupted_run(corpus, tmp_path):
    recipe = recipe_from_dict(tiny_recipe_dict(corpus, epochs=3))
    # best-by-validation would hide a divergence in later epochs: compare the final checkpoint's weights.
    data = prepare_data(recipe, progress=False)
    full = train(recipe, str(tmp_path / "full"), progress=False, data=data)
    stopped = train(recipe, str(tmp_path / "resumed"), progress=False, stop_after_epoch=0, data=data)
    assert stopped == {"stopped_after_epoch": 0}
    state = json.load(open(tmp_path / "resumed" / "checkpoint.json"))
    assert state["epoch"] == 0 and os.path.isdir(tmp_path / "resumed" / state["path"])
    assert not os.path.exists(tmp_path / "resumed" / "model.keras")
    resumed = train(recipe, str(tmp_path / "resumed"), progress=False, data=data)  # a new call = a new start
    assert resumed["best_epoch"] == full["best_epoch"]
    for a, b in zip(_last_weights(tmp_path / "full", recipe, data), _last_weights(tmp_path / "resumed", recipe, data)):
        np.testing.assert_array_equal(a, b)
    h_full = json.load(open(tmp_path / "full" / "checkpoint.json"))["history"]
    h_res = json.load(open(tmp_path / "resumed" / "checkpoint.json"))["history"]
    assert [r["loss"] for r in h_full] == [r["loss"] for r in h_res]


def test_a_run_killed_mid_epoch_resumes_from_its_backup_exactly(corpus, tmp_path):
    values = tiny_recipe_dict(corpus, epochs=1)
    values["model_overrides"]["dropout_last"] = 0.0  # dropout masks after a mid-epoch resume are drawn anew
    values["distribute"] = {"backup_every_steps": 4}
    recipe = recipe_from_dict(values)
    data = prepare_data(recipe, progress=False)
    train(recipe, str(tmp_path / "full"), progress=False, data=data)
    stopped = train(recipe, str(tmp_path / "resumed"), progress=False, stop_after_step=8, data=data)
    assert stopped == {"stopped_after_step": 8, "epoch": 0}
    backup = json.load(open(tmp_path / "resumed" / "backup" / "state.json"))
    assert (backup["epoch"], backup["step"]) == (0, 8)
    assert not os.path.exists(tmp_path / "resumed" / "checkpoint.json")  # no epoch finished
    train(recipe, str(tmp_path / "resumed"), progress=False, data=data)
    for a, b in zip(_last_weights(tmp_path / "full", recipe, data), _last_weights(tmp_path / "resumed", recipe, data)):
        np.testing.assert_array_equal(a, b)
    h_full = json.load(open(tmp_path / "full" / "checkpoint.json"))["history"]
    h_res = json.load(open(tmp_path / "resumed" / "checkpoint.json"))["history"]
    assert h_res[0]["resumed_at_step"] == 8 and len(h_res) == len(h_full) == 1
    assert not os.path.exists(tmp_path / "resumed" / "backup")  # the epoch's checkpoint replaced it


def _last_weights(run_dir, recipe, data):
    model = build_model(recipe, len(data.labels), feature_stats(data.waveforms["train"], recipe, data.background))
    optimizer = make_optimizer(recipe, steps_per_epoch=1)
    optimizer.build(model.trainable_variables)
    ckpt = Checkpointer(str(run_dir), model, optimizer)
    ckpt.restore(ckpt.state())
    return model.get_weights()


def test_training_learns_and_writes_its_outputs(corpus, tmp_path):
    recipe = recipe_from_dict(tiny_recipe_dict(corpus, epochs=5))
    summary = train(recipe, str(tmp_path / "run"), progress=False)
    assert summary["best_val_accuracy"] > 0.6  # 4 well-separated chirps; chance is 0.25
    for name in ("model.keras", "recipe.json", "labels.txt", "kws_zoo.json", "train_summary.json"):
        assert os.path.exists(tmp_path / "run" / name), name
    assert os.listdir(tmp_path / "run" / "tensorboard")
    assert load_recipe(str(tmp_path / "run" / "recipe.json")) == recipe


def test_run_dir_of_another_recipe_is_refused(corpus, tmp_path):
    recipe = recipe_from_dict(tiny_recipe_dict(corpus, epochs=1))
    train(recipe, str(tmp_path / "run"), progress=False, stop_after_epoch=0)
    other = tiny_recipe_dict(corpus, name="other", epochs=1)
    other["model_overrides"] = {**other["model_overrides"], "filters": 8}
    with pytest.raises(RunDirError, match="different recipe"):
        train(recipe_from_dict(other), str(tmp_path / "run"), progress=False)
    # Name and compress section aside the training is the same: a compress variant may continue this run.
    variant = {**tiny_recipe_dict(corpus, name="variant", epochs=1), "compress": {"qat": {"weight_bits": 4}},
               "extra_eval": [{"kind": "fsdd"}]}  # nor do extra evaluation sets change the training
    assert not holds_other_recipe(str(tmp_path / "run"), recipe_from_dict(variant))
    # A recipe.json written before a field existed reads as that field's default: the same training.
    saved = json.loads((tmp_path / "run" / "recipe.json").read_text())
    del saved["data"]["unknown_dirs"], saved["data"]["background_dirs"]
    (tmp_path / "run" / "recipe.json").write_text(json.dumps(saved))
    assert not holds_other_recipe(str(tmp_path / "run"), recipe)
    with_noise = tiny_recipe_dict(corpus, epochs=1)
    with_noise["data"]["background_dirs"] = [corpus]
    assert holds_other_recipe(str(tmp_path / "run"), recipe_from_dict(with_noise))


def test_bad_recipes_name_the_problem(tmp_path):
    with pytest.raises(RecipeError, match="unknown Recipe keys"):
        recipe_from_dict({"name": "x", "model": "ds_cnn", "data": {"kind": "gsc"}, "epochz": 3})
    with pytest.raises(RecipeError, match="recipe: schedule: unknown Schedule keys"):
        recipe_from_dict({"name": "x", "model": "ds_cnn", "data": {}, "schedule": {"lr": 1}})
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(RecipeError, match="bad.json: not valid JSON"):
        load_recipe(str(bad))
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(str(tmp_path / "missing.json"))
    with pytest.raises(RecipeError, match="frontend"):
        recipe_from_dict({"name": "x", "model": "ds_cnn", "data": {}, "frontend": {"kind": "fft"}})


def test_the_loss_takes_integer_or_soft_labels(corpus):
    """Soft labels [B, classes] (mixup) and integer labels give the same label-smoothed cross-entropy when the soft
    labels are one-hot; a mix is the mix of the two losses (cross-entropy is linear in the target)."""
    loss = loss_for(recipe_from_dict(tiny_recipe_dict(corpus)), 3)
    logits = tf.constant([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    hard = loss(tf.constant([0, 2]), logits).numpy()
    assert np.allclose(loss(tf.one_hot([0, 2], 3), logits).numpy(), hard)
    mix = tf.constant([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    expected = 0.7 * hard[0] + 0.3 * loss(tf.constant([1, 1]), logits).numpy()[0]
    assert np.isclose(loss(mix, logits).numpy()[0], expected, atol=1e-6)
    # Accuracy reads either kind the same way (the larger share of a soft label is its class).
    assert accuracy(tf.constant([0, 1]), logits).numpy().tolist() == [1.0, 0.0]
    assert accuracy(mix, logits).numpy().tolist() == [1.0, 1.0]
