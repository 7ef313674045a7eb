"""Streaming deployment of a trained run through the CLI: stream-export, stream-drift, long-audio on TFLM."""
import contextlib
import io
import json
import os

import numpy as np
import pytest

from kws_zoo.cli import main
from kws_zoo.export import streaming_tflite
from kws_zoo.workflows import stream_cost, stream_export

from helpers import make_tone_corpus, run_cli, tiny_recipe_dict

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_stream_deploy")


def kws(*args):
    return run_cli(*args, timeout=900)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream_deploy")
    recipe = tiny_recipe_dict(make_tone_corpus(root / "corpus", speakers=30), name="tiny_stream", epochs=6)
    recipe["model"] = "ds_cnn_stream"
    (root / "recipe.json").write_text(json.dumps(recipe))
    kws("train", root / "recipe.json", "--out", root / "run", "--quiet")
    return root / "run"


@pytest.fixture(scope="module")
def exported(run):
    """`kws-zoo stream-export RUN` in this process, recording what it gave the one streaming conversion:
    (stream card, [(model, calibration streams, StreamingForms)])."""
    calls = []

    def recorded(model, streams, max_steps=2000):
        forms = streaming_tflite.streaming_forms(model, streams, max_steps)
        calls.append((model, streams, forms))
        return forms

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(stream_export, "streaming_forms", recorded)
        main(["stream-export", str(run)])
    return json.loads(out.getvalue()), calls


def test_stream_export_writes_both_forms_checked_on_tflm(run, exported):
    card, _ = exported
    for name in ("model_stream_external_int8.tflite", "model_stream_internal_int8.tflite",
                 "model_window_int8.tflite", "stream_card.json", "kws_zoo.json"):
        assert (run / "stream" / name).is_file(), name
    for form in ("external", "internal"):
        entry = card[form]
        assert entry["top1_agreement_with_int8_window"] >= 0.97, (form, entry)
        assert entry["macs_per_s"] * 10 < card["non_streaming"]["macs_per_s_every_20ms"]
        assert entry["arena_bytes"] > 0 and entry["state_bytes"] > 0
    meta = json.loads((run / "stream" / "kws_zoo.json").read_text())
    assert meta == {**json.loads((run / "kws_zoo.json").read_text()), "streaming": {
        "window_frames": card["window_frames"], "frames_per_step": card["frames_per_step"],
        "padding": card["padding"]}}


def test_stream_cost_converts_the_reference_stream_export_wrote(run, exported, monkeypatch):
    """One conversion for both: given stream-export's model and streams, stream-cost calibrates the same
    whole-window int8 reference (byte for byte) and costs what stream-export wrote."""
    card, calls = exported
    [(model, streams, forms)] = calls
    written = (run / "stream" / "model_window_int8.tflite").read_bytes()
    assert forms.window == written
    seen = []

    def recorded(*args, **kwargs):
        seen.append(streaming_tflite.streaming_forms(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(stream_cost, "streaming_forms", recorded)
    cost = stream_cost.streaming_cost(model, hop_ms=card["hop_ms"], representative=np.array(streams))
    assert len(seen) == 1 and seen[0].window == written
    assert cost["non_streaming"]["flash_bytes"] == card["non_streaming"]["flash_bytes"]
    assert cost["non_streaming"]["arena_bytes"] == card["non_streaming"]["arena_bytes"]
    assert cost["non_streaming"]["macs_per_invoke"] == card["non_streaming"]["macs_per_window"]
    assert cost["external"]["macs_per_invoke"] == card["external"]["macs_per_step"]


def test_stream_drift_and_long_audio_reports(run, exported):
    report = json.loads(kws("stream-drift", run, "--minutes", "1.5", "--json").stdout)
    assert report["sampled_steps"] >= 80 and os.path.isfile(report["png"])
    for form in ("external", "internal"):
        rows = report["forms"][form]["per_minute"]
        assert [r["minute"] for r in rows] == [0, 1]
        assert min(r["top1_agreement"] for r in rows) >= 0.95, (form, rows)
    out = run / "la"
    report = json.loads(kws("long-audio", run, "--runtime", "tflm", "--minutes", "1", "--out", out,
                            "--save-wav", "--json").stdout)
    assert report["events"] > 5 and (out / "det.png").is_file() and (out / "stream.wav").is_file()
    hours = report["minutes"] / 60
    assert all(r["fa_per_hour"] == pytest.approx(r["false_accepts"] / hours) for r in report["rows"])
    assert report["rows"][-1]["threshold"] > report["rows"][0]["threshold"]
    events = json.loads((out / "events.json").read_text())
    assert len(events) == report["events"] and all(e["end_s"] > e["start_s"] for e in events)


def test_stream_cost_reports_every_form():
    reports = json.loads(kws("stream-cost", "repcnn_s_stream", "--json").stdout)
    r = reports["repcnn_s_stream"]
    assert r["input_shape"] == [49, 10] and r["hop_ms"] == 20
    assert r["macs_per_s_ratio"] >= 10
    for form in ("non_streaming", "external", "internal"):
        assert r[form]["arena_bytes"] > 0 and r[form]["weight_bytes_per_s"] > 0
    assert r["external"]["state_bytes"] == r["internal"]["state_bytes"] > 0 == r["non_streaming"]["state_bytes"]
