"""Continuous detection on a stream of posteriors: smoothing, threshold, refractory period.

A streaming model gives class posteriors every step (10-40 ms). A single step's peak is noisy, and a word
stays in the window for many steps, so a detector (as TF's RecognizeCommands and most product KWS do):
  1. averages each class's posterior over the last `smoothing_ms` of steps (suppresses one-step spikes);
  2. fires when the best keyword's average reaches `threshold` (non-keyword labels such as _silence_ and
     _unknown_ never fire);
  3. then stays silent for `refractory_ms`, so one utterance gives one detection although it stays in the
     window, and in the average, for about a second.
The detection time is the end of the audio of the step that fired, in seconds from the stream's start.
"""
from __future__ import annotations

import collections
import dataclasses

import numpy as np

from kws_zoo.core.errors import ConfigError, ModelError

NON_KEYWORDS = ("_silence_", "_unknown_")


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    threshold: float = 0.8
    smoothing_ms: float = 200.0
    refractory_ms: float = 1000.0

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.smoothing_ms < 0 or self.refractory_ms < 0:
            raise ConfigError("smoothing_ms and refractory_ms must be >= 0")


@dataclasses.dataclass(frozen=True)
class Detection:
    time_s: float
    label: str
    score: float  # the smoothed posterior that crossed the threshold

    def to_dict(self) -> dict:
        return {"time_s": round(self.time_s, 3), "label": self.label, "score": round(self.score, 4)}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Posteriors along the last axis, in float64; the max is subtracted first, so large logits cannot overflow."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class Detector:
    """Feed posteriors one step at a time (update) or all at once (run)."""

    def __init__(self, labels, step_ms: float, config: DetectorConfig = DetectorConfig(), start_ms: float = 0.0):
        """step_ms: audio per step; start_ms: time of the first step's end minus step_ms (for feature frames,
        the window minus the hop: frame 0 ends a window, not a hop, after the start)."""
        if step_ms <= 0:
            raise ConfigError(f"step_ms must be > 0, got {step_ms}")
        self.labels = list(labels)
        self.step_ms = float(step_ms)
        self.start_ms = float(start_ms)
        self.config = config
        self.keywords = np.array([label not in NON_KEYWORDS for label in self.labels])
        if not self.keywords.any():
            raise ModelError(f"no keyword among the labels {self.labels}")
        self._window = max(1, int(round(config.smoothing_ms / step_ms)))
        self.reset()

    def reset(self) -> None:
        self._recent: collections.deque = collections.deque(maxlen=self._window)
        self._step = 0
        self._last_fire_ms = -np.inf

    def update(self, posteriors: np.ndarray) -> Detection | None:
        p = np.asarray(posteriors, np.float64).reshape(-1)
        if p.shape[0] != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} posteriors, got {p.shape[0]}")
        self._recent.append(p)
        self._step += 1
        now_ms = self.start_ms + self._step * self.step_ms
        # The mean of the kept steps, recomputed (a running sum would carry rounding for hours).
        smoothed = np.where(self.keywords, np.mean(self._recent, axis=0), -1.0)
        best = int(smoothed.argmax())
        if smoothed[best] < self.config.threshold or now_ms - self._last_fire_ms < self.config.refractory_ms:
            return None
        self._last_fire_ms = now_ms
        return Detection(now_ms / 1000.0, self.labels[best], float(smoothed[best]))

    def run(self, posteriors: np.ndarray) -> list[Detection]:
        """Detections over posteriors [steps, classes], from a fresh state."""
        self.reset()
        return [d for d in map(self.update, np.asarray(posteriors)) if d is not None]
