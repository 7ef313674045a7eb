"""Model cost from the Keras graph: MACs of one example and of one streaming step.

MACs are computed from weight shapes times output positions, so grouped convolutions, depth
multipliers and Dense layers on [B, T, F] inputs come out right without per-layer formulas.
(Costs read from a .tflite file live in kws_zoo.device.flatbuffer.)
"""
from __future__ import annotations

import math
from typing import Any

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ModelError
from kws_zoo.layers.stream import Stream


def _known(shape: Any, layer: keras.layers.Layer) -> tuple[int, ...]:
    dims = tuple(shape)[1:]  # drop batch
    if any(d is None for d in dims):
        raise ModelError(f"{layer.name}: MACs need static shapes, got {tuple(shape)}")
    return dims


def _node_shapes(layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
    """(input_shape, output_shape) for every call of the layer in a functional graph."""
    nodes = layer.inbound_nodes
    if not nodes:
        raise ModelError(f"{layer.name}: layer was never called in a functional graph; "
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
            raise ModelError(f"{layer.name}: wrapped sub-models are not supported")
        if not isinstance(_unwrap(layer), _COUNTED):
            continue
        for in_shape, out_shape in _node_shapes(layer):
            total += _layer_macs(layer, in_shape, out_shape)
    return int(total)


def count_params_macs(model: keras.Model) -> tuple[int, int]:
    """(parameter count incl. non-trainable, MACs per example)."""
    return int(model.count_params()), count_macs(model)


def step_macs(stream_model: keras.Model) -> int:
    """MACs of one streaming step: each Stream's layer over its ring buffer, other layers as usual."""
    total = 0
    for layer in stream_model.layers:
        if isinstance(layer, Stream):
            frames = tuple(layer.input_shape[0] if isinstance(layer.input_shape, list) else layer.input_shape)
            buffer = (1, layer.state_frames + frames[1], *frames[2:])
            total += _layer_macs(layer.layer, buffer, layer.layer.compute_output_shape(buffer))
        elif isinstance(layer, _COUNTED):
            total += _layer_macs(layer, layer.input_shape, layer.output_shape)
    return int(total)
