"""kws_zoo.compare on two tiny recipes: every column filled from real runs, outputs written, reruns reuse."""
import json
import os
import shutil
import time

import pytest

from kws_zoo import rundir
from kws_zoo.core.errors import RecipeError
from kws_zoo.recipe import recipe_from_dict, with_epochs
from kws_zoo.train import train
from kws_zoo.workflows import compare as cmp

from helpers import make_tone_corpus, run_cli, tiny_recipe_dict

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_compare")

EPOCHS = 2


def _recipes(corpus):
    ds_cnn = tiny_recipe_dict(corpus, name="tiny_ds_cnn", epochs=EPOCHS)
    rep = dict(tiny_recipe_dict(corpus, name="tiny_repcnn", epochs=EPOCHS), model="repcnn_s_plain",
               model_overrides={"stem_filters": 8, "stage_filters": [8, 16, 16]})
    return [recipe_from_dict(ds_cnn), recipe_from_dict(rep)]


def _history(run_dir):
    return rundir.read_checkpoint_state(run_dir)["history"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    recipes = _recipes(make_tone_corpus(root / "corpus", speakers=30))
    out = str(root / "out")
    # An interrupted run of the second recipe: compare must resume it, not start over.
    partial_dir = cmp.run_dir_for(recipes[1], out)
    train(recipes[1], partial_dir, progress=False, stop_after_epoch=0)
    first_epoch = _history(partial_dir)[0]
    rows = cmp.compare(recipes, out, progress=False)
    return recipes, out, rows, first_epoch


def test_rows_have_every_column_from_the_runs(compared):
    recipes, out, rows, _ = compared
    assert [r["name"] for r in rows] == [r.name for r in recipes]
    for row, recipe in zip(rows, recipes):
        assert tuple(row) == cmp.COLUMNS
        assert row["model"] == recipe.model and row["run_dir"] == os.path.join(out, f"{recipe.name}_e{EPOCHS}")
        for key in ("params", "inference_params", "trainable_params", "macs", "flash_bytes", "arena_bytes",
                    "test_examples"):
            assert isinstance(row[key], int) and row[key] > 0, key
        assert row["trainable_params"] <= row["params"] and row["multiplications_avoided"] == 0
        assert row["tflm_invoke_ms_host"] > 0 and row["train_seconds"] > 0 and row["epochs"] == EPOCHS
        assert 0 <= row["accuracy_float"] <= 1 and 0 <= row["accuracy_tflm_int8"] <= 1
        # Not asked for: no FSDD eval in these recipes, no callgrind.
        assert row["fsdd_tflm_int8"] is None and row["instructions_per_invoke"] is None
        with open(os.path.join(row["run_dir"], rundir.EXPORT_DIR, rundir.MODEL_CARD)) as f:
            card = json.load(f)
        assert row["macs"] == card["macs"] and row["accuracy_tflm_int8"] == card["accuracy"]["tflm_int8"]
    assert rows[0]["family"] == "ds_cnn" and rows[1]["family"] == "repcnn"
    assert rows[1]["params"] > rows[1]["inference_params"]  # the plain twin still folds its BN at export


def test_interrupted_run_was_resumed(compared):
    _, _, rows, first_epoch = compared
    history = _history(rows[1]["run_dir"])
    assert len(history) == EPOCHS and history[0] == first_epoch


def test_outputs_written(compared):
    _, out, rows, _ = compared
    with open(os.path.join(out, "compare.json")) as f:
        saved = json.load(f)
    assert saved["rows"] == rows and saved["columns"] == list(cmp.COLUMNS)
    lines = open(os.path.join(out, "compare.md")).read().strip().splitlines()
    assert len(lines) == 2 + len(rows)  # header, separator, one line per recipe
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert [line.split("|")[1].strip() for line in lines[2:]] == [r["name"] for r in rows]
    assert "instr / invoke" not in lines[0]  # only with --callgrind
    assert os.path.getsize(os.path.join(out, "compare.png")) > 10_000


def test_rerun_reuses_training_and_export(compared, monkeypatch):
    recipes, out, rows, _ = compared

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished stage was run again")

    monkeypatch.setattr(cmp, "train", forbidden)
    monkeypatch.setattr(cmp, "export_run", forbidden)
    histories = [_history(r["run_dir"]) for r in rows]
    start = time.time()
    again = cmp.compare(recipes, out, progress=False)
    assert again == rows and [_history(r["run_dir"]) for r in rows] == histories
    assert time.time() - start < 30


def test_a_new_recipe_with_finished_training_in_out_dir_copies_it(compared, tmp_path, monkeypatch):
    """A recipe differing only in name (or compression) compared on its own into an out dir that holds its
    training reuses that training instead of training again."""
    recipes, out, rows, _ = compared
    assert set(cmp.finished_trainings(out).values()) == {r["run_dir"] for r in rows}
    other_out = str(tmp_path / "out")
    shutil.copytree(rows[0]["run_dir"], os.path.join(other_out, os.path.basename(rows[0]["run_dir"])))

    def forbidden(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(cmp, "train", forbidden)
    twin = recipes[0].replace(name=f"{recipes[0].name}_twin")
    [row] = cmp.compare([twin], other_out, progress=False)
    assert _history(row["run_dir"]) == _history(rows[0]["run_dir"])
    assert row["accuracy_tflm_int8"] == rows[0]["accuracy_tflm_int8"]


def test_stale_model_card_is_re_exported(compared, tmp_path, monkeypatch):
    """A card from an older export (missing a field) is redone; the finished training is still reused."""
    recipes, _, rows, _ = compared
    run_dir = cmp.run_dir_for(recipes[0], str(tmp_path))
    shutil.copytree(rows[0]["run_dir"], run_dir)
    card_path = os.path.join(run_dir, rundir.EXPORT_DIR, rundir.MODEL_CARD)
    with open(card_path) as f:
        card = json.load(f)
    del card["inference_params"]
    with open(card_path, "w") as f:
        json.dump(card, f)
    monkeypatch.setattr(cmp, "train", lambda *a, **k: pytest.fail("training was finished"))
    [row] = cmp.compare(recipes[:1], str(tmp_path), progress=False)
    assert row["inference_params"] == rows[0]["inference_params"] and row["macs"] == rows[0]["macs"]
    with open(card_path) as f:
        assert "inference_params" in json.load(f)


def test_cli_json_reuses_the_runs(compared, tmp_path):
    recipes, out, rows, _ = compared
    files = []
    for recipe in recipes:
        files.append(tmp_path / f"{recipe.name}.json")
        files[-1].write_text(json.dumps(recipe.to_dict()))
    proc = run_cli("compare", *files, "--out", out, "--epochs", EPOCHS, "--json", timeout=300)
    assert json.loads(proc.stdout) == rows  # stdout is only the JSON; progress went to stderr
    assert "trained already" in proc.stderr and "not re-exported" in proc.stderr


def test_epoch_override_names_the_run_dir(compared):
    recipe = compared[0][0]
    three = with_epochs(recipe, 3)
    assert three.schedule.epochs == 3 and three.replace(schedule=recipe.schedule) == recipe
    assert cmp.run_dir_for(three, "runs/compare") == os.path.join("runs/compare", f"{recipe.name}_e3")
    with pytest.raises(RecipeError):
        with_epochs(recipe, 0)


def test_fsdd_and_callgrind_cells(compared):
    row = dict(compared[2][0], fsdd_float=0.5, fsdd_float_closed_set=0.75, fsdd_tflm_int8=0.25,
               fsdd_tflm_int8_closed_set=None, instructions_per_invoke=1234567)
    header, _, line = cmp.markdown_table([row]).splitlines()
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in line.split("|")]))
    assert cells["FSDD float [closed]"] == "50.0% [75.0%]" and cells["FSDD TFLM int8 [closed]"] == "25.0%"
    assert cells["instr / invoke"] == "1,234,567"


def test_duplicate_names_are_refused(compared, tmp_path):
    recipe = compared[0][0]
    with pytest.raises(RecipeError, match="distinct"):
        cmp.compare([recipe, recipe], str(tmp_path), progress=False)
