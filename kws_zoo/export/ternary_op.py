"""int8 .tflite whose ternary 1x1 convolutions are the TFLM custom operator KWS_TERNARY_1X1 (tflm/kernels): the
seed paper's promise that the matrices "may be generated on the chip during computation" made real.

Starts from the int8-constant form (kws_zoo.export.ternary: CONV_2D with literal -1/0/+1 weights) and, for each
ternary conv, replaces the operator by the custom one and its in x out int8 filter by out int8 channel signs (the
filter tensor keeps its per-channel scales, which the kernel needs for requantization). The matrix itself is not
stored anywhere: the options carry the generator's 64-bit key (kws_zoo.layers.ternary_pointwise.matrix_key), the
shape and the number of zeros, and the kernel regenerates the matrix at every invoke with the same generator.
The pip TFLM interpreter does not know the operator; the host build of tflm/ runs it.
"""
from __future__ import annotations

import dataclasses
import struct

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ExportError
from kws_zoo.device.compression import pack_model
from kws_zoo.export.ternary import match_ternary
from kws_zoo.layers.ternary_pointwise import matrix_key, ternary_layers

CUSTOM_CODE = "KWS_TERNARY_1X1"
OPTIONS = struct.Struct("<4sQIIIi")  # magic, key, in, out, zeros, fused activation: 28 bytes


@dataclasses.dataclass(frozen=True, eq=False)
class TernarySpec:
    key: int
    matrix: np.ndarray  # [in, out] of -1/0/+1, only to find the conv in the .tflite

    @property
    def zeros(self) -> int:
        return int(np.count_nonzero(self.matrix == 0))


def layer_specs(model: keras.Model) -> list[TernarySpec]:
    return [TernarySpec(matrix_key(layer.seed, *layer.matrix.shape, layer.sparsity), layer.matrix)
            for layer in ternary_layers(model)]


def to_ternary_op(exact_bytes: bytes, specs: list[TernarySpec]) -> bytes:
    """The int8-constant .tflite (literal -1/0/+1 ternary convs) with those convs as KWS_TERNARY_1X1."""
    model = fb.ModelT.InitFromPackedBuf(exact_bytes, 0)
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
    code.customCode, code.version = CUSTOM_CODE, 1
    model.operatorCodes.append(code)
    custom_index = len(model.operatorCodes) - 1
    sub = model.subgraphs[0]
    buffer_users = np.bincount([t.buffer for s in model.subgraphs for t in s.tensors], minlength=len(model.buffers))
    pending = list(specs)
    for op in sub.operators:
        if model.operatorCodes[op.opcodeIndex].builtinCode != fb.BuiltinOperator.CONV_2D or not pending:
            continue
        filt = sub.tensors[op.inputs[1]]
        data = model.buffers[filt.buffer].data
        if data is None or buffer_users[filt.buffer] != 1:
            continue
        q = np.asarray(data, np.uint8).view(np.int8).reshape(tuple(filt.shape))
        found = next(((k, mags) for k, s in enumerate(pending) if (mags := match_ternary(q, s.matrix)) is not None),
                     None)
        if found is None:
            continue
        spec = pending.pop(found[0])
        if np.any(found[1] > 1):
            raise ExportError("a ternary conv still has weights of magnitude > 1: convert with "
                              "kws_zoo.export.ternary.to_tflite_int8_ternary first")
        options = op.builtinOptions
        if (options.strideH, options.strideW) != (1, 1):
            strides = (options.strideH, options.strideW)
            raise ExportError(f"ternary conv with strides {strides}: the kernel computes stride 1 only")
        model.buffers[filt.buffer].data = _channel_signs(q, spec.matrix).view(np.uint8)
        filt.shape = [spec.matrix.shape[1]]
        filt.quantization.quantizedDimension = 0
        op.opcodeIndex = custom_index
        op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.NONE, None
        op.customOptions = list(OPTIONS.pack(b"KTR1", spec.key, *spec.matrix.shape, spec.zeros,
                                             int(options.fusedActivationFunction)))
        op.customOptionsFormat = fb.CustomOptionsFormat.FLEXBUFFERS  # the schema's only value; read as raw bytes
    if pending:
        raise ExportError(f"{len(pending)} ternary matrices have no matching int8 CONV_2D in the .tflite")
    return pack_model(model, len(exact_bytes))


def _channel_signs(q: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """+1/-1 per output channel: the sign BatchNorm folded into the conv's column (0 for an all-zero column)."""
    w = q.reshape(q.shape[0], -1).astype(np.int32)  # [out, in]
    t = matrix.T.astype(np.int32)
    return np.sign((w * t).sum(axis=1)).astype(np.int8)
