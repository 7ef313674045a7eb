"""Re-parameterizable multi-branch convolution (RepVGG, Ding et al. 2021; RepCNN, arXiv 2406.02652).

Training form: the sum of BN(conv(x, k)) over a main kernel and smaller odd kernels (1x1, k x 1, 1 x k, ...)
centred in it, plus BN(x) when input and output line up (same channels, stride 1). Each branch is linear
up to its BN, so at inference the sum is one convolution with bias; the extra branches only change how
gradient descent sees the weights (the paper's point: a better optimum for the same deployed model).

Regular and depthwise (depth multiplier 1) forms; any odd kernel such as (k, 1) over time; optional dilation
shared by every branch, so a small dilated kernel sits on the taps of the main one. Padding 'same' (default) or
'valid' (for streaming models, which pad frequency explicitly and time not at all): with 'valid' every branch
is convolved zero-padded to the main kernel's size and the identity branch is the input cropped to the
windows' centres.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError, ModelError
from kws_zoo.layers.bn_affine import bn_affine
from kws_zoo.layers.strided_depthwise import depthwise_conv2d, depthwise_conv_layer


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (int(value), int(value)) if np.isscalar(value) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ConfigError(f"{what} must be a positive int or a pair of them, got {value!r}")
    return pair


@keras.saving.register_keras_serializable(package="kws_zoo")
class RepConv2D(keras.layers.Layer):
    """Multi-branch 'same'-padded convolution on [B, H, W, C] that folds into one Conv2D/DepthwiseConv2D.

    filters: output channels (None or the input channel count when depthwise).
    kernel_size: the main (and deployed) kernel; odd sizes only, so every smaller kernel has a centre.
    branch_kernels: the smaller kernels, each no larger than the main one in either axis.
    identity: add a BN-only branch when it exists (stride 1 and as many output as input channels).
    padding: 'same' or 'valid', as in Conv2D.
    """

    def __init__(self, filters: int | None, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1,
                 dilation_rate: int | Sequence[int] = 1, depthwise: bool = False,
                 branch_kernels: Sequence[int | Sequence[int]] = ((1, 1),), identity: bool = True,
                 momentum: float = 0.99, epsilon: float = 1e-3, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, padding: str = "same", **kwargs):
        super().__init__(**kwargs)
        self.filters = None if filters is None else int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.depthwise = bool(depthwise)
        self.branch_kernels = tuple(_pair(k, "branch kernel") for k in branch_kernels)
        self.identity = bool(identity)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.padding = str(padding).lower()
        if self.padding not in ("same", "valid"):
            raise ConfigError(f"{self.name}: padding must be 'same' or 'valid', got {padding!r}")
        if self.filters is None and not self.depthwise:
            raise ConfigError(f"{self.name}: a regular RepConv2D needs filters")
        sizes = (self.kernel_size, *self.branch_kernels)
        if any(k % 2 == 0 for size in sizes for k in size):
            raise ConfigError(f"{self.name}: kernels must be odd to share a centre, got {sizes}")
        if any(b[0] > self.kernel_size[0] or b[1] > self.kernel_size[1] for b in self.branch_kernels):
            raise ConfigError(f"{self.name}: branch kernels {self.branch_kernels} must fit in {self.kernel_size}")
        if len(set(sizes)) != len(sizes):
            raise ConfigError(f"{self.name}: duplicate kernel sizes {sizes} (two branches of one size are one)")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ConfigError(f"{self.name}: strides and dilation together are not supported (nor by Conv2D)")
        self.bns = [keras.layers.BatchNormalization(momentum=self.momentum, epsilon=self.epsilon,
                                                    name=f"bn_{h}x{w}") for h, w in sizes]
        self.identity_bn = None
        self.kernels: list = []

    @property
    def branch_sizes(self) -> tuple[tuple[int, int], ...]:
        return (self.kernel_size, *self.branch_kernels)

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        if self.depthwise and self.filters not in (None, in_channels):
            raise ModelError(f"{self.name}: depthwise filters={self.filters} but input has {in_channels} channels")
        out_channels = in_channels if self.depthwise else self.filters
        init = keras.initializers.serialize(self.kernel_initializer)
        self.kernels = [
            # A fresh initializer per branch: one unseeded instance called twice repeats its values.
            self.add_weight(name=f"kernel_{h}x{w}", shape=(h, w, in_channels, 1 if self.depthwise else out_channels),
                            initializer=keras.initializers.deserialize(init), regularizer=self.kernel_regularizer)
            for h, w in self.branch_sizes]
        out_shape = tf.TensorShape([None, None, None, out_channels])
        for bn in self.bns:
            bn.build(out_shape)
        if self.identity and self.strides == (1, 1) and in_channels == out_channels:
            self.identity_bn = keras.layers.BatchNormalization(momentum=self.momentum, epsilon=self.epsilon,
                                                               name="bn_identity")
            self.identity_bn.build(out_shape)
        super().build(input_shape)

    def _centre_pad(self, size: tuple[int, int]) -> list[list[int]]:
        (kh, kw), (h, w) = self.kernel_size, size
        return [[(kh - h) // 2] * 2, [(kw - w) // 2] * 2, [0, 0], [0, 0]]

    def _conv(self, x, kernel, size: tuple[int, int]):
        padding = self.padding.upper()
        if size != self.kernel_size and self.padding == "valid":
            # 'VALID' windows start at the main kernel's corner: give the small kernel exactly the input under
            # its place in each main window. (Zero-padding the small kernel instead, or cropping surplus outputs,
            # made oneDNN's graph rewrite abort or crash: a VALID conv with a computed filter, or a slice, + BN.)
            x = self._window_input(x, size)
        elif size != self.kernel_size and self.strides != (1, 1):
            # With stride > 1, 'SAME' padding depends on the kernel size (even inputs pad only after), so
            # a small kernel's windows would not be centred in the main kernel's: convolve it zero-padded.
            kernel = tf.pad(kernel, self._centre_pad(size))
        if self.depthwise:
            return depthwise_conv2d(x, kernel, self.strides, padding, self.dilation_rate)
        return tf.nn.conv2d(x, kernel, (1, *self.strides, 1), padding, dilations=self.dilation_rate)

    def _window_input(self, x, size: tuple[int, int]):
        """'valid' only: the part of x that a (h, w) kernel centred in each main-kernel window reads, so that
        a VALID conv of it (size (1, 1) with stride 1 is the identity branch's input) has the main output size."""
        (kh, kw), (h, w), (dh, dw), (sh, sw) = self.kernel_size, size, self.dilation_rate, self.strides
        rows, cols = int(x.shape[1]), int(x.shape[2])
        out_h, out_w = (rows - (kh - 1) * dh - 1) // sh + 1, (cols - (kw - 1) * dw - 1) // sw + 1
        top, left = (kh - h) // 2 * dh, (kw - w) // 2 * dw
        return x[:, top:top + (out_h - 1) * sh + (h - 1) * dh + 1, left:left + (out_w - 1) * sw + (w - 1) * dw + 1]

    def call(self, inputs, training=None):
        if self.padding == "valid" and (inputs.shape[1] is None or inputs.shape[2] is None):
            raise ModelError(f"{self.name}: padding 'valid' needs static height and width, got {inputs.shape}")
        out = None
        for kernel, size, bn in zip(self.kernels, self.branch_sizes, self.bns):
            y = bn(self._conv(inputs, kernel, size), training=training)
            out = y if out is None else out + y
        if self.identity_bn is not None:
            identity = inputs if self.padding == "same" else self._window_input(inputs, (1, 1))
            out = out + self.identity_bn(identity, training=training)
        return out

    def fused_kernel_bias(self) -> tuple[np.ndarray, np.ndarray]:
        """(kernel, bias) of the single convolution equal to this layer at inference (BN moving stats).

        kernel is [kh, kw, in, out] (regular) or [kh, kw, in, 1] (depthwise), as Keras stores them.
        """
        if not self.built:
            raise ValueError(f"{self.name}: layer is not built")
        kh, kw = self.kernel_size
        shape = tuple(self.kernels[0].shape)
        kernel, bias = np.zeros(shape, np.float64), 0.0
        # Per-output-channel scale broadcasts on the last axis (regular) or the channel axis (depthwise).
        axis = (slice(None), None) if self.depthwise else (slice(None),)
        for weight, size, bn in zip(self.kernels, self.branch_sizes, self.bns):
            scale, shift = bn_affine(bn)
            kernel += np.pad(np.asarray(weight.numpy(), np.float64), self._centre_pad(size)) * scale[axis]
            bias = bias + shift
        if self.identity_bn is not None:
            scale, shift = bn_affine(self.identity_bn)
            delta = np.zeros(shape, np.float64)  # a centred 1 from channel i to channel i: the identity
            channels = np.arange(shape[2])
            delta[kh // 2, kw // 2, channels, 0 if self.depthwise else channels] = 1.0
            kernel += delta * scale[axis]
            bias = bias + shift
        return kernel.astype(np.float32), np.asarray(bias, np.float32)

    def plain_layer(self) -> tuple[keras.layers.Layer, list[np.ndarray]]:
        """(Conv2D or DepthwiseConv2D, portable for unequal strides, with bias; its weights): this layer's
        inference form under its own name (the kws_zoo.layers.plain protocol)."""
        common = dict(kernel_size=self.kernel_size, strides=self.strides, padding=self.padding,
                      dilation_rate=self.dilation_rate, use_bias=True, name=self.name, dtype=self.dtype_policy)
        layer = (depthwise_conv_layer(**common) if self.depthwise
                 else keras.layers.Conv2D(self.kernels[0].shape[-1], **common))
        return layer, list(self.fused_kernel_bias())

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "dilation_rate": self.dilation_rate, "depthwise": self.depthwise,
                "branch_kernels": self.branch_kernels, "identity": self.identity, "momentum": self.momentum,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer), "padding": self.padding}
