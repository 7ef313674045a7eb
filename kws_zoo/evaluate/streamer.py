"""A trained streamable model, ready to turn feature frames into per-step logits: float Keras or int8 TFLM.

MODEL is a run or export directory (model.keras + kws_zoo.json), a .keras file, or a streaming .tflite
written by kws_zoo.workflows.stream_export (its kws_zoo.json carries the window and step). Timing: step k (from 1)
ends at feature frame k * S - 1, whose audio ends at k * S * hop + (window - hop) ms.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import numpy as np

from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.rundir import METADATA
from kws_zoo.core.errors import ModelLoadError


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
        from kws_zoo.evaluate.detector import softmax

        return softmax(self.logits(features)[self.warmup_steps:])

    def detector(self, config=None):
        """A Detector timed for posteriors(): detection times in seconds of the audio."""
        from kws_zoo.evaluate.detector import Detector, DetectorConfig

        return Detector(self.labels, self.step_ms, config or DetectorConfig(),
                        start_ms=self.start_ms + self.warmup_steps * self.step_ms)


def _metadata(path: str) -> dict:
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    meta = os.path.join(folder, METADATA)
    if not os.path.isfile(meta):
        raise ModelLoadError(f"{path}: no {METADATA} beside the model (labels and frontend are unknown)")
    with open(meta) as f:
        return json.load(f)


def load_streamer(path: str, runtime: str = "keras") -> Streamer:
    """runtime 'keras' streams the float model (external state); 'tflm' runs a streaming int8 .tflite: the
    file itself, or RUN/stream/model_stream_external_int8.tflite for a run directory."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file or directory")
    if runtime not in ("keras", "tflm"):
        raise ValueError(f"runtime must be 'keras' or 'tflm', got {runtime!r}")
    if runtime == "tflm" and os.path.isdir(path):
        candidate = os.path.join(path, "stream", "model_stream_external_int8.tflite")
        if not os.path.isfile(candidate):
            raise ModelLoadError(f"{path}: no {candidate}; write it with `python -m kws_zoo.workflows.stream_export {path}`")
        path = candidate
    meta = _metadata(path)
    frontend = FrontendConfig(**meta["frontend"])
    if path.endswith(".tflite"):
        from kws_zoo.device.streaming import TflmStreamingModel

        if "streaming" not in meta:
            raise ModelLoadError(f"{path}: {METADATA} has no 'streaming' entry; not a streaming export")
        with open(path, "rb") as f:
            model = TflmStreamingModel(f.read())
        return Streamer(path, "tflm", meta["labels"], frontend, meta["streaming"]["window_frames"],
                        model.frames_per_step, model.run)
    from kws_zoo.models.saving import load_keras
    from kws_zoo.export.streaming import run_stream, streaming_spec, to_streaming

    keras_path = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    model = load_keras(keras_path)
    spec = streaming_spec(model)  # StreamingError (a ValueError) names the layer that cannot stream
    stream = to_streaming(model, "external")
    return Streamer(keras_path, "keras", meta["labels"], frontend, spec.window_frames, spec.frames_per_step,
                    lambda feats: run_stream(stream, feats[None])[0])
