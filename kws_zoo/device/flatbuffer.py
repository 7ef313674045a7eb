"""Reading a .tflite flatbuffer without TensorFlow: ops, strides, float islands, signatures, quantization, sizes.

The schema module is the one the tflite_micro wheel ships, so the device side never loads TensorFlow. The file
is read with the schema's accessors, not with an interpreter: an interpreter would apply delegates (LiteRT
rewrites most ops into one DELEGATE node) and allocate.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from kws_zoo.core.errors import DeviceError

_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
_TENSOR_BYTES = {fb.TensorType.INT8: 1, fb.TensorType.INT16: 2, fb.TensorType.INT32: 4, fb.TensorType.FLOAT32: 4}


def read_tflite(model_bytes: bytes) -> Any:
    """The flatbuffer root (`schema_py_generated.Model`, read-only accessors, no copy)."""
    buf = model_bytes if isinstance(model_bytes, (bytes, bytearray)) else bytes(model_bytes)
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise DeviceError("not a TFLite flatbuffer (missing 'TFL3' identifier)")
    return fb.Model.GetRootAs(buf, 0)


def op_name(model: Any, opcode_index: int) -> str:
    """The builtin name of an operator code ('CONV_2D'), or 'CUSTOM:<custom_code>'."""
    code = model.OperatorCodes(opcode_index)
    # Codes > 127 only live in BuiltinCode; old files only fill the deprecated int8 field.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == fb.BuiltinOperator.CUSTOM:
        return "CUSTOM:" + (code.CustomCode() or b"").decode()
    return _OP_NAMES.get(builtin, f"UNKNOWN_{builtin}")


def _operators(model: Any, subgraphs=None):
    """(subgraph index, subgraph, operator) for every operator, in execution order."""
    for s in range(model.SubgraphsLength()) if subgraphs is None else subgraphs:
        sub = model.Subgraphs(s)
        for i in range(sub.OperatorsLength()):
            yield s, sub, sub.Operators(i)


def tflite_ops(model_bytes: bytes) -> list[str]:
    """Sorted unique op names used by any subgraph, e.g. ['CONV_2D', 'FULLY_CONNECTED'].
    Custom ops appear as 'CUSTOM:<custom_code>'."""
    model = read_tflite(model_bytes)
    return sorted({op_name(model, op.OpcodeIndex()) for _, _, op in _operators(model)})


def depthwise_op_strides(model_bytes: bytes) -> list[tuple[int, int]]:
    """(stride_h, stride_w) of every DEPTHWISE_CONV_2D of the main subgraph, in execution order."""
    model = read_tflite(model_bytes)
    strides = []
    for _, _, op in _operators(model, [0]):
        if op_name(model, op.OpcodeIndex()) == "DEPTHWISE_CONV_2D":
            table, options = op.BuiltinOptions(), fb.DepthwiseConv2DOptions()
            options.Init(table.Bytes, table.Pos)
            strides.append((options.StrideH(), options.StrideW()))
    return strides


def float_ops(model_bytes: bytes) -> list[str]:
    """Sorted unique names of ops that read or write a float32 tensor. Empty for a genuinely
    full-integer model; the converter leaves such float islands (DEQUANTIZE -> SIN -> QUANTIZE)
    even when only TFLITE_BUILTINS_INT8 is allowed."""
    model = read_tflite(model_bytes)
    names = set()
    for _, sub, op in _operators(model):
        tensors = ([op.Inputs(j) for j in range(op.InputsLength())]
                   + [op.Outputs(j) for j in range(op.OutputsLength())])
        # -1 marks an omitted optional input (e.g. a FULLY_CONNECTED without bias).
        if any(t >= 0 and sub.Tensors(t).Type() == fb.TensorType.FLOAT32 for t in tensors):
            names.add(op_name(model, op.OpcodeIndex()))
    return sorted(names)


def signature_io(model_bytes: bytes) -> tuple[dict[str, int], dict[str, int]]:
    """({input name: input position}, {output name: output position}) from the .tflite signature."""
    model = read_tflite(model_bytes)
    sub = model.Subgraphs(0)
    if model.SignatureDefsLength() != 1:
        raise DeviceError(f"expected one signature, found {model.SignatureDefsLength()}")
    sig = model.SignatureDefs(0)
    in_pos = {sub.Inputs(i): i for i in range(sub.InputsLength())}
    out_pos = {sub.Outputs(i): i for i in range(sub.OutputsLength())}
    inputs = {sig.Inputs(i).Name().decode(): in_pos[sig.Inputs(i).TensorIndex()] for i in range(sig.InputsLength())}
    outputs = {sig.Outputs(i).Name().decode(): out_pos[sig.Outputs(i).TensorIndex()]
               for i in range(sig.OutputsLength())}
    return inputs, outputs


def _tensor_qparams(sub, tensor_index: int, what: str) -> tuple[float, int]:
    q = sub.Tensors(tensor_index).Quantization()
    if q is None or q.ScaleLength() == 0:
        raise DeviceError(f"model {what} is not quantized (float model?)")
    if q.ScaleLength() != 1:
        raise DeviceError(f"model {what} is per-channel quantized; expected one scale")
    return float(q.Scale(0)), int(q.ZeroPoint(0))


def quant_params(model_bytes: bytes) -> tuple[float, int, float, int]:
    """(input_scale, input_zero_point, output_scale, output_zero_point) of the first input/output;
    real = scale * (q - zero_point). Raises DeviceError for float input/output."""
    sub = read_tflite(model_bytes).Subgraphs(0)
    in_scale, in_zp = _tensor_qparams(sub, sub.Inputs(0), "input")
    out_scale, out_zp = _tensor_qparams(sub, sub.Outputs(0), "output")
    return in_scale, in_zp, out_scale, out_zp


def weight_bytes(model_bytes: bytes) -> int:
    """Bytes of the constant tensors (weights, biases, shapes) the main subgraph's ops read per invoke."""
    model = read_tflite(model_bytes)
    sub = model.Subgraphs(0)
    used = {t for _, _, op in _operators(model, [0]) for t in (op.Inputs(j) for j in range(op.InputsLength()))
            if t >= 0}
    total = 0
    for t in used:
        buffer = model.Buffers(sub.Tensors(t).Buffer())
        total += buffer.DataLength() if buffer is not None else 0
    return int(total)


def variable_bytes(model_bytes: bytes) -> int:
    """Bytes of the main subgraph's resource variables' values: the tensors ASSIGN_VARIABLE writes."""
    model = read_tflite(model_bytes)
    total = 0
    for _, sub, op in _operators(model, [0]):
        if op_name(model, op.OpcodeIndex()) == "ASSIGN_VARIABLE":
            t = sub.Tensors(op.Inputs(1))
            total += int(np.prod(t.ShapeAsNumpy())) * _TENSOR_BYTES[t.Type()]
    return total


# Ops whose input 1 is a weight tensor ("filter") that magnitude pruning zeroes.
_FILTER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_WEIGHT_DTYPES = {fb.TensorType.INT8: np.int8, fb.TensorType.FLOAT32: np.float32}


def weight_sparsity(model_bytes: bytes) -> dict[str, float]:
    """{filter tensor name: fraction of its stored values that are exactly zero} for every CONV_2D,
    DEPTHWISE_CONV_2D and FULLY_CONNECTED of the main subgraph, in execution order: the sparsity the device
    really holds. int8 filters are symmetric (zero point 0), so a pruned float zero is an int8 zero and the
    fraction equals the Keras kernel's; a float model's filters are counted in float. A tensor name used by two
    different tensors gets its tensor index appended ("name#12"). Raises DeviceError for a filter that is not a
    constant int8/float32 tensor (e.g. one a DECODE operator decompresses at run time: measure the model before
    LUT compression) or an int8 filter with a non-zero zero point."""
    model = read_tflite(model_bytes)
    out: dict[str, float] = {}
    owner: dict[str, int] = {}
    for _, sub, op in _operators(model, [0]):
        name = op_name(model, op.OpcodeIndex())
        if name not in _FILTER_OPS:
            continue
        index = op.Inputs(1)
        tensor = sub.Tensors(index)
        key = (tensor.Name() or b"").decode() or f"tensor{index}"
        if owner.setdefault(key, index) != index:
            key = f"{key}#{index}"
        buffer = model.Buffers(tensor.Buffer())
        what = f"{name} filter {key!r}"
        if buffer is None or buffer.DataLength() == 0:
            raise DeviceError(f"{what} is not a constant tensor (computed at run time, e.g. by DECODE)")
        if tensor.Type() not in _WEIGHT_DTYPES:
            raise DeviceError(f"{what} has tensor type {tensor.Type()}; only int8 and float32 are read")
        values = buffer.DataAsNumpy().view(_WEIGHT_DTYPES[tensor.Type()])
        q = tensor.Quantization()
        if tensor.Type() == fb.TensorType.INT8 and q is not None and q.ZeroPointLength() \
                and np.any(q.ZeroPointAsNumpy() != 0):
            raise DeviceError(f"{what} has a non-zero zero point: an int8 zero is not a zero weight")
        out[key] = float(np.count_nonzero(values == 0)) / values.size
    return out
