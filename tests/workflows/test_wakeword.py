"""`kws-zoo wakeword`: a tiny build end to end (corpus, two rounds with mining, TFLM streams, ESPHome files, card),
the cut-off chosen before any test stream is read, a resumed build, and bad input refused before anything is
written."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from kws_zoo.cli import main
from kws_zoo.export import esphome
from kws_zoo.workflows.wakeword import run as wake_run
from kws_zoo.workflows.wakeword import streams
from kws_zoo.workflows.wakeword.config import WakewordConfig, load_wakeword

# The module fixture builds (minutes): under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_wakeword")

# 20 espeak speakers: 3 are validation voices and 2 test voices (GSC's hash of their ids)
TINY = dict(phrase="hey zoo", rounds=2, epochs=1, takes=1, positive_speakers=20, adversarial_speakers=20,
            general_speakers=1, engines=["espeak"], validation_hours=0.02, test_hours=0.02, mining_hours=0.02,
            float_compare_hours=0.01, count_instructions=False)


def _wavs(folder, n, rate=16000, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        sf.write(folder / f"take{i}.wav", rng.uniform(-0.3, 0.3, rate).astype(np.float32), rate, subtype="PCM_16")
    return folder


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """(out, card, events): the tiny build, run with spies on when streams are loaded and the cut-off chosen."""
    root = tmp_path_factory.mktemp("wakeword")
    recipe = root / "hey_zoo.json"
    recipe.write_text(json.dumps({"kind": "wakeword", **TINY, "positives_dir": str(_wavs(root / "mine", 3))}))
    cfg = load_wakeword(str(recipe))
    events = []
    mp = pytest.MonkeyPatch()
    real_split, real_choose = streams.split_clips, wake_run.choose
    mp.setattr(streams, "split_clips", lambda *a, **k: events.append(("load", a[2])) or real_split(*a, **k))
    mp.setattr(wake_run, "choose", lambda *a, **k: events.append(("choose", None)) or real_choose(*a, **k))
    try:
        card = wake_run.run_wakeword(cfg, str(root / "out"), progress=False)
    finally:
        mp.undo()
    return root / "out", card, events


def test_tiny_build_writes_the_esphome_files_and_a_card(build):
    out, card, _ = build
    final = out / "final"
    model = (final / "hey_zoo.tflite").read_bytes()
    assert esphome.model_problems(model) == []
    manifest = json.loads((final / "hey_zoo.json").read_text())
    esphome.check_manifest(manifest, arena_bytes=card["arena_bytes"])
    assert manifest["micro"]["probability_cutoff"] == card["chosen_on_validation"]["cutoff"]
    assert manifest["micro"]["sliding_window_size"] == card["chosen_on_validation"]["window"]
    assert (final / "firmware" / "model_data.cc").exists() and (final / "det.png").stat().st_size > 0
    assert "FRR" in (final / "card.md").read_text()
    test = card["test_tflm"]
    assert test["events"] > 0 and test["hours"] == pytest.approx(0.02, rel=0.05)
    assert test["fa_per_hour_95"][1] > test["fa_per_hour"] >= test["fa_per_hour_95"][0]
    assert [r["round"] for r in card["rounds"]] == [1, 2] and "mined" in card["rounds"][0]
    mined = len(list((out / "corpus" / "mined_r1").glob("*.wav")))
    assert mined == card["rounds"][0]["mined"]["written"]
    assert card["corpus"]["user_positives"] == 3 and len(list((out / "corpus" / "hey_zoo").glob("userpos*"))) == 3
    assert card["real"]["speech"]["hours"] > 0 or not os.path.isdir("../shared/data/real")


def test_the_cutoff_is_chosen_before_any_test_stream_is_read(build):
    _, _, events = build
    first_test = events.index(("load", "test"))
    chooses = [i for i, e in enumerate(events) if e[0] == "choose"]
    assert len(chooses) == 2 and max(chooses) < first_test  # one choice per round, all on validation streams
    assert events[0] == ("load", "validation")


def test_a_finished_build_resumes_without_redoing_work(build, monkeypatch):
    out, card, _ = build
    monkeypatch.setattr(wake_run, "train", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(wake_run, "sweep", lambda *a, **k: pytest.fail("scored again"))
    monkeypatch.setattr(streams, "split_clips", lambda *a, **k: pytest.fail("decoded clips again"))
    cfg = load_wakeword(str(out.parent / "hey_zoo.json"))
    again = wake_run.run_wakeword(cfg, str(out), progress=False)
    assert again["test_tflm"] == card["test_tflm"]


@pytest.mark.parametrize("phrase, message", [
    ("", "empty"), ("?!", "no letters"), ("hey 42", "digits"), ("hey @ zoo", "'@'"),
    ("supercalifragilistic expialidocious", "window is 1 s"),
])
def test_bad_phrases_are_one_line_errors_and_write_nothing(tmp_path, capsys, phrase, message):
    with pytest.raises(SystemExit) as exit_:
        main(["wakeword", phrase, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bad_user_recordings_are_reported_together_and_write_nothing(tmp_path, capsys):
    mine = _wavs(tmp_path / "mine", 2)
    (mine / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    _wavs(tmp_path / "other", 1, rate=8000)
    os.replace(tmp_path / "other" / "take0.wav", mine / "phone.wav")
    with pytest.raises(SystemExit):
        main(["wakeword", "hey zoo", "--positives", str(mine), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "broken.wav" in err and "phone.wav: sample rate 8000 Hz" in err and "2 unreadable" in err
    assert not (tmp_path / "out").exists()


def test_a_preset_esphome_cannot_load_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(esphome, "MAX_RESOURCE_VARIABLES", 2)  # as if ESPHome made room for two variables
    with pytest.raises(SystemExit):
        main(["wakeword", "hey zoo", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "resource variables; ESPHome makes room for 2" in err and "--no-esphome" in err
    assert not (tmp_path / "out").exists()


def test_config_refuses_unknown_presets_and_keys(tmp_path):
    with pytest.raises(Exception, match="unknown wake-word preset"):
        WakewordConfig(phrase="hey zoo", preset="nope")
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"kind": "wakeword", "phrase": "hey zoo", "rounds_": 2}))
    with pytest.raises(Exception, match="unknown WakewordConfig keys"):
        load_wakeword(str(bad))


def test_train_takes_a_wakeword_recipe(tmp_path, capsys):
    recipe = tmp_path / "w.json"
    recipe.write_text(json.dumps({"kind": "wakeword", "phrase": "12:00"}))
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(recipe), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "w.json" in err and "no letters" in err
    assert not (tmp_path / "out").exists()
