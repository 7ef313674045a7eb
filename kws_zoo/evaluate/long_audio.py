"""Long-audio evaluation: false rejects and false accepts per hour of a streaming detector.

A test stream is a long background (the dataset's noise files, joined with crossfades at varying levels)
into which test-split utterances (voices never seen in training) are placed at random gaps and SNRs:
keywords with their ground-truth times, and `_unknown_` words as distractors that must not fire. The
streaming model's posteriors over the whole stream go through kws_zoo.evaluate.detector at each threshold:
  - a detection with an event's label between its start and its end + `latency_s` matches it (once);
  - every other detection is a false accept (wrong word, a distractor, noise, a repeat);
  - an event nothing matched is a false reject.
FRR = false rejects / events; FA/h = false accepts / hours of audio. The DET curve plots the two.

`kws-zoo long-audio RUN_DIR --minutes 10 --out DIR` writes report.json and det.png.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.files import atomic_write_json
from kws_zoo.data import load_dataset
from kws_zoo.data.audio import SAMPLE_RATE, read_wav, write_wav
from kws_zoo.data.frontends import stream_features
from kws_zoo.data.pipeline import load_waveforms
from kws_zoo.evaluate.detector import NON_KEYWORDS, Detection, Detector, DetectorConfig
from kws_zoo.evaluate.plots import plot_det
from kws_zoo.evaluate.streamer import load_streamer
from kws_zoo.recipe import load_recipe

# Files of a long-audio report folder (`kws-zoo long-audio RUN_DIR --out DIR`).


@dataclasses.dataclass(frozen=True)
class Event:
    start_s: float
    end_s: float
    label: str


def speech_extent(clip: np.ndarray, rate: int = SAMPLE_RATE, floor_db: float = -30.0) -> tuple[int, int]:
    """(first, last + 1) sample of the 10 ms frames within floor_db of the clip's loudest frame."""
    hop = rate // 100
    frames = np.asarray(clip[: len(clip) // hop * hop], np.float64).reshape(-1, hop)
    energy = (frames ** 2).mean(axis=1) + 1e-12
    active = np.flatnonzero(10 * np.log10(energy / energy.max()) > floor_db)
    return int(active[0] * hop), int((active[-1] + 1) * hop)


def _background_track(noises: list[np.ndarray], samples: int, rng: np.random.Generator, rms: float) -> np.ndarray:
    """`samples` of noise files one after another (random file, offset, level +-6 dB), 50 ms crossfades."""
    fade = SAMPLE_RATE // 20
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    out = np.zeros(samples + fade, np.float32)
    pos = 0
    while pos < samples:
        noise = noises[rng.integers(len(noises))]
        start = int(rng.integers(0, max(1, len(noise) - SAMPLE_RATE)))
        piece = noise[start:start + int(rng.integers(2, 8)) * SAMPLE_RATE].astype(np.float32)
        if len(piece) <= 2 * fade:
            continue
        piece = piece * (rms / (np.sqrt(np.mean(piece ** 2)) + 1e-9) * 10 ** (rng.uniform(-6, 6) / 20))
        piece[:fade] *= ramp
        piece[-fade:] *= ramp[::-1]
        end = min(pos + len(piece), len(out))
        out[pos:end] += piece[:end - pos]
        pos = end - fade
    return out[:samples]


def make_stream(keywords: list[tuple[np.ndarray, str]], distractors: list[np.ndarray], noises: list[np.ndarray],
                *, minutes: float, seed: int = 0, snr_db: tuple[float, float] = (5.0, 20.0),
                gap_s: tuple[float, float] = (1.0, 4.0), distractor_share: float = 0.25,
                background_rms: float = 0.02) -> tuple[np.ndarray, list[Event]]:
    """(audio float32, keyword events) of `minutes` at 16 kHz. Utterances are placed without overlap,
    each clip's speech scaled to a random SNR against the background level; a share of the slots get a
    distractor (no event). Keywords cycle through a shuffled order so each is used about equally."""
    rng = np.random.default_rng(seed)
    samples = int(minutes * 60 * SAMPLE_RATE)
    audio = _background_track(noises, samples, rng, background_rms) if noises else np.zeros(samples, np.float32)
    order = list(rng.permutation(len(keywords)))
    events, pos = [], int(rng.uniform(*gap_s) * SAMPLE_RATE)
    while True:
        if distractors and rng.random() < distractor_share:
            clip, label = distractors[rng.integers(len(distractors))], None
        else:
            if not order:
                order = list(rng.permutation(len(keywords)))
            clip, label = keywords[order.pop()]
        first, last = speech_extent(clip)
        if pos + (last - first) >= samples:
            break
        speech = clip[first:last]
        gain = background_rms * 10 ** (rng.uniform(*snr_db) / 20) / (np.sqrt(np.mean(speech ** 2)) + 1e-9)
        audio[pos:pos + len(speech)] += gain * speech
        if label is not None:
            events.append(Event(pos / SAMPLE_RATE, (pos + len(speech)) / SAMPLE_RATE, label))
        pos += len(speech) + int(rng.uniform(*gap_s) * SAMPLE_RATE)
    return np.clip(audio, -1.0, 1.0), events


def score(detections: list[Detection], events: list[Event], latency_s: float) -> dict:
    """Matches detections to events (see the module docstring); counts and the detections' verdicts."""
    matched = [False] * len(events)
    false_accepts = []
    starts = np.array([e.start_s for e in events])
    for d in detections:
        hit = None
        for i in np.flatnonzero((starts <= d.time_s)):
            e = events[i]
            if not matched[i] and e.label == d.label and d.time_s <= e.end_s + latency_s:
                hit = i
                break
        if hit is None:
            false_accepts.append(d)
        else:
            matched[hit] = True
    misses = len(events) - sum(matched)
    return {"events": len(events), "false_rejects": misses, "false_accepts": len(false_accepts),
            "frr": misses / len(events) if events else float("nan"), "false_accept_list": false_accepts}


def sweep(posteriors: np.ndarray, labels, events: list[Event], *, step_ms: float, start_ms: float,
          duration_s: float, thresholds, latency_s: float, smoothing_ms: float = 200.0,
          refractory_ms: float = 1000.0) -> list[dict]:
    """One row per threshold: threshold, frr, fa_per_hour, counts."""
    rows = []
    for threshold in thresholds:
        detector = Detector(labels, step_ms, DetectorConfig(float(threshold), smoothing_ms, refractory_ms),
                            start_ms=start_ms)
        result = score(detector.run(posteriors), events, latency_s)
        rows.append({"threshold": round(float(threshold), 4), "frr": result["frr"],
                     "fa_per_hour": result["false_accepts"] / (duration_s / 3600.0),
                     "false_accepts": result["false_accepts"], "false_rejects": result["false_rejects"],
                     "events": result["events"]})
    return rows


def build_test_stream(run_dir: str, *, minutes: float, seed: int = 0, progress: bool = True):
    """(recipe, audio, events): the long test stream of a run's data (see make_stream): its test split's
    keywords and `_unknown_` words (unseen voices) in the dataset's background noises."""
    recipe = load_recipe(os.path.join(run_dir, rundir.RECIPE))
    data = load_dataset(recipe.data)
    tests = data.splits["test"]
    waves, _ = load_waveforms(tests, clip_samples=recipe.clip_samples, progress=progress)
    keywords = [(w, data.labels[e.label]) for w, e in zip(waves, tests) if e.path and
                data.labels[e.label] not in NON_KEYWORDS]
    distractors = [w for w, e in zip(waves, tests) if e.path and data.labels[e.label] == "_unknown_"]
    noises = [read_wav(p) for p in data.background]
    audio, events = make_stream(keywords, distractors, noises, minutes=minutes, seed=seed)
    return recipe, audio, events


def evaluate_run(run_dir: str, out_dir: str, *, minutes: float = 10.0, seed: int = 0, runtime: str = "keras",
                 thresholds=None, progress: bool = True, save_wav: bool = False) -> dict:
    """The long-audio report of a trained streamable run: test stream, posteriors, sweep, DET PNG; with
    save_wav also the stream (stream.wav) and its ground truth (events.json), e.g. for `kws-zoo stream`."""
    _, audio, events = build_test_stream(run_dir, minutes=minutes, seed=seed, progress=progress)
    os.makedirs(out_dir, exist_ok=True)
    if save_wav:
        write_wav(os.path.join(out_dir, rundir.LONG_AUDIO_WAV), audio)
        atomic_write_json(os.path.join(out_dir, rundir.LONG_AUDIO_EVENTS), [dataclasses.asdict(e) for e in events])
    streamer = load_streamer(run_dir, runtime)
    feats = stream_features(audio, streamer.frontend)
    posteriors = streamer.posteriors(feats)
    thresholds = np.round(np.arange(0.30, 0.991, 0.03), 2) if thresholds is None else thresholds
    start_ms = streamer.detector().start_ms
    rows = sweep(posteriors, streamer.labels, events, step_ms=streamer.step_ms, start_ms=start_ms,
                 duration_s=len(audio) / SAMPLE_RATE, thresholds=thresholds,
                 latency_s=streamer.window_ms / 1000.0 + 0.25)
    name = os.path.basename(os.path.normpath(run_dir))
    png = plot_det(rows, os.path.join(out_dir, rundir.DET_PLOT),
                   f"{name} ({runtime}): {minutes:g} min, {len(events)} keywords, unseen voices")
    report = {"run": run_dir, "runtime": runtime, "minutes": minutes, "seed": seed, "events": len(events),
              "keywords": sorted({e.label for e in events}), "distractors_placed": True,
              "step_ms": streamer.step_ms, "window_ms": streamer.window_ms, "rows": rows, "det_png": png}
    atomic_write_json(os.path.join(out_dir, rundir.LONG_AUDIO_REPORT), report)
    return report


def format_rows(rows: list[dict]) -> str:
    lines = ["| threshold | FRR | FA/h | false accepts | false rejects / events |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['threshold']:.2f} | {100 * r['frr']:.1f}% | {r['fa_per_hour']:.1f} | {r['false_accepts']} | "
              f"{r['false_rejects']} / {r['events']} |" for r in rows]
    return "\n".join(lines)
