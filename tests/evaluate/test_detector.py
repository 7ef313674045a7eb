"""Continuous detector, long-audio scoring and stream construction, streaming micro frontend, `kws-zoo stream`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from kws_zoo.core.errors import ConfigError, ModelError
from kws_zoo.data.frontends import FrontendConfig, MicroFrontendStream, micro_features
from kws_zoo.evaluate.detector import Detection, Detector, DetectorConfig, softmax
from kws_zoo.evaluate.long_audio import Event, make_stream, score, speech_extent, sweep
from kws_zoo.models import create_model
from kws_zoo.rundir import ModelInfo, write_info

from helpers import run_cli

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def posteriors(steps: int, bumps: dict[int, tuple[int, int]]) -> np.ndarray:
    """[steps, 4]: silence everywhere, class c at 0.95 over each (start, length) in bumps[c]."""
    p = np.tile([0.9, 0.04, 0.03, 0.03], (steps, 1))
    for c, (start, length) in bumps.items():
        p[start:start + length] = 0.05 / 3
        p[start:start + length, c] = 0.95
    return p


def test_one_detection_per_word_after_smoothing_and_refractory():
    det = Detector(LABELS, step_ms=10, config=DetectorConfig(threshold=0.8, smoothing_ms=100, refractory_ms=1000))
    found = det.run(posteriors(300, {2: (100, 60)}))
    assert len(found) == 1 and found[0].label == "yes"
    # The average of 10 steps reaches 0.8 once 8 of them are 0.95 (0.8 * 10 = 7.6 + 2 * ~0.03 > ...).
    assert found[0].time_s == pytest.approx((100 + 8) * 0.01, abs=0.011)
    assert found[0].score >= 0.8


def test_spikes_non_keywords_and_refractory():
    det = Detector(LABELS, step_ms=10, config=DetectorConfig(threshold=0.8, smoothing_ms=100, refractory_ms=500))
    assert det.run(posteriors(100, {3: (50, 3)})) == []  # a 30 ms spike is smoothed away
    assert det.run(posteriors(100, {1: (20, 60)})) == []  # _unknown_ never fires
    # Two words 300 ms apart: the second falls in the refractory period; 700 ms apart it fires.
    assert [d.label for d in det.run(posteriors(400, {2: (50, 20), 3: (80, 20)}))] == ["yes"]
    p = posteriors(400, {2: (50, 20)})
    p[120:140] = posteriors(20, {3: (0, 20)})
    assert [d.label for d in det.run(p)] == ["yes", "no"]


def test_start_offset_and_bad_config():
    det = Detector(LABELS, step_ms=20, config=DetectorConfig(0.5, 0, 0), start_ms=10)
    assert det.run(posteriors(5, {2: (2, 1)}))[0].time_s == pytest.approx(0.010 + 3 * 0.020)
    with pytest.raises(ConfigError, match="threshold"):
        DetectorConfig(threshold=0.0)
    with pytest.raises(ModelError, match="keyword"):
        Detector(["_silence_", "_unknown_"], 10)


def test_softmax_is_a_stable_posterior_over_the_last_axis():
    assert np.allclose(softmax(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]])
    p = softmax(np.array([[1000.0, 1000.0, -1000.0], [5.0, 5.0, 5.0]]))  # exp(1000) would overflow
    assert p.dtype == np.float64 and np.allclose(p, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    assert softmax(np.zeros(4)).shape == (4,) and np.allclose(softmax(np.zeros((2, 3, 4))).sum(-1), 1.0)


def test_scoring_counts_hits_misses_and_false_accepts():
    events = [Event(1.0, 1.5, "yes"), Event(5.0, 5.6, "no"), Event(9.0, 9.4, "yes")]
    dets = [Detection(1.7, "yes", 0.9),   # hit (within end + latency)
            Detection(1.9, "yes", 0.9),   # a repeat: false accept
            Detection(5.3, "yes", 0.9),   # wrong word: false accept, and "no" is missed
            Detection(9.0 + 0.4 + 1.5, "yes", 0.9),  # too late: false accept, and a miss
            Detection(20.0, "no", 0.9)]   # nothing there
    result = score(dets, events, latency_s=1.0)
    assert (result["events"], result["false_rejects"], result["false_accepts"]) == (3, 2, 4)
    assert result["frr"] == pytest.approx(2 / 3)


def _clip(freq: float, rng) -> np.ndarray:
    t = np.arange(16000) / 16000
    out = 0.001 * rng.standard_normal(16000)
    out[6000:10000] += np.sin(2 * np.pi * freq * t[6000:10000]) * 0.5
    return out.astype(np.float32)


def test_long_stream_places_words_at_their_times():
    rng = np.random.default_rng(0)
    words = [(_clip(500 + 200 * i, rng), f"w{i}") for i in range(4)]
    noise = [(0.05 * rng.standard_normal(16000 * 10)).astype(np.float32)]
    distractors = [_clip(3000, rng)]
    audio, events = make_stream(words, distractors, noise, minutes=1.0, seed=1)
    again, same = make_stream(words, distractors, noise, minutes=1.0, seed=1)
    assert np.array_equal(audio, again) and events == same
    assert len(audio) == 60 * 16000 and 8 <= len(events) <= 40
    assert all(b.start_s >= a.end_s for a, b in zip(events, events[1:]))  # no overlap
    first, last = speech_extent(words[0][0])  # 10 ms frames: within one frame of the tone
    assert abs(first - 6000) <= 160 and abs(last - 10000) <= 160
    for e in events:  # the word is there (SNR >= 5 dB), louder than the background just before it
        inside = audio[int(e.start_s * 16000):int(e.end_s * 16000)]
        before = audio[int(e.start_s * 16000) - 8000:int(e.start_s * 16000)]
        assert abs(e.end_s - e.start_s - 0.25) < 0.02 and inside.std() > 1.5 * before.std()
    # A perfect detector: every event found, nothing else.
    step_ms = 10
    p = np.tile([0.97, 0.01, *([0.005] * 4)], (6000, 1))
    labels = ["_silence_", "_unknown_", "w0", "w1", "w2", "w3"]
    for e in events:
        s = int(e.start_s * 1000 / step_ms)
        p[s:s + 30] = 0.0
        p[s:s + 30, labels.index(e.label)] = 1.0
    rows = sweep(p, labels, events, step_ms=step_ms, start_ms=0, duration_s=60.0, thresholds=[0.5, 1.0],
                 latency_s=1.0)
    assert rows[0]["frr"] == 0 and rows[0]["fa_per_hour"] == 0
    assert rows[1]["frr"] == 1.0 or rows[1]["threshold"] == 1.0


def test_streaming_micro_frontend_equals_the_clip_frontend():
    audio = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    stream, rng, pos, out = MicroFrontendStream(), np.random.default_rng(1), 0, []
    while pos < len(audio):  # chunks of any size, as audio drivers deliver them
        n = int(rng.integers(1, 700))
        out.append(stream.process(audio[pos:pos + n]))
        pos += n
    np.testing.assert_array_equal(np.concatenate(out), micro_features(audio))


def test_cli_stream_prints_timestamped_json_lines(tmp_path):
    frontend = FrontendConfig(kind="log_mel", hop_ms=20, num_mels=40, fmax=4000)
    labels = ["_silence_", "_unknown_", "a", "b"]
    for name, directory in (("ds_cnn_stream", "stream"), ("ds_cnn", "plain")):
        run = tmp_path / directory
        run.mkdir()
        create_model(name, input_shape=(49, 40), num_classes=4).save(str(run / "model.keras"))
        write_info(run, ModelInfo(tuple(labels), frontend, 1000, name))
    wav = tmp_path / "long.wav"
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(16000 * 5), 16000, subtype="PCM_16")
    # Untrained: near-uniform posteriors; a low threshold and no refractory period fire at every step.
    done = run_cli("stream", tmp_path / "stream", wav, "--json", "--threshold", "0.01", "--refractory-ms", "0",
                   "--smoothing-ms", "0", timeout=300)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    # 5 s at a 20 ms hop: 249 frames, the first full 49-frame window ends at 0.99 s, one step per 20 ms.
    assert len(rows) == 249 - 48 and all(set(r) == {"time_s", "label", "score"} for r in rows)
    assert all(r["label"] in ("a", "b") for r in rows)
    assert [r["time_s"] for r in rows] == pytest.approx(0.99 + 0.02 * np.arange(len(rows)), abs=1e-3)
    done = run_cli("stream", tmp_path / "plain", wav, check=False, timeout=300)
    assert done.returncode == 2 and "'stem_conv'" in done.stderr and "time_padding" in done.stderr
