"""Background-noise recordings for `_background_noise_/`, synthesised so the corpus needs no downloads.

Each generator takes an integer seed and returns float32 at 16 kHz normalised to -20 dBFS RMS, so the
files are as interchangeable as GSC's own noise files (mixers choose the level). The set covers the
stationary colours, tonal mains hum, a modulated machine and speech babble, the one noise a keyword
spotter most easily confuses with its keywords.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import signal

from kws_zoo.data.audio import SAMPLE_RATE
from kws_zoo.data.synthetic.tts import tts_render_many

TARGET_RMS = 0.1  # -20 dBFS
# Babble must not be keywords only, or a model would learn "babble = keyword"; about 3/4 of its
# words come from this list of common words that are not GSC keywords.
FILLER_WORDS = tuple("""
the a and of to in is it that was for with as his they be at this have from or had by word but
not what all were we when your can said there use an each which she do how their if will other about
out many then them these so some her would make like him into time has look more write see number
way could people than first water been call who oil its now find long day did get come made may part
over new sound take only little work know place year live me back give most very after thing our just
name good sentence man think say great where help through much before line too mean old any same tell
boy came want show also around form small set put end does another well large must big
even such because turn here why ask went men read need land different home us move try kind hand
picture again change play spell air away animal page letter mother answer found study still should
america world high every near add food between own below country plant last school father keep
never start city earth eye light thought head under story saw few while along might close
something seem next hard open example begin life always those both paper together got group often run
important until children side feet car mile night walk white sea began grow took river carry state
once book hear without second later miss idea enough eat face watch far indian real almost let
above girl sometimes mountain cut young talk soon list song being leave family
""".split())


def white(seed: int, seconds: float = 60.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _normalise(rng.standard_normal(_n(seconds)))


def pink(seed: int, seconds: float = 60.0) -> np.ndarray:
    return _coloured(seed, seconds, exponent=1.0)


def brown(seed: int, seconds: float = 60.0) -> np.ndarray:
    return _coloured(seed, seconds, exponent=2.0)


def mains_hum(seed: int, seconds: float = 60.0, *, mains_hz: float = 50.0) -> np.ndarray:
    """Mains fundamental plus harmonics to ~1.2 kHz; odd harmonics dominate as in transformer buzz."""
    rng = np.random.default_rng(seed)
    n = _n(seconds)
    t = np.arange(n) / SAMPLE_RATE
    # the grid frequency wanders by a few hundredths of a Hz; integrate it into the phase
    drift = 0.03 * np.sin(2 * np.pi * t / rng.uniform(7, 15) + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(mains_hz + drift) / SAMPLE_RATE
    out = np.zeros(n)
    for k in range(1, int(1200 // mains_hz) + 1):
        level = (2.0 if k % 2 else 0.7) / k * rng.uniform(0.5, 1.5)
        out += level * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    out *= 1 + 0.1 * np.sin(2 * np.pi * t * rng.uniform(0.1, 0.5))
    out += 0.01 * np.std(out) * rng.standard_normal(n)  # electrical noise floor, -40 dB
    return _normalise(out)


def running_machine(seed: int, seconds: float = 60.0) -> np.ndarray:
    """A motor: rotation harmonics, band-limited noise pulsing with the rotation, low rumble."""
    rng = np.random.default_rng(seed)
    n = _n(seconds)
    t = np.arange(n) / SAMPLE_RATE
    rot = rng.uniform(18, 35) * (1 + 0.01 * np.sin(2 * np.pi * t / rng.uniform(5, 12)))
    phase = 2 * np.pi * np.cumsum(rot) / SAMPLE_RATE
    tones = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 12))
    sos = signal.butter(4, [rng.uniform(300, 600), rng.uniform(2500, 4500)], "bandpass", fs=SAMPLE_RATE,
                        output="sos")
    hiss = signal.sosfilt(sos, rng.standard_normal(n)) * (1 + 0.6 * np.sin(phase))
    rumble = _coloured(rng.integers(2 ** 31), seconds, exponent=2.0)
    return _normalise(0.5 * tones / np.std(tones) + hiss / np.std(hiss) + 0.7 * rumble / np.std(rumble))


def babble(seed: int, seconds: float = 60.0, *, words: Sequence[str] = (),
           talkers: Sequence[tuple[str, str]] = (), num_talkers: int = 8) -> np.ndarray:
    """`num_talkers` distinct TTS voices from `talkers` ((engine, voice) pairs) speaking word salad at once."""
    if not talkers:
        raise ValueError("babble needs at least one (engine, voice) talker")
    rng = np.random.default_rng(seed)
    n = _n(seconds)
    out = np.zeros(n)
    for index in rng.choice(len(talkers), size=min(num_talkers, len(talkers)), replace=False):
        engine, voice = talkers[index]
        out += _talker(rng, engine, voice, words, n) * 10 ** (rng.uniform(-6, 0) / 20)
    return _normalise(out)


def _talker(rng: np.random.Generator, engine: str, voice: str, words: Sequence[str], n: int) -> np.ndarray:
    """One voice talking continuously (sentences with short pauses), starting mid-sentence."""
    rate, pitch = rng.uniform(0.9, 1.3), rng.uniform(0.8, 1.25)
    sentences, total = [], 0
    while total < n + 10 * SAMPLE_RATE:  # enough speech to cut a random window from
        batch = [(_sentence(rng, words), rate, pitch) for _ in range(8)]
        for audio in tts_render_many(engine, voice, batch):
            audio = audio / (np.sqrt(np.mean(audio ** 2)) + 1e-9)  # equal loudness before mixing
            sentences += [audio, np.zeros(int(rng.uniform(0.05, 0.4) * SAMPLE_RATE))]
            total += len(audio) + len(sentences[-1])
    stream = np.concatenate(sentences)
    start = rng.integers(0, len(stream) - n + 1)
    return stream[start:start + n]


def _sentence(rng: np.random.Generator, keywords: Sequence[str]) -> str:
    picks = []
    for _ in range(rng.integers(5, 12)):
        pool = keywords if len(keywords) and rng.random() < 0.25 else FILLER_WORDS
        picks.append(str(pool[rng.integers(len(pool))]))
    return " ".join(picks)


def _coloured(seed: int, seconds: float, exponent: float) -> np.ndarray:
    """Noise with power ~ 1/f**exponent, flat below 20 Hz so brown noise does not drift like DC."""
    rng = np.random.default_rng(seed)
    n = _n(seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum *= np.maximum(freqs, 20.0) ** (-exponent / 2)
    spectrum[0] = 0
    return _normalise(np.fft.irfft(spectrum, n))


def _n(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def _normalise(audio: np.ndarray) -> np.ndarray:
    audio = audio - np.mean(audio)
    audio = audio * (TARGET_RMS / (np.sqrt(np.mean(audio ** 2)) + 1e-12))
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:  # keep peaky signals (hum, babble) unclipped at the cost of a lower RMS
        audio *= 0.99 / peak
    return audio.astype(np.float32)


def generators(words: Sequence[str], talkers: Sequence[tuple[str, str]]) -> dict[str, Callable[[int], np.ndarray]]:
    """File name -> function(seed) for every background file; babble only if there are talkers."""
    out: dict[str, Callable[[int], np.ndarray]] = {
        "white_noise.wav": white, "pink_noise.wav": pink, "brown_noise.wav": brown,
        "mains_hum_50hz.wav": lambda s: mains_hum(s, mains_hz=50.0),
        "mains_hum_60hz.wav": lambda s: mains_hum(s, mains_hz=60.0),
        "running_machine.wav": running_machine,
    }
    if talkers:
        out["babble.wav"] = lambda s: babble(s, words=words, talkers=talkers)
    return out


DESCRIPTIONS = {
    "white_noise.wav": "white Gaussian noise",
    "pink_noise.wav": "pink (1/f) noise",
    "brown_noise.wav": "brown (1/f^2) noise, flat below 20 Hz",
    "mains_hum_50hz.wav": "50 Hz mains hum with harmonics to 1.2 kHz",
    "mains_hum_60hz.wav": "60 Hz mains hum with harmonics to 1.2 kHz",
    "running_machine.wav": "motor: rotation harmonics, pulsing band-limited noise, rumble",
    "babble.wav": "8 overlapping TTS talkers, ~1/4 corpus words and ~3/4 other common words",
}
