"""int8 .tflite for models with TernaryPointwise layers: their CONV_2D weights become exactly -1/0/+1.

Post-training quantization scales every output channel so that its largest |weight| maps to 127, so a
ternary kernel (times the BatchNorm scale the converter folds into it) lands on {-127, 0, +127}. The
values are equivalent, but firmware exploiting the structure wants literal -1/0/+1. This pass divides
each such channel's int8 weights by 127 (exact) and multiplies its weight scale by 127, so
weight * scale is unchanged; the int32 bias lives at scale input_scale * weight_scale, so it is
divided (and rounded) and its scale multiplied the same way. That rounding is the only change in
computation and the price of literal +-1 weights: the bias now resolves one input LSB instead of
1/127 of one. The error (at most half an input LSB per channel) is the same at every time step, so
unlike input rounding it does not average out in the pooling; measured on untrained MatchboxNets
with calibrated BN, the mean logit error against float grew from 1.6 to 2.3 output LSB.

Ternary convs are found by content, not by tensor names (which the converter rewrites): a 1x1
CONV_2D whose int8 sign pattern equals a ternary layer's matrix, up to one sign per output channel
(BatchNorm's gamma may be negative), and whose nonzeros share one magnitude per channel.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ExportError
from kws_zoo.device.flatbuffer import op_name, read_tflite
from kws_zoo.export.tflite import to_tflite_int8
from kws_zoo.layers.ternary_pointwise import export_form, ternary_layers


def _is_conv2d(model, op) -> bool:
    return op_name(model, op.OpcodeIndex()) == "CONV_2D"


def match_ternary(q: np.ndarray, matrix: np.ndarray) -> np.ndarray | None:
    """Per-channel magnitudes if int8 filter q [out, 1, 1, in] is `matrix` [in, out] times a nonzero
    per-channel factor (0 for channels whose column is all zero), else None."""
    if q.shape != (matrix.shape[1], 1, 1, matrix.shape[0]):
        return None
    w = q.reshape(q.shape[0], -1).astype(np.int32)  # [out, in]
    t = matrix.T.astype(np.int32)
    if not np.array_equal(w != 0, t != 0):
        return None
    mags = np.zeros(len(w), np.int32)
    for c, (wc, tc) in enumerate(zip(w, t)):
        nz = tc != 0
        if not nz.any():
            continue
        ratio = wc[nz] * tc[nz]  # +-magnitude, one sign for the whole channel
        if not np.all(ratio == ratio[0]):
            return None
        mags[c] = abs(int(ratio[0]))
    return mags


def exact_ternary_int8(model_bytes: bytes, matrices: Iterable[np.ndarray]) -> bytes:
    """Returns a copy of an int8 .tflite in which each ternary conv (one per matrix) has int8
    weights in {-1, 0, 1}. Raises ExportError if a matrix has no matching CONV_2D."""
    buf = bytearray(model_bytes)
    model = read_tflite(buf)
    sub = model.Subgraphs(0)
    pending = [np.asarray(m) for m in matrices]
    edited: list[np.ndarray] = []  # views already rewritten: shared buffers must not be divided twice

    def fresh(view: np.ndarray) -> np.ndarray:
        if any(np.shares_memory(view, e) for e in edited):
            raise ExportError("a ternary conv shares a buffer or scale vector with another tensor")
        edited.append(view)
        return view

    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        if not pending or not _is_conv2d(model, op):
            continue
        filt = sub.Tensors(op.Inputs(1))
        data = model.Buffers(filt.Buffer()).DataAsNumpy()
        if isinstance(data, int):
            continue  # not a constant inside the flatbuffer
        q = data.view(np.int8).reshape(tuple(filt.ShapeAsNumpy()))
        for k, matrix in enumerate(pending):
            mags = match_ternary(q, matrix)
            if mags is not None:
                break
        else:
            continue
        del pending[k]
        live = mags > 0
        if np.any(mags[live] != 127):
            raise ExportError(f"ternary conv {filt.Name()!r}: expected magnitude 127, got {set(mags[live])}")
        quant = filt.Quantization()
        if quant.QuantizedDimension() != 0 or quant.ScaleLength() != len(mags):
            raise ExportError(f"ternary conv {filt.Name()!r}: expected per-output-channel weight scales")
        w_scale = fresh(quant.ScaleAsNumpy())
        fresh(data)
        q[live] //= 127  # exact: every nonzero is +-127
        w_scale[live] *= 127
        if op.InputsLength() > 2 and op.Inputs(2) >= 0:
            bias = sub.Tensors(op.Inputs(2))
            b = model.Buffers(bias.Buffer()).DataAsNumpy().view(np.int32)
            if b.any():  # an all-zero bias (untrained BN) needs no rescaling and may be shared
                fresh(b)[live] = np.round(b[live].astype(np.float64) / 127).astype(np.int32)
            fresh(bias.Quantization().ScaleAsNumpy())[live] *= 127
    if pending:
        raise ExportError(f"{len(pending)} ternary matrices have no matching CONV_2D in the .tflite")
    return bytes(buf)


def to_tflite_int8_ternary(model: keras.Model, representative, num_samples: int = 200) -> bytes:
    """Full-integer .tflite of `model` (export form) whose ternary convs have weights in {-1, 0, 1}."""
    matrices = [layer.matrix for layer in ternary_layers(model)]
    model_bytes = to_tflite_int8(export_form(model), representative, num_samples)
    return exact_ternary_int8(model_bytes, matrices)

