"""Model cost from the Keras graph (MACs) and from the .tflite flatbuffer (ops, tensor quantization).

MACs are computed from weight shapes times output positions, so grouped convolutions, depth
multipliers and Dense layers on [B, T, F] inputs come out right without per-layer formulas.
The flatbuffer is read with the schema module TensorFlow ships, not with an interpreter: an
interpreter would apply delegates (LiteRT rewrites most ops into one DELEGATE node) and allocate.
"""
from __future__ import annotations

import math
from typing import Any

from kws_zoo.compat import keras  # first: sets TF_USE_LEGACY_KERAS before TensorFlow loads
from tensorflow.lite.python import schema_py_generated as _fb

_OP_NAMES = {v: k for k, v in vars(_fb.BuiltinOperator).items() if not k.startswith("_")}


# ----------------------------------------------------------------------------- Keras side

def _known(shape: Any, layer: keras.layers.Layer) -> tuple[int, ...]:
    dims = tuple(shape)[1:]  # drop batch
    if any(d is None for d in dims):
        raise ValueError(f"{layer.name}: MACs need static shapes, got {tuple(shape)}")
    return dims


def _node_shapes(layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
    """(input_shape, output_shape) for every call of the layer in a functional graph."""
    nodes = layer.inbound_nodes
    if not nodes:
        raise ValueError(f"{layer.name}: layer was never called in a functional graph; "
                         "count_macs needs functional/Sequential models with known shapes")
    return [(layer.get_input_shape_at(i), layer.get_output_shape_at(i)) for i in range(len(nodes))]


def _unwrap(layer: keras.layers.Layer) -> keras.layers.Layer:
    # Pruning and QAT wrap layers (keras Wrapper with `.layer`); the wrapped layer owns the
    # kernel, while only the wrapper is a node of the graph and knows the shapes.
    while isinstance(layer, keras.layers.Wrapper) and not isinstance(
            layer, keras.layers.TimeDistributed):
        layer = layer.layer
    return layer


def _layer_macs(layer: keras.layers.Layer, in_shape: Any, out_shape: Any) -> int:
    L = keras.layers
    layer = _unwrap(layer)
    if isinstance(layer, L.TimeDistributed):
        inner_in = (None,) + tuple(in_shape)[2:]
        inner_out = (None,) + tuple(out_shape)[2:]
        return _known(in_shape, layer)[0] * _layer_macs(layer.layer, inner_in, inner_out)
    out = _known(out_shape, layer)
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        positions = math.prod(out[:-1])
        return positions * (math.prod(layer.depthwise_kernel.shape)
                            + math.prod(layer.pointwise_kernel.shape))
    if isinstance(layer, (L.DepthwiseConv2D, L.DepthwiseConv1D)):
        return math.prod(out[:-1]) * math.prod(layer.depthwise_kernel.shape)
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose)):
        # Every input position scatters the full kernel.
        return math.prod(_known(in_shape, layer)[:-1]) * math.prod(layer.kernel.shape)
    if isinstance(layer, (L.Conv1D, L.Conv2D)):
        # kernel is [k..., in_c / groups, filters]: exactly the MACs per output position.
        return math.prod(out[:-1]) * math.prod(layer.kernel.shape)
    if isinstance(layer, L.Dense):
        return math.prod(out[:-1]) * math.prod(layer.kernel.shape)
    return 0


_COUNTED = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
            keras.layers.DepthwiseConv1D, keras.layers.SeparableConv1D,
            keras.layers.SeparableConv2D, keras.layers.Dense, keras.layers.TimeDistributed)


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one example through Conv1D/2D (incl. transposed), DepthwiseConv,
    SeparableConv and Dense layers, recursing into nested models and pruning/QAT wrappers.
    Elementwise ops, BN, pooling and activations are not counted (they are not MACs)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            # A nested functional model has its own graph; shapes come from that graph.
            total += count_macs(layer) * len(layer.inbound_nodes or [None])
            continue
        if isinstance(_unwrap(layer), keras.Model):
            raise ValueError(f"{layer.name}: wrapped sub-models are not supported")
        if not isinstance(_unwrap(layer), _COUNTED):
            continue
        for in_shape, out_shape in _node_shapes(layer):
            total += _layer_macs(layer, in_shape, out_shape)
    return int(total)


def count_params_macs(model: keras.Model) -> tuple[int, int]:
    """(parameter count incl. non-trainable, MACs per example)."""
    return int(model.count_params()), count_macs(model)


# ----------------------------------------------------------------------------- flatbuffer side

def read_tflite(model_bytes: bytes) -> Any:
    """The flatbuffer root (`schema_py_generated.Model`, read-only accessors, no copy)."""
    buf = model_bytes if isinstance(model_bytes, (bytes, bytearray)) else bytes(model_bytes)
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (missing 'TFL3' identifier)")
    return _fb.Model.GetRootAs(buf, 0)


def _op_name(model: Any, opcode_index: int) -> str:
    code = model.OperatorCodes(opcode_index)
    # Codes > 127 only live in BuiltinCode; old files only fill the deprecated int8 field.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == _fb.BuiltinOperator.CUSTOM:
        return "CUSTOM:" + (code.CustomCode() or b"").decode()
    return _OP_NAMES.get(builtin, f"UNKNOWN_{builtin}")


def tflite_ops(model_bytes: bytes) -> list[str]:
    """Sorted unique op names used by any subgraph, e.g. ['CONV_2D', 'FULLY_CONNECTED'].
    Custom ops appear as 'CUSTOM:<custom_code>'."""
    model = read_tflite(model_bytes)
    names = set()
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        for i in range(sub.OperatorsLength()):
            names.add(_op_name(model, sub.Operators(i).OpcodeIndex()))
    return sorted(names)


def depthwise_op_strides(model_bytes: bytes) -> list[tuple[int, int]]:
    """(stride_h, stride_w) of every DEPTHWISE_CONV_2D of the main subgraph, in execution order."""
    model = read_tflite(model_bytes)
    sub, strides = model.Subgraphs(0), []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        if _op_name(model, op.OpcodeIndex()) == "DEPTHWISE_CONV_2D":
            table, options = op.BuiltinOptions(), _fb.DepthwiseConv2DOptions()
            options.Init(table.Bytes, table.Pos)
            strides.append((options.StrideH(), options.StrideW()))
    return strides


def float_ops(model_bytes: bytes) -> list[str]:
    """Sorted unique names of ops that read or write a float32 tensor. Empty for a genuinely
    full-integer model; the converter leaves such float islands (DEQUANTIZE -> SIN -> QUANTIZE)
    even when only TFLITE_BUILTINS_INT8 is allowed."""
    model = read_tflite(model_bytes)
    names = set()
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            tensors = ([op.Inputs(j) for j in range(op.InputsLength())]
                       + [op.Outputs(j) for j in range(op.OutputsLength())])
            # -1 marks an omitted optional input (e.g. a FULLY_CONNECTED without bias).
            if any(t >= 0 and sub.Tensors(t).Type() == _fb.TensorType.FLOAT32 for t in tensors):
                names.add(_op_name(model, op.OpcodeIndex()))
    return sorted(names)
