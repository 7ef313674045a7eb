"""Run an int8 model over a labelled set on TFLM (the deployment reference) and on LiteRT.

Accuracy on TFLM is the number that counts for firmware; LiteRT is run alongside so a gap
between "the .tflite evaluated on desktop" and "the same bytes on TFLM" is visible, with the
per-logit LSB difference to tell rounding noise (1-3 LSB) from a real kernel mismatch.
"""
from __future__ import annotations

import numpy as np

from kws_zoo.core.errors import DeviceError
from kws_zoo.device.runtime import LiteRtModel, TflmModel


def verify_on_tflm(model_bytes: bytes, features_float: np.ndarray, labels: np.ndarray,
                   arena_size: int | None = None, litert_resolver: str = "auto",
                   progress: bool | None = None) -> dict:
    """Returns {n, tflm_accuracy, litert_accuracy, top1_agreement, max_lsb_diff,
    mean_lsb_diff, arena_bytes, arena_size, tflm_invoke_ms, litert_invoke_ms, tflm_top1}.

    features_float: [N, ...] float features (quantized with the model's input parameters);
    labels: [N] int class ids. LSB differences compare the raw int8 outputs of both runtimes.
    tflm_top1: [N] the class TFLM predicts for each example, so a caller's per-class report needs no
    second pass over the set.
    """
    labels = np.asarray(labels).reshape(-1)
    tflm = TflmModel(model_bytes, arena_size=arena_size)
    if tflm.input_quant is None or tflm.output_quant is None:
        raise DeviceError("verify_on_tflm expects a quantized (int8 in/out) model")
    x_int8, _ = tflm.prepare_input(features_float)
    if len(x_int8) != len(labels):
        raise ValueError(f"{len(x_int8)} examples but {len(labels)} labels")
    litert = LiteRtModel(model_bytes, resolver=litert_resolver)
    n = len(x_int8)
    y_tflm = tflm.predict(x_int8, progress=progress).reshape(n, -1).astype(np.int32)
    y_lite = litert.predict(x_int8, progress=progress).reshape(n, -1).astype(np.int32)
    diff = np.abs(y_tflm - y_lite)
    # argmax on int8 logits equals argmax on dequantized logits (scale > 0).
    top_tflm, top_lite = y_tflm.argmax(axis=1), y_lite.argmax(axis=1)
    return {
        "n": n,
        "tflm_accuracy": float(np.mean(top_tflm == labels)),
        "litert_accuracy": float(np.mean(top_lite == labels)),
        "top1_agreement": float(np.mean(top_tflm == top_lite)),
        "max_lsb_diff": int(diff.max()),
        "mean_lsb_diff": float(diff.mean()),
        "arena_bytes": int(tflm.arena_bytes),
        "arena_size": int(tflm.arena_size),
        "tflm_invoke_ms": float(tflm.invoke_time_ms),
        "litert_invoke_ms": float(litert.invoke_time_ms),
        "tflm_top1": top_tflm,
    }
