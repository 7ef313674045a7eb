"""Loading a trained model from any of its forms and running it on audio.

MODEL may be a run directory, an export directory, a saved Keras model (.keras / SavedModel dir) or a
.tflite file. Every form has a `kws_zoo.json` beside it (labels, frontend, clip length) written by
training and export, so a bare model file is never guessed at.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.errors import ModelLoadError
from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.data.pipeline import features_for
from kws_zoo.device.runtime import LiteRtModel, TflmModel
from kws_zoo.evaluate.detector import softmax
from kws_zoo.models.saving import load_keras

SAVED_MODEL = "saved_model.pb"  # marks a TensorFlow SavedModel folder
# What a directory is loaded as, first found first: the device form, then Keras.
DIRECTORY_MODELS = (rundir.TFLITE_INT8, rundir.MODEL, SAVED_MODEL)


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
        return features_for(np.asarray(waveforms, np.float32), self.frontend, background=background)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities [N, classes]."""
        return softmax(self._run(features))

    def predict_waveforms(self, waveforms: np.ndarray) -> np.ndarray:
        return self.scores(self.features(waveforms))


def _model_in(folder: str) -> str:
    """The model file a directory holds, or the directory itself if it is a SavedModel."""
    for name in DIRECTORY_MODELS:
        if os.path.exists(os.path.join(folder, name)):
            return folder if name == SAVED_MODEL else os.path.join(folder, name)
    raise ModelLoadError(f"{folder}: directory holds no {rundir.MODEL}, {rundir.TFLITE_INT8} or SavedModel")


def load_predictor(path: str, runtime: str = "tflm") -> Predictor:
    """runtime applies to .tflite files: 'tflm' (the device reference) or 'litert'."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        path = _model_in(path)
    info = rundir.read_info(path)
    if path.endswith(".tflite"):
        with open(path, "rb") as f:
            model_bytes = f.read()
        try:
            runner = (TflmModel if runtime == "tflm" else LiteRtModel)(model_bytes)
        except Exception as err:  # the runtimes raise RuntimeError/ValueError with their own text
            raise ModelLoadError(f"{path}: not a usable .tflite model ({err})") from None
        return Predictor(path, "tflite", list(info.labels), info.frontend, info.clip_ms, runner.predict, runtime)
    model = load_keras(path)
    return Predictor(path, "keras", list(info.labels), info.frontend, info.clip_ms,
                     lambda x: model.predict(x, batch_size=256, verbose=0), "keras")
