"""Keras -> .tflite: float for reference, full-integer int8 for TFLite Micro.

The int8 export allows TFLITE_BUILTINS_INT8 only, and then checks the result: the converter
fails on ops with no TFLite kernel at all, but an op with only a float kernel (SIN, FLOOR,
CUMSUM, ...) is silently wrapped in DEQUANTIZE/QUANTIZE, a float island that an int8-only target
cannot run well or at all. Such a model is rejected here. Input and output are int8 too: firmware
feeds quantized features and reads int8 logits.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ExportError
from kws_zoo.device.flatbuffer import float_ops
from kws_zoo.layers.strided_depthwise import tflite_graph


def converter_of(model: keras.Model, trace: Callable[[], Any]) -> tf.lite.TFLiteConverter:
    """TFLite converter of the concrete function `trace()` returns, a graph of `model` (whose variables it reads).
    It is traced inside tflite_graph(): one strided DEPTHWISE_CONV_2D per layer (kws_zoo.layers.strided_depthwise)."""
    with tflite_graph():
        concrete_fn = trace()
    # The converter first saves its trackable object as a SavedModel. Given the Keras model, saving traces every
    # layer's call once more (BC-ResNet-1: 21 of a 23 s export); a module holding only the variables gives the
    # same .tflite, byte for byte, in 2 s.
    holder = tf.Module()
    holder.model_variables = list(model.variables)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], holder)


def _converter(model: keras.Model) -> tf.lite.TFLiteConverter:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError(f"{model.name}: export expects one input and one output, got "
                          f"{len(model.inputs)} and {len(model.outputs)}")
    # Convert with batch 1, as the device runs it: a dynamic batch dimension makes every Reshape compute
    # its shape at run time (SHAPE, STRIDED_SLICE, PACK ops: more flash, arena and invoke time).
    spec = tf.TensorSpec((1, *model.input_shape[1:]), model.inputs[0].dtype)
    return converter_of(model, lambda: tf.function(lambda x: model(x, training=False)).get_concrete_function(spec))


def to_tflite_float(model: keras.Model) -> bytes:
    """Float32 .tflite (builtin ops only)."""
    return bytes(_converter(model).convert())


def representative_examples(model: keras.Model, representative: Iterable | np.ndarray,
                            num_samples: int) -> list[np.ndarray]:
    """Up to num_samples float32 arrays shaped like one model input ([1, ...]).

    Accepts an [N, ...] array or any iterable of examples or batches (arrays, tensors, or
    (features, label) tuples as tf.data yields them); examples may omit the channel axis.
    """
    shape = (1,) + tuple(model.input_shape[1:])
    if any(d is None for d in shape):
        raise ExportError(f"{model.name}: int8 export needs a static input shape, got {shape}")
    size = math.prod(shape)
    out: list[np.ndarray] = []
    items = representative if not isinstance(representative, np.ndarray) else iter(representative)
    for item in items:
        if isinstance(item, (tuple, list)):
            item = item[0]
        arr = np.asarray(item, dtype=np.float32)
        if arr.size == 0 or arr.size % size:
            raise ExportError(f"representative item of shape {arr.shape} does not fit input {shape}")
        for ex in arr.reshape((-1,) + shape[1:]):
            out.append(ex.reshape(shape))
            if len(out) >= num_samples:
                return out
    if not out:
        raise ExportError("representative data is empty")
    return out


def to_tflite_int8(model: keras.Model, representative: Iterable | np.ndarray,
                   num_samples: int = 200) -> bytes:
    """Full-integer .tflite with int8 input and output, calibrated on `representative` features."""
    examples = representative_examples(model, representative, num_samples)
    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([ex] for ex in examples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # Wants quantized_input_stats; irrelevant here, calibration supplies the input range.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        model_bytes = bytes(conv.convert())
    floats = float_ops(model_bytes)
    if floats:
        culprits = [op for op in floats if op not in ("QUANTIZE", "DEQUANTIZE")] or floats
        raise ExportError(f"{model.name}: int8 export left float ops {culprits} (no int8 kernel; "
                          "wrapped in DEQUANTIZE/QUANTIZE); replace those layers")
    return model_bytes


def to_tflite_int8_qat(qat_model: keras.Model, representative: Iterable | np.ndarray,
                       num_samples: int = 200) -> bytes:
    """Full-integer .tflite (int8 input and output) of a QAT model (kws_zoo.compress.qat.quantize_model, fine-tuned):
    every scale comes from the model's fake quantizers (their ranges and bits: a b-bit weight is an int8 in
    -(2**(b-1) - 1)..2**(b-1) - 1), so the device computes what the QAT model computes in inference, up to integer
    rounding. `representative` (as for to_tflite_int8) only calibrates tensors the QAT graph leaves without a
    quantizer, such as the product inside a standalone BatchNormalization (MUL + ADD); the converter insists on it
    for every full-integer conversion. The same float-island check as to_tflite_int8.

    Raises ExportError for a model without quantize wrappers (that would be post-training quantization: use
    to_tflite_int8) and for one whose activation ranges no training batch has set yet: kws_zoo's quantizers record
    that in a variable '<name>_seen' (0 until the first training batch), and an untrained range is a placeholder."""
    if not any(hasattr(layer, "quantize_config") for layer in qat_model.layers):
        raise ExportError(f"{qat_model.name}: not a QAT model (no TFMOT quantize wrappers); use to_tflite_int8")
    unset = [v.name for v in qat_model.non_trainable_weights if v.name.endswith("_seen:0") and float(v.numpy()) == 0]
    if unset:
        raise ExportError(f"{qat_model.name}: {len(unset)} quantizer range(s) never set by training (e.g. "
                          f"{unset[0]}); fine-tune the QAT model (one step sets them) before converting")
    return to_tflite_int8(qat_model, representative, num_samples)
