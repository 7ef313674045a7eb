"""Depthwise convolution with unequal row and column strides that runs on every CPU.

TensorFlow's portable CPU kernels for DepthwiseConv2dNative (in use wherever oneDNN is off: AMD and ARM
processors, or TF_ENABLE_ONEDNN_OPTS=0) refuse unequal strides, forward and backward, while TFLite's and
TFLM's DEPTHWISE_CONV_2D take them. So in TensorFlow an unequal-stride depthwise conv is computed as the
stride-1 'VALID' conv of the input padded as the strided conv pads it, keeping every s-th output: the same
sums, so the same function (it computes s times the outputs it keeps, which costs only training time; BC-ResNet
and RepCNN have two or three such layers). A graph traced for the TFLite converter, which converts ops and
never runs them, gets the single strided op instead (`tflite_graph()`), so the exported model keeps one
DEPTHWISE_CONV_2D per layer. Grouped Conv2D would run forward but has no CPU gradient and exports as a
grouped CONV_2D.
"""
from __future__ import annotations

import contextlib
import threading

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError, ModelError

_TRACING_FOR_TFLITE = threading.local()


@contextlib.contextmanager
def tflite_graph():
    """Within it, depthwise convs trace as TensorFlow's one strided op: for graphs that are converted, not run."""
    previous = getattr(_TRACING_FOR_TFLITE, "active", False)
    _TRACING_FOR_TFLITE.active = True
    try:
        yield
    finally:
        _TRACING_FOR_TFLITE.active = previous


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(before, after) that TensorFlow's 'SAME' pads an axis of `size` with."""
    reach = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + reach - size, 0)
    return total // 2, total - total // 2


def depthwise_conv2d(x, kernel, strides: tuple[int, int], padding: str, dilations: tuple[int, int] = (1, 1)):
    """tf.nn.depthwise_conv2d on [B, H, W, C] with a [kh, kw, C, m] kernel, for any (row, column) strides."""
    strides, dilations, padding = tuple(int(s) for s in strides), tuple(int(d) for d in dilations), padding.upper()
    if strides[0] == strides[1] or getattr(_TRACING_FOR_TFLITE, "active", False):
        return tf.nn.depthwise_conv2d(x, kernel, (1, *strides, 1), padding, dilations=dilations)
    if padding == "SAME":
        pads = []
        for axis, (k, s, d) in enumerate(zip(kernel.shape[:2], strides, dilations), start=1):
            size = x.shape[axis]
            if size is None and s > 1:  # the stride-1 axis pads (k - 1) * d whatever its size
                raise ModelError(f"depthwise conv with strides {strides}: axis {axis} needs a static size, "
                                 f"got input shape {x.shape}")
            pads.append(same_padding(size or 1, int(k), s, d))
        x = tf.pad(x, [[0, 0], *pads, [0, 0]])
    y = tf.nn.depthwise_conv2d(x, kernel, (1, 1, 1, 1), "VALID", dilations=dilations)
    return y[:, ::strides[0], ::strides[1], :]


@keras.saving.register_keras_serializable(package="kws_zoo")
class StridedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """keras.layers.DepthwiseConv2D (same arguments, weights and config) computed by depthwise_conv2d above,
    so unequal strides such as (1, 2) train and run on CPUs without oneDNN."""

    def call(self, inputs):
        if self.data_format != "channels_last":
            raise ConfigError(f"{self.name}: only channels_last is supported, got {self.data_format}")
        y = depthwise_conv2d(inputs, self.depthwise_kernel, self.strides, self.padding, self.dilation_rate)
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return self.activation(y)

    def get_prunable_weights(self) -> list:
        """TFMOT's PrunableLayer protocol (tfmot.sparsity.keras.PrunableLayer): the weights magnitude pruning may
        mask, here the depthwise kernel. Duck-typed, as TFMOT accepts, so that kws_zoo.layers does not import TFMOT;
        kws_zoo.compress.pruning registers the class as a PrunableLayer and decides whether depthwise kernels
        are pruned at all (TFMOT does not know this class: its registry matches layers by exact class)."""
        return [self.depthwise_kernel]


def depthwise_conv_layer(kernel_size, strides=(1, 1), **kwargs) -> keras.layers.DepthwiseConv2D:
    """keras.layers.DepthwiseConv2D, or StridedDepthwiseConv2D where its strides differ (the only case that
    needs it): equal-stride layers keep the standard class in saved configs and for TFMOT."""
    rows, cols = (strides, strides) if isinstance(strides, int) else strides
    cls = StridedDepthwiseConv2D if rows != cols else keras.layers.DepthwiseConv2D
    return cls(kernel_size, strides=strides, **kwargs)


def with_portable_strides(model: keras.Model) -> keras.Model:
    """`model` with every plain DepthwiseConv2D of unequal strides swapped for StridedDepthwiseConv2D (same
    config and weights): runs saved before this layer existed hold the plain layer, which CPUs without oneDNN
    cannot run. Returns `model` itself when there is nothing to swap."""
    def unequal(layer) -> bool:
        return type(layer) is keras.layers.DepthwiseConv2D and layer.strides[0] != layer.strides[1]

    if not any(unequal(layer) for layer in model.layers):
        return model

    def clone(layer):
        cls = StridedDepthwiseConv2D if unequal(layer) else layer.__class__
        return cls.from_config(layer.get_config())

    portable = keras.models.clone_model(model, clone_function=clone)
    portable.set_weights(model.get_weights())
    return portable
