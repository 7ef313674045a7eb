"""What streaming saves: MACs and weight reads per second of audio, TFLM arena and state bytes, per form.

The non-streaming baseline recomputes the whole window every `recompute_ms` (20 ms: a decision as often as
a 20 ms hop streaming model gives one); the streaming forms run once per step (frames_per_step hops).
Weight bytes read per second count every constant tensor of the int8 graph once per invoke: a lower
bound (a cache-less MCU kernel re-reads a conv's weights at every output position), and the same per invoke
for both forms, so streaming saves weight traffic only by invoking less often, not per invoke.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from kws_zoo.device.flatbuffer import weight_bytes
from kws_zoo.device.runtime import TflmModel
from kws_zoo.device.streaming import TflmStreamingModel
from kws_zoo.export.streaming_tflite import streaming_forms
from kws_zoo.models import create_model, get_entry, list_models
from kws_zoo.models.profile import count_macs, step_macs


def streaming_cost(model, *, hop_ms: float, representative: np.ndarray, recompute_ms: float = 20.0,
                   max_steps: int = 300) -> dict:
    """Cost of `model` run as a whole window every recompute_ms and streamed (external and internal state),
    each as int8 on TFLM. representative: feature streams [N, T, ...] for calibration (T >= window)."""
    # stream-export's conversion, so these are the costs of the files it writes. The whole window is its int8
    # reference: frequency means as depthwise convs (the streaming graph's), measured on ds_cnn_stream at 576
    # weight bytes and 768 arena bytes more than the pool `kws-zoo export` keeps; the same MACs are counted.
    forms = streaming_forms(model, representative, max_steps=max_steps)
    spec = forms.spec
    per_s = 1000.0 / recompute_ms
    report = {"window_frames": spec.window_frames, "frames_per_step": spec.frames_per_step, "hop_ms": hop_ms,
              "recompute_ms": recompute_ms, "padding": spec.padding,
              "non_streaming": _row(count_macs(forms.inference), per_s, forms.window,
                                    TflmModel(forms.window).arena_bytes, state=0)}
    steps_per_s = 1000.0 / (hop_ms * spec.frames_per_step)
    for mode, form in forms.forms.items():
        tflm = TflmStreamingModel(form.int8)
        report[mode] = _row(step_macs(form.model), steps_per_s, form.int8, tflm.arena_bytes, tflm.state_bytes)
    report["macs_per_s_ratio"] = report["non_streaming"]["macs_per_s"] / report["external"]["macs_per_s"]
    return report


def _row(macs: int, invokes_per_s: float, model_bytes: bytes, arena: int, state: int) -> dict:
    weights = weight_bytes(model_bytes)
    return {"macs_per_invoke": int(macs), "invokes_per_s": invokes_per_s, "macs_per_s": macs * invokes_per_s,
            "weight_bytes": weights, "weight_bytes_per_s": weights * invokes_per_s, "flash_bytes": len(model_bytes),
            "arena_bytes": int(arena), "state_bytes": int(state)}


def format_cost(name: str, report: dict) -> str:
    """A Markdown table of one model's report."""
    rows = [f"{name}: window {report['window_frames']} frames of {report['hop_ms']:g} ms, step "
            f"{report['frames_per_step']} frame(s), padding {report['padding']}; non-streaming recomputed every "
            f"{report['recompute_ms']:g} ms",
            "", "| form | MACs/invoke | invokes/s | MACs/s | weight bytes read/s | flash | arena | state bytes |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for form in ("non_streaming", "external", "internal"):
        r = report[form]
        rows.append(f"| {form} | {r['macs_per_invoke']:,} | {r['invokes_per_s']:g} | {r['macs_per_s']:,.0f} | "
                    f"{r['weight_bytes_per_s']:,.0f} | {r['flash_bytes']:,} | {r['arena_bytes']:,} | "
                    f"{r['state_bytes']:,} |")
    rows.append(f"\nMACs/s, non-streaming / streaming: {report['macs_per_s_ratio']:.1f}x")
    return "\n".join(rows)


def preset_cost(name: str, hop_ms: float | None = None, num_classes: int = 12) -> dict:
    """streaming_cost of a registered streamable preset at its default input, calibrated on random-walk
    feature streams (costs do not depend on the weights). hop_ms defaults to a ~1 s window's hop."""
    model = create_model(name, num_classes=num_classes)
    window, bins = model.input_shape[1], model.input_shape[-1]
    hop_ms = hop_ms or (20.0 if window < 60 else 10.0)
    rng = np.random.default_rng(0)
    walks = np.cumsum(rng.standard_normal((4, window + 60, bins)), axis=1) / np.sqrt(window)
    report = streaming_cost(model, hop_ms=hop_ms, representative=walks.astype(np.float32))
    return {**report, "input_shape": [int(window), int(bins)]}


def summary_table(reports: dict) -> str:
    """One row per preset: the figures the streaming issue asks for."""
    rows = ["| preset (input, hop) | MACs/s whole every 20 ms | MACs/s streaming | ratio | weight B/s whole / "
            "streaming | arena whole / external / internal | state bytes |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in reports.items():
        w, e, i = r["non_streaming"], r["external"], r["internal"]
        shape = "x".join(map(str, r.get("input_shape", [r["window_frames"], "?"])))
        rows.append(f"| {name} ({shape}, {r['hop_ms']:g} ms) | {w['macs_per_s'] / 1e6:.1f} M | "
                    f"{e['macs_per_s'] / 1e6:.2f} M | {r['macs_per_s_ratio']:.1f}x | "
                    f"{w['weight_bytes_per_s'] / 1e6:.2f} M / {e['weight_bytes_per_s'] / 1e6:.2f} M | "
                    f"{w['arena_bytes']:,} / {e['arena_bytes']:,} / {i['arena_bytes']:,} | {e['state_bytes']:,} |")
    return "\n".join(rows)


def cost_of_presets(names=(), hop_ms: float | None = None, progress: bool = True) -> dict:
    """{preset: preset_cost} for the named presets, or for every streamable one."""
    names = list(names) or [n for n in list_models() if get_entry(n).streamable]
    return {name: preset_cost(name, hop_ms) for name in tqdm(names, desc="stream-cost", disable=not progress)}
