"""Drift check of the int8 streaming models on the TFLM interpreter over a long stream of audio.

A streaming model carries state from step to step for as long as the device listens; a bug in a ring
buffer, or int8 state rounding that accumulates, would show as outputs that slowly part from what the
whole-window model computes on the same frames. This runs both exported forms (external and internal
state) over `minutes` of the long test stream (kws_zoo.evaluate.long_audio: unseen voices in background noise) and,
at sampled steps, compares them with the int8 whole-window model (RUN/stream/model_window_int8.tflite, same
calibration) on the window that ends at the same frame. Reported per minute: top-1 agreement and mean
|logit difference|; drift would make the last minutes worse than the first.

`kws-zoo stream-drift RUN_DIR --minutes 10` (after `kws-zoo stream-export RUN_DIR`) writes
RUN/stream/drift.json and drift.png.
"""
from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from kws_zoo import rundir
from kws_zoo.core.errors import ModelLoadError
from kws_zoo.core.files import atomic_write_json
from kws_zoo.data.frontends import stream_features
from kws_zoo.device.runtime import TflmModel
from kws_zoo.device.streaming import TflmStreamingModel
from kws_zoo.evaluate.long_audio import build_test_stream
from kws_zoo.evaluate.plots import plot_drift
from kws_zoo.rundir import STREAM_DIR, STREAM_FORMS, STREAM_WINDOW, read_info, stream_model_file

FORMS = STREAM_FORMS


def _read(path: str) -> bytes:
    if not os.path.isfile(path):
        raise ModelLoadError(f"{path}: missing; run `kws-zoo stream-export` on the run first")
    with open(path, "rb") as f:
        return f.read()


def _window_frames(stream_dir: str) -> int:
    """Input frames of the whole-window model, from the stream folder's kws_zoo.json."""
    info = read_info(stream_dir) if os.path.isdir(stream_dir) else None
    if info is None or info.streaming is None:
        raise ModelLoadError(f"{stream_dir}: no streaming export; run `kws-zoo stream-export` on the run first")
    return info.streaming.window_frames


def _stream_logits(model: TflmStreamingModel, feats: np.ndarray, form: str, progress: bool) -> np.ndarray:
    """Logits of every whole step of `feats`, streamed from a fresh state."""
    s = model.frames_per_step
    model.reset()
    steps = tqdm(range(0, len(feats) // s * s, s), desc=f"TFLM {form} state", unit="step", disable=not progress,
                 mininterval=2)
    return np.stack([model.step(feats[t:t + s]) for t in steps])


def _per_minute(y: np.ndarray, ref: np.ndarray, minute_of: np.ndarray) -> list[dict]:
    rows = []
    for m in np.unique(minute_of):
        sel = minute_of == m
        rows.append({"minute": int(m), "samples": int(sel.sum()),
                     "top1_agreement": float(np.mean(y[sel].argmax(1) == ref[sel].argmax(1))),
                     "mean_abs_logit_diff": float(np.abs(y[sel] - ref[sel]).mean()),
                     "max_abs_logit_diff": float(np.abs(y[sel] - ref[sel]).max())})
    return rows


def check_drift(run_dir: str, *, minutes: float = 10.0, every_s: float = 1.0, seed: int = 1,
                progress: bool = True) -> dict:
    """Per-minute agreement of both streaming forms with the whole-window int8 model, on TFLM."""
    stream_dir = os.path.join(run_dir, STREAM_DIR)
    window = _window_frames(stream_dir)
    whole = TflmModel(_read(os.path.join(stream_dir, STREAM_WINDOW)))
    recipe, audio, _ = build_test_stream(run_dir, minutes=minutes, seed=seed, progress=progress)
    feats = stream_features(audio, recipe.frontend)
    hop_s = recipe.frontend.hop_ms / 1000.0
    outputs = {}
    for form in FORMS:
        model = TflmStreamingModel(_read(os.path.join(stream_dir, stream_model_file(form))))
        s = model.frames_per_step
        outputs[form] = _stream_logits(model, feats, form, progress)
    ends = np.arange(s - 1, len(feats) // s * s, s)  # last frame of each step
    stride = max(1, int(round(every_s / (s * hop_s))))
    sampled = np.flatnonzero(ends >= window - 1)[::stride]
    ref = whole.predict(np.stack([feats[ends[i] - window + 1:ends[i] + 1] for i in sampled]), progress=False)
    minute_of = (ends[sampled] * hop_s // 60).astype(int)
    report = {"run": run_dir, "minutes": minutes, "steps": int(len(ends)), "sampled_steps": int(len(sampled)),
              "every_s": every_s, "window_frames": int(window), "forms": {}}
    for form in FORMS:
        y = outputs[form][sampled]
        report["forms"][form] = {"top1_agreement": float(np.mean(y.argmax(1) == ref.argmax(1))),
                                 "per_minute": _per_minute(y, ref, minute_of)}
    report["external_equals_internal"] = bool(np.array_equal(outputs["external"], outputs["internal"]))
    report["png"] = plot_drift(report, os.path.join(stream_dir, rundir.DRIFT_PLOT))
    atomic_write_json(os.path.join(stream_dir, rundir.DRIFT_REPORT), report)
    return report


def format_report(report: dict) -> str:
    lines = ["| minute | " + " | ".join(f"{f} top-1 agree | {f} mean abs diff" for f in FORMS) + " |",
             "|---:|" + "---:|---:|" * len(FORMS)]
    per = {f: report["forms"][f]["per_minute"] for f in FORMS}
    for i, row in enumerate(per[FORMS[0]]):
        cells = [f"{100 * per[f][i]['top1_agreement']:.1f}% | {per[f][i]['mean_abs_logit_diff']:.4f}" for f in FORMS]
        lines.append(f"| {row['minute']} | " + " | ".join(cells) + " |")
    lines.append(f"{report['steps']} steps per form, {report['sampled_steps']} sampled; "
                 f"external == internal on every step: {report['external_equals_internal']}; plot: {report['png']}")
    return "\n".join(lines)
