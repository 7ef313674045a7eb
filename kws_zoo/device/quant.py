"""int8 <-> float the way TFLite's QUANTIZE and DEQUANTIZE ops do it (real = scale * (q - zero_point))."""
from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8: round half away from zero, saturate."""
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + zero_point  # np.round is half-to-even
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 -> float32."""
    return ((np.asarray(q, dtype=np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


def detail_quant(details: dict) -> tuple[float, int] | None:
    """(scale, zero_point) of an interpreter's tensor details, or None for a float tensor."""
    q = details["quantization_parameters"]
    if len(q["scales"]) == 0:
        return None
    return float(q["scales"][0]), int(q["zero_points"][0])
