"""`kws-zoo teacher`: a speech_embedding classifier trained on a recipe's data, a model folder that evaluate and
pseudo-label take as they take a run, resumable from its cached embeddings."""
import json

import numpy as np
import pytest

from kws_zoo import cli, rundir
from kws_zoo.core.errors import ConfigError, RunDirError
from kws_zoo.data import speech_embedding
from kws_zoo.evaluate.predictor import load_predictor
from kws_zoo.recipe import recipe_from_dict
from kws_zoo.workflows.pseudo_label import pseudo_label
from kws_zoo.workflows.teacher import EMBEDDINGS_DIR, train_teacher

from helpers import make_tone_corpus, tiny_recipe_dict

# The module-scoped fixture trains: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_teacher")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    corpus = make_tone_corpus(root / "corpus", speakers=10)
    recipe = recipe_from_dict(tiny_recipe_dict(corpus, name="tiny_teacher"))
    out = root / "teacher"
    summary = train_teacher(recipe, str(out), copies=1, epochs=25, progress=False)
    return recipe, corpus, out, summary


def test_the_teacher_folder_is_a_model_folder(teacher, capsys):
    recipe, corpus, out, summary = teacher
    assert sorted(p.name for p in (out / EMBEDDINGS_DIR).iterdir()) == ["test.npy", "train0.npy", "train1.npy",
                                                                        "validation.npy"]
    assert summary["train_examples"] == 2 * len(np.load(out / EMBEDDINGS_DIR / "train0.npy"))
    assert summary["test_accuracy"] > 0.5  # four tones, far apart: a working classifier, not chance (0.25)
    predictor = load_predictor(str(out))
    assert predictor.frontend.kind == "speech_embedding" and predictor.kind == "keras"
    capsys.readouterr()
    cli.main(["evaluate", str(out), "--data", "recipe", "--split", "test", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-9)


def test_pseudo_label_takes_the_teacher(teacher, tmp_path):
    _, corpus, out, _ = teacher
    summary = pseudo_label(str(out), corpus, str(tmp_path / "m.json"), threshold=0.5, progress=False)
    assert summary["kept"] > 0 and summary["agreement_with_folder_labels"] > 0.5


def test_a_rerun_reuses_the_cached_embeddings(teacher, monkeypatch):
    recipe, _, out, _ = teacher
    monkeypatch.setattr(speech_embedding, "embed", lambda *a, **k: pytest.fail("embedded again"))
    again = train_teacher(recipe, str(out), copies=1, epochs=1, progress=False)
    assert again["epochs"] == 1 and (out / rundir.MODEL).exists()
    with pytest.raises(ConfigError, match="copies"):
        train_teacher(recipe, str(out), copies=-1, progress=False)
    other = recipe_from_dict({**recipe.to_dict(), "augment": {"speed_prob": 0.5}})
    with pytest.raises(RunDirError, match="different recipe"):
        train_teacher(other, str(out), copies=1, epochs=1, progress=False)

