"""Streaming export of a trained run: int8 .tflite with external and with internal state, checked on TFLM.

Writes to RUN/stream (or --out): model_stream_external_int8.tflite, model_stream_internal_int8.tflite,
model_window_int8.tflite (the whole-window int8 model calibrated on the same audio), kws_zoo.json (the run's metadata plus the window and step), stream_card.json (cost per form, TFLM checks).
Calibration streams are the run's training clips' features joined end to end (every form calibrated on
them); the check streams test clips the same way and compares each form's top-1 with the int8
whole-window model's on every full window.

`kws-zoo stream-export RUN_DIR [--out DIR]`
"""
from __future__ import annotations

import json
import os

import numpy as np

from kws_zoo.rundir import METADATA
from kws_zoo.models.saving import load_keras
from kws_zoo.core.files import atomic_write_bytes, atomic_write_json


def _joined(features: np.ndarray, streams: int) -> np.ndarray:
    """[N, T, bins] clips -> [streams, (N // streams) * T, bins]: clips end to end."""
    n = len(features) // streams * streams
    return features[:n].reshape(streams, -1, features.shape[-1])


def export_streaming_run(run_dir: str, out_dir: str | None = None, progress: bool = True,
                         calibration_clips: int = 240, check_clips: int = 40) -> dict:
    from kws_zoo.data.pipeline import features_for
    from kws_zoo.export.tflite import to_tflite_int8
    from kws_zoo.recipe import load_recipe
    from kws_zoo.export.reparam import reparameterize
    from kws_zoo.export.streaming import streaming_spec, to_streaming, with_frequency_mean_pool
    from kws_zoo.models.profile import step_macs
    from kws_zoo.device.flatbuffer import weight_bytes
    from kws_zoo.export.streaming_tflite import to_tflite_streaming
    from kws_zoo.train import prepare_data
    from kws_zoo.device.runtime import TflmModel
    from kws_zoo.device.streaming import TflmStreamingModel
    from kws_zoo.models.profile import count_macs

    out_dir = out_dir or os.path.join(run_dir, "stream")
    recipe = load_recipe(os.path.join(run_dir, "recipe.json"))
    model = load_keras(os.path.join(run_dir, "model.keras"))
    spec = streaming_spec(model)
    data = prepare_data(recipe, progress)
    rng = np.random.default_rng(recipe.seed)
    pick = lambda split, n: data.waveforms[split][rng.permutation(len(data.waveforms[split]))[:n]]  # noqa: E731
    calib = features_for(pick("train", calibration_clips), recipe.frontend, background=data.background,
                         seed=recipe.seed)
    check = _joined(features_for(pick("test", check_clips), recipe.frontend, background=data.background,
                                 seed=recipe.seed), 1)[0]
    w, s = spec.window_frames, spec.frames_per_step
    streams = _joined(calib, 4)
    # The whole-window model is calibrated on windows of the same streams (see kws_zoo.export.streaming_tflite).
    windows = np.stack([x[e - w + 1:e + 1] for x in streams for e in range(w - 1, x.shape[0], 3)])
    inference = reparameterize(model)
    # The reference quantizes the pool where the streaming graph does (kws_zoo.streaming.with_frequency_mean_pool).
    whole = to_tflite_int8(with_frequency_mean_pool(inference), windows, num_samples=len(windows))
    ends = np.arange(s - 1, len(check) // s * s, s)  # the last frame of every step
    full = ends >= w - 1  # steps whose window is all check frames
    ref = TflmModel(whole).predict(np.stack([check[e - w + 1:e + 1] for e in ends[full]]))
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_bytes(os.path.join(out_dir, "model_window_int8.tflite"), whole)  # the reference for drift checks
    hop = recipe.frontend.hop_ms
    card = {"window_frames": w, "frames_per_step": s, "padding": spec.padding, "hop_ms": hop,
            "non_streaming": {"macs_per_window": count_macs(inference), "flash_bytes": len(whole),
                              "weight_bytes": weight_bytes(whole), "arena_bytes": TflmModel(whole).arena_bytes,
                              "macs_per_s_every_20ms": count_macs(inference) * 50}}
    for mode in ("external", "internal"):
        stream = to_streaming(model, mode)
        int8 = to_tflite_streaming(stream, streams, max_steps=streams.shape[0] * streams.shape[1])
        atomic_write_bytes(os.path.join(out_dir, f"model_stream_{mode}_int8.tflite"), int8)
        tflm = TflmStreamingModel(int8)
        y = tflm.run(check)[full]
        macs = step_macs(stream)
        card[mode] = {"macs_per_step": macs, "macs_per_s": macs * 1000.0 / (hop * s), "flash_bytes": len(int8),
                      "weight_bytes": weight_bytes(int8), "arena_bytes": tflm.arena_bytes,
                      "state_bytes": tflm.state_bytes, "check_steps": int(len(y)),
                      "top1_agreement_with_int8_window": float(np.mean(y.argmax(1) == ref.argmax(1))),
                      "requantized_states": tflm.requantized_states}
    with open(os.path.join(run_dir, METADATA)) as f:
        meta = json.load(f)
    meta["streaming"] = {"window_frames": w, "frames_per_step": s, "padding": spec.padding}
    atomic_write_json(os.path.join(out_dir, METADATA), meta)
    atomic_write_json(os.path.join(out_dir, "stream_card.json"), card)
    return card
