"""A trained streamable model, ready to turn feature frames into per-step logits: float Keras or int8 TFLM.

MODEL is a run or export directory (model.keras + kws_zoo.json), a .keras file, or a streaming .tflite
written by kws_zoo.workflows.stream_export (its kws_zoo.json carries the window and step). Timing: step k (from 1)
ends at feature frame k * S - 1, whose audio ends at k * S * hop + (window - hop) ms.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.errors import ConfigError, ModelLoadError
from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.device.streaming import TflmStreamingModel
from kws_zoo.evaluate.detector import Detector, DetectorConfig, softmax
from kws_zoo.export.streaming import run_stream, streaming_spec, to_streaming
from kws_zoo.models.saving import load_keras

RUNTIMES = ("keras", "tflm")


@dataclasses.dataclass
class Streamer:
    path: str
    runtime: str                 # "keras" (float) or "tflm" (int8 on the TFLM interpreter)
    labels: list
    frontend: FrontendConfig
    window_frames: int
    frames_per_step: int
    _run: Callable[[np.ndarray], np.ndarray]  # features [T, bins] -> logits [T // S, classes], fresh state

    @property
    def step_ms(self) -> float:
        return self.frames_per_step * self.frontend.hop_ms

    @property
    def start_ms(self) -> float:
        return self.frontend.window_ms - self.frontend.hop_ms

    @property
    def window_ms(self) -> float:
        """Audio one output sees: window_frames hops plus the frame's extra length."""
        return self.window_frames * self.frontend.hop_ms + self.start_ms

    @property
    def warmup_steps(self) -> int:
        """Steps before the first whole window: their outputs still see the initial (zero) state."""
        return -(-self.window_frames // self.frames_per_step) - 1

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Logits of every step over features [T, bins] from a fresh state, warm-up steps included."""
        features = np.asarray(features, np.float32)
        return self._run(features[: len(features) // self.frames_per_step * self.frames_per_step])

    def posteriors(self, features: np.ndarray) -> np.ndarray:
        """Softmax of the steps after the warm-up (the first is the one whose window is full)."""
        return softmax(self.logits(features)[self.warmup_steps:])

    def detector(self, config=None):
        """A Detector timed for posteriors(): detection times in seconds of the audio."""
        return Detector(self.labels, self.step_ms, config or DetectorConfig(),
                        start_ms=self.start_ms + self.warmup_steps * self.step_ms)


def load_streamer(path: str, runtime: str = "keras") -> Streamer:
    """runtime 'keras' streams the float model (external state); 'tflm' runs a streaming int8 .tflite: the
    file itself, or RUN/stream/model_stream_external_int8.tflite for a run directory."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file or directory")
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be 'keras' or 'tflm', got {runtime!r}")
    if runtime == "tflm" and os.path.isdir(path):
        path = _stream_export_of(path)
    info = rundir.read_info(path)
    if path.endswith(".tflite"):
        if info.streaming is None:
            raise ModelLoadError(f"{path}: {rundir.METADATA} has no 'streaming' entry; not a streaming export")
        with open(path, "rb") as f:
            model = TflmStreamingModel(f.read())
        return Streamer(path, "tflm", list(info.labels), info.frontend, info.streaming.window_frames,
                        model.frames_per_step, model.run)
    keras_path = os.path.join(path, rundir.MODEL) if os.path.isdir(path) else path
    model = load_keras(keras_path)
    spec = streaming_spec(model)  # StreamingError (a ValueError) names the layer that cannot stream
    stream = to_streaming(model, "external")
    return Streamer(keras_path, "keras", list(info.labels), info.frontend, spec.window_frames, spec.frames_per_step,
                    lambda feats: run_stream(stream, feats[None])[0])


def _stream_export_of(run_dir: str) -> str:
    """The external-state int8 .tflite that `kws-zoo stream-export` wrote for a run."""
    path = os.path.join(run_dir, rundir.STREAM_DIR, rundir.stream_model_file("external"))
    if not os.path.isfile(path):
        raise ModelLoadError(f"{run_dir}: no {path}; write it with `kws-zoo stream-export {run_dir}`")
    return path
