"""Wake-word decisions as ESPHome's micro_wake_word makes them, scored as false rejects vs false accepts per hour.

Decision (streaming_model.cpp): every invoke gives a uint8 probability; the detector keeps the last
`window` of them (zeros after a reset) and fires when their sum exceeds cutoff_u8 * window; after a detection
(and at start) it resets them and waits until MIN_SLICES feature slices have passed whose newest probability
was below the cut-off. A slice is one 10 ms feature frame, an invoke `stride` of them.

Scoring: a detection between an event's start and its end + latency matches it (once); every other detection
is a false accept. FA/h comes with its exact 95% Poisson interval (Garwood): from a few hours of audio a rate of
0.5/h is one or two events, and the interval says how little that pins down.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from kws_zoo.core.errors import ConfigError

MIN_SLICES = 100  # ESPHome's MIN_SLICES_BEFORE_DETECTION
CUTOFFS_U8 = tuple(range(100, 255, 3))
WINDOWS = (1, 3, 5, 8)


def poisson_interval(count: int, exposure: float, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson rate: `count` events in `exposure` units (e.g. hours)."""
    if count < 0 or exposure <= 0 or not 0 < confidence < 1:
        raise ConfigError(f"need count >= 0, exposure > 0, 0 < confidence < 1; got {count}, {exposure}, {confidence}")
    alpha = 1 - confidence
    low = 0.0 if count == 0 else stats.chi2.ppf(alpha / 2, 2 * count) / 2
    high = stats.chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2
    return float(low / exposure), float(high / exposure)


def to_u8(probability: np.ndarray) -> np.ndarray:
    """A float probability as the uint8 output tensor holds it (scale 1/256, zero point 0)."""
    return np.clip(np.round(np.asarray(probability, np.float64) * 256), 0, 255).astype(np.uint8)


def cutoff_u8(cutoff: float) -> int:
    """ESPHome's integer cut-off for a manifest's probability_cutoff."""
    return int(round(cutoff * 255))


def detect(probs_u8: np.ndarray, cutoff: int, window: int, stride: int) -> np.ndarray:
    """Invoke indices at which ESPHome's detector fires over a stream of uint8 probabilities."""
    p = np.asarray(probs_u8, np.int64)
    below = p < cutoff
    hits, start = [], 0  # start: the first invoke after the last reset
    needed = -(-MIN_SLICES // stride)  # invokes below the cut-off before a detection is allowed
    cum_below = np.concatenate([[0], np.cumsum(below)])
    csum = np.concatenate([[0], np.cumsum(p)])
    n = len(p)
    while start < n:
        # the earliest invoke at which `needed` below-cut-off invokes have passed since the reset
        allowed = int(np.searchsorted(cum_below, cum_below[start] + needed, side="left")) - 1
        if allowed >= n:
            break
        hit, chunk = None, 4096
        while hit is None and allowed < n:  # look ahead in growing chunks: detections are usually near
            t = np.arange(allowed, min(n, allowed + chunk))
            lo = np.maximum(t - window + 1, start)
            fire = np.flatnonzero(csum[t + 1] - csum[lo] > cutoff * window)
            hit = int(t[fire[0]]) if len(fire) else None
            allowed, chunk = allowed + chunk, chunk * 4
        if hit is None:
            break
        hits.append(hit)
        start = hit + 1
    return np.asarray(hits, np.int64)


@dataclasses.dataclass(frozen=True)
class StreamScores:
    """uint8 probabilities of one stream and what it holds."""
    probs_u8: np.ndarray
    step_s: float           # seconds per invoke
    first_end_s: float      # end time of invoke 0's audio
    events: list            # [(start_s, end_s)] of the wake phrase
    seconds: float          # audio length

    def times(self, indices: np.ndarray) -> np.ndarray:
        return self.first_end_s + np.asarray(indices) * self.step_s


def score(streams: list[StreamScores], cutoff: int, window: int, stride: int, latency_s: float) -> dict:
    """False rejects and false accepts of the detector over `streams`; FA/h with its 95% Poisson interval."""
    events = misses = false = 0
    seconds = 0.0
    for s in streams:
        times = s.times(detect(s.probs_u8, cutoff, window, stride))
        matched = np.zeros(len(s.events), bool)
        for t in times:
            hit = next((i for i, (a, b) in enumerate(s.events) if not matched[i] and a <= t <= b + latency_s), None)
            if hit is None:
                false += 1
            else:
                matched[hit] = True
        events += len(s.events)
        misses += int((~matched).sum())
        seconds += s.seconds
    hours = seconds / 3600.0
    low, high = poisson_interval(false, hours)
    return {"cutoff": round(cutoff / 255, 4), "cutoff_u8": int(cutoff), "window": int(window),
            "events": events, "false_rejects": misses, "frr": misses / events if events else float("nan"),
            "false_accepts": false, "hours": round(hours, 4), "fa_per_hour": false / hours,
            "fa_per_hour_95": [round(low, 4), round(high, 4)]}


def sweep(streams: list[StreamScores], stride: int, latency_s: float, cutoffs=CUTOFFS_U8, windows=WINDOWS) -> list:
    return [score(streams, c, w, stride, latency_s) for w in windows for c in cutoffs]


def choose(rows: list[dict], target_fa_per_hour: float) -> dict:
    """The validation row to deploy: the lowest FRR among rows at or below the target FA/h (ties: the higher
    cut-off, then the shorter window); if none reaches the target, the row with the fewest false accepts."""
    if target_fa_per_hour <= 0:
        raise ConfigError(f"target FA/h must be > 0, got {target_fa_per_hour}")
    ok = [r for r in rows if r["fa_per_hour"] <= target_fa_per_hour]
    if ok:
        best = min(ok, key=lambda r: (r["frr"], -r["cutoff_u8"], r["window"]))
        return {**best, "target_met": True}
    best = min(rows, key=lambda r: (r["fa_per_hour"], r["frr"], -r["cutoff_u8"]))
    return {**best, "target_met": False}
