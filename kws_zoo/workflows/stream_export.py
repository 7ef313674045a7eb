"""Streaming export of a trained run: int8 .tflite with external and with internal state, checked on TFLM.

Writes to RUN/stream (or --out): model_stream_external_int8.tflite, model_stream_internal_int8.tflite,
model_window_int8.tflite (the whole-window int8 model calibrated on the same audio), kws_zoo.json (the run's
metadata plus the window and step), stream_card.json (cost per form, TFLM checks).
Calibration streams are the run's training clips' features joined end to end (every form calibrated on
them, by kws_zoo.export.streaming_tflite.streaming_forms); the check streams test clips the same way and
compares each form's top-1 with the int8 whole-window model's on every full window.

`kws-zoo stream-export RUN_DIR [--out DIR]`
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.files import atomic_write_bytes, atomic_write_json
from kws_zoo.data.pipeline import features_for
from kws_zoo.device.flatbuffer import weight_bytes
from kws_zoo.device.runtime import TflmModel
from kws_zoo.device.streaming import TflmStreamingModel
from kws_zoo.export.streaming import streaming_spec
from kws_zoo.export.streaming_tflite import StreamingForms, streaming_forms
from kws_zoo.models.profile import count_macs, step_macs
from kws_zoo.models.saving import load_keras
from kws_zoo.recipe import Recipe, load_recipe
from kws_zoo.rundir import StreamingInfo
from kws_zoo.train import PreparedData, prepare_data
from kws_zoo.workflows.compress_run import deployed_float

CALIBRATION_STREAMS = 4


def _joined(features: np.ndarray, streams: int) -> np.ndarray:
    """[N, T, bins] clips -> [streams, (N // streams) * T, bins]: clips end to end."""
    n = len(features) // streams * streams
    return features[:n].reshape(streams, -1, features.shape[-1])


def _joined_split(recipe: Recipe, data: PreparedData, rng, split: str, clips: int, streams: int) -> np.ndarray:
    waves = data.waveforms[split]
    feats = features_for(waves[rng.permutation(len(waves))[:clips]], recipe.frontend,
                         background=data.background, seed=recipe.seed)
    return _joined(feats, streams)


def calibration_streams(recipe: Recipe, data: PreparedData, clips: int) -> np.ndarray:
    """Calibration streams [CALIBRATION_STREAMS, T, bins]: randomly picked training clips joined end to end."""
    return _joined_split(recipe, data, np.random.default_rng(recipe.seed), "train", clips, CALIBRATION_STREAMS)


def calibration_and_check_streams(recipe: Recipe, data: PreparedData, calibration_clips: int, check_clips: int):
    """(calibration_streams, one check stream [T', bins] of randomly picked test clips joined end to end)."""
    rng = np.random.default_rng(recipe.seed)
    calibration = _joined_split(recipe, data, rng, "train", calibration_clips, CALIBRATION_STREAMS)
    return calibration, _joined_split(recipe, data, rng, "test", check_clips, 1)[0]


def export_streaming_run(run_dir: str, out_dir: str | None = None, progress: bool = True,
                         calibration_clips: int = 240, check_clips: int = 40) -> dict:
    out_dir = out_dir or os.path.join(run_dir, rundir.STREAM_DIR)
    recipe = load_recipe(os.path.join(run_dir, rundir.RECIPE))
    model = deployed_float(run_dir, recipe) or load_keras(os.path.join(run_dir, rundir.MODEL))
    info = rundir.read_info(run_dir)
    streaming_spec(model)  # a model that cannot stream fails here, before its data is loaded
    data = prepare_data(recipe, progress)
    streams, check = calibration_and_check_streams(recipe, data, calibration_clips, check_clips)
    forms = streaming_forms(model, streams, max_steps=streams.shape[0] * streams.shape[1])
    os.makedirs(out_dir, exist_ok=True)
    write_stream_files(forms, out_dir)
    card = stream_card(forms, check, recipe.frontend.hop_ms)
    spec = forms.spec
    streaming = StreamingInfo(spec.window_frames, spec.frames_per_step, spec.padding)
    rundir.write_info(out_dir, dataclasses.replace(info, streaming=streaming))
    atomic_write_json(os.path.join(out_dir, rundir.STREAM_CARD), card)
    return card


def write_stream_files(forms: StreamingForms, out_dir: str) -> None:
    atomic_write_bytes(os.path.join(out_dir, rundir.STREAM_WINDOW), forms.window)  # the reference for drift checks
    for mode, form in forms.forms.items():
        atomic_write_bytes(os.path.join(out_dir, rundir.stream_model_file(mode)), form.int8)


def stream_card(forms: StreamingForms, check: np.ndarray, hop_ms: float) -> dict:
    """Cost of each form and its top-1 agreement with the whole-window int8 model on every full window of
    the check stream [T, bins]."""
    w, s = forms.spec.window_frames, forms.spec.frames_per_step
    ends = np.arange(s - 1, len(check) // s * s, s)  # the last frame of every step
    full = ends >= w - 1  # steps whose window is all check frames
    window = TflmModel(forms.window)
    ref = window.predict(np.stack([check[e - w + 1:e + 1] for e in ends[full]]))
    macs = count_macs(forms.inference)
    card = {"window_frames": w, "frames_per_step": s, "padding": forms.spec.padding, "hop_ms": hop_ms,
            "non_streaming": {"macs_per_window": macs, "flash_bytes": len(forms.window),
                              "weight_bytes": weight_bytes(forms.window),
                              "arena_bytes": window.arena_bytes, "macs_per_s_every_20ms": macs * 50}}
    for mode, form in forms.forms.items():
        tflm = TflmStreamingModel(form.int8)
        y = tflm.run(check)[full]
        step = step_macs(form.model)
        card[mode] = {"macs_per_step": step, "macs_per_s": step * 1000.0 / (hop_ms * s),
                      "flash_bytes": len(form.int8), "weight_bytes": weight_bytes(form.int8),
                      "arena_bytes": tflm.arena_bytes, "state_bytes": tflm.state_bytes, "check_steps": int(len(y)),
                      "top1_agreement_with_int8_window": float(np.mean(y.argmax(1) == ref.argmax(1))),
                      "requantized_states": tflm.requantized_states}
    return card
