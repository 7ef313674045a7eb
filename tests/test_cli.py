"""The kws-zoo command end to end on a tiny run: export, predict on every model form, evaluate, bad input."""
import json

import librosa
import numpy as np
import pytest
import soundfile as sf

from kws_zoo.cli import main
from kws_zoo.device.runtime import LiteRtModel, TflmModel

from helpers import TONE_WORDS
from helpers import run_cli as kws
from helpers import tone_clip

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_cli")


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def test_export_writes_a_verified_deployable_model(run):
    root, card = run
    export = root / "run" / "export"
    for name in card["files"].values():
        assert (export / name).exists(), name
    acc = card["accuracy"]
    assert card["test_examples"] >= 100
    # The same .tflite on two runtimes, compared per example: LiteRT's XNNPACK kernels round differently from
    # TFLM's on some CPUs, by a few LSB that compound over the layers (4 on this test's model on one AMD EPYC),
    # which may flip a near tie (an accuracy difference on ~140 clips is not a stable measure) but never a clear
    # answer.
    assert card["tflm_litert_max_lsb_diff"] <= 6 and card["tflm_litert_top1_agreement"] >= 0.95
    # A real kernel mismatch shows against LiteRT's reference kernels, which round as TFLM's do (1 LSB at most:
    # per-channel FULLY_CONNECTED ties), on any CPU.
    model = (export / card["files"]["tflite_int8"]).read_bytes()
    tflm = TflmModel(model)
    x = np.random.default_rng(0).integers(-128, 128, (50, *tflm.input_shape[1:]), dtype=np.int8)
    reference = LiteRtModel(model, resolver="reference").predict(x).astype(np.int32)
    assert np.abs(tflm.predict(x).astype(np.int32) - reference).max() <= 1
    assert acc["tflm_int8"] > 0.8 and card["arena_bytes"] > 0 and card["flash_bytes"] > 1000
    assert card["input"]["dtype"] == "int8" and card["labels"] == sorted(TONE_WORDS)
    assert "FULLY_CONNECTED" in card["ops"]
    assert (export / "model_card.md").read_text().startswith("# Model card")


def test_export_runs_the_test_set_through_tflm_once(run, tmp_path, monkeypatch, capsys):
    """The card's TFLM accuracy and the per-class report come from one pass (the set is the slow part)."""
    root, card = run
    invokes = []
    invoke = TflmModel._invoke

    def counted(self, x):
        invokes.append(len(x))
        return invoke(self, x)

    monkeypatch.setattr(TflmModel, "_invoke", counted)
    main(["export", str(root / "run"), "--out", str(tmp_path / "export"), "--json"])
    again = json.loads(capsys.readouterr().out)
    assert len(invokes) == again["test_examples"] == card["test_examples"]
    report = json.loads((tmp_path / "export" / "report_tflm_int8.json").read_text())
    assert report["accuracy"] == again["accuracy"]["tflm_int8"] and report["examples"] == again["test_examples"]
    timing = "tflm_invoke_ms_host"
    assert {k: v for k, v in again.items() if k != timing} == {k: v for k, v in card.items() if k != timing}
    for name in ("kws_zoo.json", "recipe.json"):  # copied beside the export unchanged
        assert (tmp_path / "export" / name).read_text() == (root / "run" / name).read_text()


def _wav(path, audio, rate, channels=1):
    data = np.stack([audio] * channels, axis=1) if channels > 1 else audio
    sf.write(path, data, rate, subtype="PCM_16")
    return str(path)


@pytest.mark.parametrize("model", ["export/model_int8.tflite", "model.keras", "."])
def test_predict_any_rate_and_channels_on_every_model_form(run, model, capsys):
    root, _ = run
    rng = np.random.default_rng(7)
    clip = tone_clip("charlie", rng)
    files = [_wav(root / f"c{rate}_{ch}.wav", librosa.resample(clip, orig_sr=16000, target_sr=rate), rate, ch)
             for rate, ch in ((8000, 1), (16000, 1), (44100, 1), (16000, 2))]
    main(["predict", str(root / "run" / model), *files, "--json"])  # in this process: real ones are tested below
    out = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in out]
    assert [r["file"] for r in rows] == files
    assert all(r["label"] in TONE_WORDS and 0 <= r["score"] <= 1 for r in rows)
    assert sum(r["label"] == "charlie" for r in rows) >= 3  # 8 kHz loses nothing below 4 kHz here


def test_evaluate_json_on_the_runs_own_test_split(run, capsys):
    root, card = run
    main(["evaluate", str(root / "run" / "export" / "model_int8.tflite"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(card["accuracy"]["tflm_int8"])
    assert report["labels"] == card["labels"] and report["runtime"] == "tflm"


def _bad_inputs(root):
    (root / "empty.wav").write_bytes(b"")
    (root / "text.wav").write_text("this is not audio\n" * 10)
    good = root / "good.wav"
    _wav(good, tone_clip("alpha", np.random.default_rng(3)), 16000)
    (root / "truncated.wav").write_bytes(good.read_bytes()[:30])
    header = bytearray(good.read_bytes()[:44])
    header[40:44] = (0).to_bytes(4, "little")  # a valid header declaring zero samples
    (root / "zero.wav").write_bytes(bytes(header))
    sf.write(root / "nan.wav", np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000, subtype="FLOAT")
    return {"missing.wav": "not found", "empty.wav": "empty", "text.wav": "not a WAV", "truncated.wav": "",
            "zero.wav": "zero samples", "nan.wav": "NaN"}


def test_bad_audio_gives_one_line_errors_without_traceback(run, capsys):
    root, _ = run
    bad = _bad_inputs(root)
    # One case as a real process (exit code, stderr); the rest through the same entry point in this process, which
    # spares a TensorFlow start-up per case.
    first = next(iter(bad))
    proc = kws("predict", root / "run", root / first, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"kws-zoo: error: {proc.stderr.strip()[len('kws-zoo: error: '):]}"]
    for name, words in bad.items():
        with pytest.raises(SystemExit) as exit_:
            main(["predict", str(root / "run"), str(root / name)])
        assert exit_.value.code == 2, name
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0], lines
        assert lines[0].startswith("kws-zoo: error: ") and name in lines[0] and words in lines[0], lines[0]


def test_missing_model_and_bad_recipe_are_one_line_errors(run, tmp_path, capsys):
    root, _ = run
    proc = kws("predict", tmp_path / "nope", root / "c16000_1.wav", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nope" in proc.stderr
    bad = tmp_path / "r.json"
    bad.write_text('{"name": "x", "model": "ds_cnn", "data": {"kind": "gsc"}, "epochz": 1}')
    with pytest.raises(SystemExit) as exit_:  # in this process: the entry point is the same, TensorFlow is loaded
        main(["train", str(bad)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "epochz" in err and "Traceback" not in err
