"""Training graph -> single-branch inference graph of standard layers, checked numerically.

`reparameterize(model)` rewrites the functional config (public get_config/from_config, no private
cloning; read by kws_zoo.models.graph) layer by layer:
  - a layer with `plain_layer()` (RepConv2D -> Conv2D/DepthwiseConv2D with bias; SubSpectralNorm ->
    BatchNormalization over (freq, channel); other layers following kws_zoo.layers.plain) becomes that
    standard layer;
  - a BatchNormalization whose only input is a Conv2D/DepthwiseConv2D it alone consumes is folded into the
    conv's kernel and bias. The TFLite converter would fold it too, but folding here makes the Keras
    inference graph of a multi-branch model and of its plain twin the same layer for layer, and hands
    QAT a graph without BN;
  - every other layer is kept with its weights.
Layers keep their names, so weights copy across by name and summaries stay readable.
"""
from __future__ import annotations

import copy
from collections import Counter

import numpy as np

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ExportError
from kws_zoo.layers.bn_affine import bn_affine
from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D
from kws_zoo.models.graph import inbound_refs, is_functional, rename_refs, walk

L = keras.layers
_CONVS = (L.Conv2D, L.DepthwiseConv2D, StridedDepthwiseConv2D)


def max_abs_diff(a: keras.Model, b: keras.Model, x: np.ndarray) -> float:
    """max |a(x) - b(x)| with both models in inference mode."""
    ya = np.asarray(a(x, training=False), np.float64)
    yb = np.asarray(b(x, training=False), np.float64)
    return float(np.max(np.abs(ya - yb)))


def fold_batchnorm(kernel: np.ndarray, bias: np.ndarray | None, bn: L.BatchNormalization,
                   depthwise: bool) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of conv-then-BN as one conv. kernel is Keras' [kh, kw, in, out] or depthwise
    [kh, kw, in, multiplier] (output channel = in * multiplier + m)."""
    scale, shift = bn_affine(bn)
    kernel = np.asarray(kernel, np.float64)
    if depthwise:
        scale_k = scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        scale_k = scale
    bias = np.zeros_like(scale) if bias is None else np.asarray(bias, np.float64)
    return (kernel * scale_k).astype(np.float32), (bias * scale + shift).astype(np.float32)


def _entry(layer: L.Layer, inbound_nodes: list) -> dict:
    entry = keras.layers.serialize(layer)
    entry["name"] = layer.name
    entry["inbound_nodes"] = inbound_nodes
    return entry


def _is_foldable_bn(layer: L.Layer, inbound: list) -> bool:
    refs = inbound_refs(inbound)
    return (type(layer) is L.BatchNormalization and len(inbound) == 1 and len(refs) == 1
            and refs[0][3:] in ([], [{}]) and len(layer.input_shape) == 4 and list(layer.axis) == [3])


def reparameterize(model: keras.Model, *, check: bool = True, fold_bn: bool = True) -> keras.Model:
    """The inference form of a functional model: standard layers only, BN folded, same outputs.

    fold_bn=False keeps every standalone BatchNormalization layer (multi-branch layers still merge, their own BN
    folded): the form the compression stage prunes, so fine-tuning keeps its normalization. Folding it later
    keeps every pruned zero (BN scales whole output channels).

    check: run both on one random batch and raise if outputs differ by more than float32 rounding can
        explain (relative 1e-3 of the output range) - a cheap guard, not a substitute for tests.
    """
    if not is_functional(model):
        raise ExportError(f"{getattr(model, 'name', model)}: reparameterize needs a functional keras.Model (not "
                          "Sequential or subclassed); wrap a Sequential as keras.Model(seq.inputs, seq.outputs)")
    config = model.get_config()
    calls = list(walk(model, config))
    uses = Counter(ref[0] for call in calls for ref in call.refs)
    uses.update(ref[0] for ref in config["output_layers"])
    entries: list[dict] = []
    weights: dict[str, list[np.ndarray]] = {}
    convs: dict[str, tuple[dict, bool]] = {}  # name -> (entry, depthwise) of a conv whose BN may still fold into it
    rename: dict[str, str] = {}
    for layer, old, _, _ in calls:
        name, inbound = layer.name, rename_refs(old["inbound_nodes"], rename)
        if isinstance(layer, keras.Model):
            raise ExportError(f"{name}: nested models are not supported; flatten the model first")
        if len(inbound) > 1 and (hasattr(layer, "plain_layer") or isinstance(layer, L.BatchNormalization)):
            raise ExportError(f"{name}: shared layers (called {len(inbound)} times) are not supported")
        refs = inbound_refs(inbound)
        producer = refs[0][0] if refs else None
        if hasattr(layer, "plain_layer"):
            new, values = layer.plain_layer()
            entry = _entry(new, inbound)
        elif fold_bn and _is_foldable_bn(layer, inbound) and producer in convs and uses[producer] == 1:
            conv, is_dw = convs.pop(producer)
            kernel, *bias = weights[producer]
            weights[producer] = list(fold_batchnorm(kernel, bias[0] if bias else None, layer, is_dw))
            conv["config"]["use_bias"] = True
            rename[name] = producer
            continue
        else:
            entry = copy.deepcopy(old)
            entry["inbound_nodes"] = inbound
            new, values = layer, layer.get_weights()
        entries.append(entry)
        weights[name] = values
        if type(new) in _CONVS and new.get_config()["activation"] == "linear" and len(inbound) == 1:
            convs[name] = entry, isinstance(new, L.DepthwiseConv2D)
    config = {**config, "layers": entries,
              "output_layers": rename_refs(config["output_layers"], rename)}
    plain = keras.Model.from_config(config)
    for layer in plain.layers:
        layer.set_weights(weights[layer.name])
    if check:
        _check(model, plain)
    return plain


def _check(model: keras.Model, plain: keras.Model) -> None:
    shape = tuple(model.input_shape[1:])
    if any(d is None for d in shape) or isinstance(model.input_shape, list):
        return  # no static single input to sample
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    y = np.asarray(model(x, training=False))
    diff = max_abs_diff(model, plain, x)
    if diff > 1e-3 * (1.0 + float(np.abs(y).max())):
        raise AssertionError(f"{model.name}: re-parameterized model differs by {diff:.3g} on random input")
