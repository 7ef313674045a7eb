"""Loading a trained model from any of its forms and running it on audio.

MODEL may be a run directory, an export directory, a saved Keras model (.keras / SavedModel dir) or a
.tflite file. Every form has a `kws_zoo.json` beside it (labels, frontend, clip length) written by
training and export, so a bare model file is never guessed at.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.rundir import METADATA
from kws_zoo.core.errors import ModelLoadError
from kws_zoo.models.saving import load_keras

@dataclasses.dataclass
class Predictor:
    path: str
    kind: str  # "keras" | "tflite"
    labels: list
    frontend: FrontendConfig
    clip_ms: int
    _run: object  # features [N, ...] float32 -> logits or probabilities [N, classes]
    runtime: str = ""

    @property
    def clip_samples(self) -> int:
        return self.frontend.sample_rate * self.clip_ms // 1000

    def features(self, waveforms: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
        """Frontend features; `background` fills all-zero (silence) clips with noise, as in training."""
        from kws_zoo.data.pipeline import features_for

        return features_for(np.asarray(waveforms, np.float32), self.frontend, background=background)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities [N, classes]."""
        out = np.asarray(self._run(features), np.float64)
        out = out - out.max(axis=1, keepdims=True)
        e = np.exp(out)
        return e / e.sum(axis=1, keepdims=True)

    def predict_waveforms(self, waveforms: np.ndarray) -> np.ndarray:
        return self.scores(self.features(waveforms))


def _find_metadata(path: str) -> dict:
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    for candidate in (os.path.join(folder, METADATA), os.path.join(os.path.dirname(folder), METADATA)):
        if os.path.isfile(candidate):
            with open(candidate) as f:
                return json.load(f)
    raise ModelLoadError(f"{path}: no {METADATA} beside the model (labels and frontend are unknown); "
                         "use a run or export directory written by kws-zoo")


def load_predictor(path: str, runtime: str = "tflm") -> Predictor:
    """runtime applies to .tflite files: 'tflm' (the device reference) or 'litert'."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        for name in ("model_int8.tflite", "model.keras", "saved_model.pb"):
            if os.path.exists(os.path.join(path, name)):
                return load_predictor(path if name == "saved_model.pb" else os.path.join(path, name), runtime)
        raise ModelLoadError(f"{path}: directory holds no model.keras, model_int8.tflite or SavedModel")
    meta = _find_metadata(path)
    frontend = FrontendConfig(**meta["frontend"])
    if path.endswith(".tflite"):
        from kws_zoo.device.runtime import LiteRtModel, TflmModel

        with open(path, "rb") as f:
            model_bytes = f.read()
        try:
            runner = (TflmModel if runtime == "tflm" else LiteRtModel)(model_bytes)
        except Exception as err:  # the runtimes raise RuntimeError/ValueError with their own text
            raise ModelLoadError(f"{path}: not a usable .tflite model ({err})") from None
        return Predictor(path, "tflite", meta["labels"], frontend, meta["clip_ms"], runner.predict, runtime)
    model = load_keras(path)
    return Predictor(path, "keras", meta["labels"], frontend, meta["clip_ms"],
                     lambda x: model.predict(x, batch_size=256, verbose=0), "keras")
