"""A labelled test set in the canonical Speech Commands test layout (`_silence_/`, `_unknown_/` and word folders as
labels): read as data, scored over every file by `kws-zoo evaluate --data DIR`, named in reports by its folder."""
import json

import numpy as np
import pytest
import soundfile as sf

from kws_zoo import rundir
from kws_zoo.cli import main
from kws_zoo.core.compat import keras
from kws_zoo.core.errors import DataError
from kws_zoo.data import DataConfig, load_dataset
from kws_zoo.data.base import SILENCE, UNKNOWN
from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.data.gsc import KEYWORDS_12
from kws_zoo.data.pseudo import MANIFEST_KIND
from kws_zoo.data.pipeline import features_for
from kws_zoo.evaluate.accuracy import evaluate_model
from kws_zoo.workflows.pseudo_label import pseudo_label

FILES = {SILENCE: ["noise_a.wav", "noise_b.wav"], UNKNOWN: ["bed_spk07_nohash_0.wav", "cat_spk01_nohash_1.wav"],
         "yes": ["spk01_nohash_0.wav", "spk02_nohash_0.wav", "spk07_nohash_3.wav"], "no": ["spk02_nohash_1.wav"]}
LABELS = (SILENCE, UNKNOWN, *KEYWORDS_12)
FRONTEND = FrontendConfig(kind="mfcc", hop_ms=20, num_mfcc=10, fmax=4000)


@pytest.fixture(scope="module")
def testset(tmp_path_factory):
    root = tmp_path_factory.mktemp("gsc_test_layout")
    rng = np.random.default_rng(0)
    for label, names in FILES.items():
        (root / label).mkdir()
        for name in names:
            sf.write(root / label / name, 0.1 * rng.standard_normal(16000), 16000, subtype="PCM_16")
    (root / "README.md").write_text("not a label\n")
    return root


@pytest.fixture(scope="module")
def always_yes(tmp_path_factory):
    """A saved 12-label model that answers 'yes' to everything, with its kws_zoo.json: the expected scores are
    known exactly."""
    folder = tmp_path_factory.mktemp("always_yes")
    shape = features_for(np.zeros((1, 16000), np.float32), FRONTEND).shape[1:]
    inputs = keras.Input(shape)
    yes = np.eye(len(LABELS))[LABELS.index("yes")]
    logits = keras.layers.Dense(len(LABELS), kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(yes))
    model = keras.Model(inputs, logits(keras.layers.Flatten()(inputs)))
    model.save(folder / "model.keras")
    rundir.write_info(folder, rundir.ModelInfo(labels=LABELS, frontend=FRONTEND, clip_ms=1000, model="always_yes"))
    return folder / "model.keras"


def test_every_folder_is_a_label_and_every_file_is_scored(testset):
    data = load_dataset(DataConfig(kind="testset", path=str(testset)))
    assert data.labels == (SILENCE, UNKNOWN, "no", "yes")
    assert not data.splits["train"] and not data.splits["validation"]
    test = data.splits["test"]
    assert sorted((data.labels[e.label], e.path.rsplit("/", 1)[1]) for e in test) == sorted(
        (label, name) for label, names in FILES.items() for name in names)
    speakers = {e.path.rsplit("/", 1)[1]: e.speaker for e in test}
    assert speakers["bed_spk07_nohash_0.wav"] == speakers["spk07_nohash_3.wav"] == "spk07"  # word prefix dropped
    assert DataConfig(kind="testset", path=str(testset)).display_name == testset.name


def test_evaluate_detects_the_layout_and_scores_all_files(testset, always_yes):
    report = evaluate_model(str(always_yes), data=str(testset), progress=False)
    n = sum(len(v) for v in FILES.values())
    assert report["data"]["kind"] == "testset" and report["examples"] == n
    assert report["accuracy"] == pytest.approx(len(FILES["yes"]) / n)
    assert report["per_class"]["yes"]["recall"] == 1.0 and report["per_class"][SILENCE]["recall"] == 0.0
    assert np.asarray(report["confusion"]).sum() == n


def test_cli_prints_accuracy_recall_and_confusion(testset, always_yes, capsys):
    main(["evaluate", str(always_yes), "--data", str(testset)])
    out = capsys.readouterr().out
    assert out.startswith("accuracy 37.50% (8 examples)")
    assert "confusion (rows true, columns predicted)" in out and "_unknown_" in out and "recall" in out
    assert out.rstrip().endswith(f"model {always_yes} (keras)")  # which file ran: float Keras here


def test_a_testset_without_label_folders_is_a_clear_error(tmp_path):
    (tmp_path / "_silence_").mkdir()
    with pytest.raises(DataError, match="no label folders"):
        load_dataset(DataConfig(kind="testset", path=str(tmp_path)))
    with pytest.raises(DataError, match="not found"):
        load_dataset(DataConfig(kind="testset", path=str(tmp_path / "missing")))


def test_speaker_halves_and_a_few_real_clips_for_training(testset):
    """Track C's pieces: two speaker-disjoint halves that cover the set, a seeded cap per label, and extra_train
    adding only the keyword clips (never _silence_ / _unknown_) under the main dataset's label indices."""
    whole = load_dataset(DataConfig(kind="testset", path=str(testset))).splits["test"]
    halves = [load_dataset(DataConfig(kind="testset", path=str(testset), speakers=h)).splits["test"]
              for h in ("half_a", "half_b")]
    assert sorted(e.path for h in halves for e in h) == sorted(e.path for e in whole)
    assert not {e.speaker for e in halves[0]} & {e.speaker for e in halves[1]}
    few = DataConfig(kind="testset", path=str(testset), max_per_label=1)
    assert len(load_dataset(few).splits["test"]) == len(FILES)
    main = load_dataset(DataConfig(kind="testset", path=str(testset), extra_train=[few]))
    added = main.splits["train"]
    assert sorted(main.labels[e.label] for e in added) == ["no", "yes"]
    twice = load_dataset(DataConfig(kind="testset", path=str(testset),
                                    extra_train=[DataConfig(kind="testset", path=str(testset), max_per_label=1,
                                                            repeat=2)]))
    assert sorted(e.path for e in twice.splits["train"]) == sorted(e.path for e in added * 2)
    assert main.splits["test"] == whole
    with_unknown = load_dataset(DataConfig(kind="testset", path=str(testset), extra_train=[
        DataConfig(kind="testset", path=str(testset), max_per_label=1, with_unknown=True)]))
    assert sorted(with_unknown.labels[e.label] for e in with_unknown.splits["train"]) == [UNKNOWN, "no", "yes"]
    assert DataConfig(kind="testset", path=str(testset), speakers="half_b").display_name == f"{testset.name}_half_b"


def test_pseudo_labels_keep_confident_answers_and_read_back_as_training_data(testset, always_yes, tmp_path):
    """Self-training: the teacher labels every file of a folder (its own labels unused), the confident answers
    become a manifest, and the manifest reads back as a training-only dataset that extra_train can add."""
    out = tmp_path / "labels" / "pseudo.json"
    p_yes = np.exp(1.0) / (np.exp(1.0) + len(LABELS) - 1)  # always_yes: logit 1 for yes, 0 for the rest
    summary = pseudo_label(str(always_yes), str(testset), str(out), threshold=p_yes - 0.01, progress=False)
    n = sum(len(v) for v in FILES.values())
    assert summary["candidates"] == summary["kept"] == n and summary["kept_per_label"]["yes"] == n
    assert summary["agreement_with_folder_labels"] == pytest.approx(len(FILES["yes"]) / n)  # a diagnostic only
    data = load_dataset(DataConfig(kind="pseudo", path=str(out)))
    assert [data.labels[e.label] for e in data.splits["train"]] == ["yes"] * n and not data.splits["test"]
    main_data = load_dataset(DataConfig(kind="testset", path=str(testset),
                                        extra_train=[DataConfig(kind="pseudo", path=str(out), repeat=2)]))
    assert len(main_data.splits["train"]) == 2 * n
    none = pseudo_label(str(always_yes), str(testset), str(tmp_path / "none.json"), threshold=p_yes + 0.01,
                        progress=False)
    assert none["kept"] == 0
    with pytest.raises(DataError, match="holds no examples"):
        load_dataset(DataConfig(kind="pseudo", path=str(tmp_path / "none.json")))


def test_a_tampered_or_missing_pseudo_label_manifest_is_named(tmp_path, testset):
    wav = next((testset / "yes").iterdir())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": MANIFEST_KIND, "labels": ["yes"], "examples": [{"path": str(wav),
                                                                                       "label": "maybe"}]}))
    with pytest.raises(DataError, match=r"bad\.json: example .* has label 'maybe'"):
        load_dataset(DataConfig(kind="pseudo", path=str(bad)))
    bad.write_text(json.dumps({"kind": MANIFEST_KIND, "labels": ["yes"], "examples": [{"path": "gone.wav",
                                                                                       "label": "yes"}]}))
    with pytest.raises(DataError, match="gone.wav not found"):
        load_dataset(DataConfig(kind="pseudo", path=str(bad)))
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not a readable pseudo-label manifest"):
        load_dataset(DataConfig(kind="pseudo", path=str(bad)))
    with pytest.raises(DataError, match="manifest not found"):
        load_dataset(DataConfig(kind="pseudo", path=str(tmp_path / "missing.json")))
