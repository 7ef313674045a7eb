"""SubSpectral Normalization (Chang et al. 2021, "SubSpectral Normalization for Neural Audio Data Processing").

A convolution shares its weights across frequency, but low and high bands carry different statistics.
SSN splits the frequency axis into `sub_bands` contiguous groups and batch-normalises each (group, channel)
pair on its own, with its own affine: BatchNorm over C x S features instead of C.

At inference it is a fixed per-(frequency, channel) affine. It cannot fold into the neighbouring
convolutions, whose weights are shared along frequency while this scale varies along it, so `plain_layer()`
gives it as a standard BatchNormalization over axes (freq, channel) holding each band's statistics repeated
over its bins; int8 TFLite turns that into MUL + ADD with constant [F, C] operands broadcast over time, both
in TFLM. (A Reshape -> 1x1 DepthwiseConv2D -> Reshape form would quantize the scale per (f, c), but Keras'
Reshape exports SHAPE/STRIDED_SLICE/PACK for the dynamic batch and per-channel quantization costs
8 bytes of arena per (f, c); the MUL's constant gets int8 steps of its range, about an activation LSB.)
"""
from __future__ import annotations

import numpy as np

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError, ModelError
from kws_zoo.layers.bn_affine import bn_affine


@keras.saving.register_keras_serializable(package="kws_zoo")
class SubSpectralNorm(keras.layers.Layer):
    """SSN on [B, T(time), F(frequency), C]; F must be a multiple of sub_bands."""

    def __init__(self, sub_bands: int = 5, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.sub_bands = int(sub_bands)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if self.sub_bands < 1:
            raise ConfigError(f"{self.name}: sub_bands must be >= 1, got {sub_bands}")
        # [B, T, S, F/S, C]: statistics and affine per (sub-band, channel), over batch, time and the band's bins.
        self.bn = keras.layers.BatchNormalization(axis=[2, 4], momentum=self.momentum, epsilon=self.epsilon,
                                                  name="bn")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[2] is None or input_shape[-1] is None:
            raise ModelError(f"{self.name}: needs [B, T, F, C] with static F and C, got {tuple(input_shape)}")
        freq, channels = int(input_shape[2]), int(input_shape[3])
        if freq % self.sub_bands:
            raise ModelError(f"{self.name}: {freq} frequency bins do not split into {self.sub_bands} sub-bands")
        self._freq_bins = freq
        self.bn.build(tf.TensorShape([None, input_shape[1], self.sub_bands, freq // self.sub_bands, channels]))
        super().build(input_shape)

    def call(self, inputs, training=None):
        frames, freq, channels = inputs.shape[1:]
        # Static sizes where known (batch as -1): the exported RESHAPE then has a constant shape instead of
        # one computed at run time by SHAPE / STRIDED_SLICE / PACK ops.
        frames = -1 if frames is None else frames
        bands = tf.reshape(inputs, [-1, frames, self.sub_bands, freq // self.sub_bands, channels])
        return tf.reshape(self.bn(bands, training=training), [-1, frames, freq, channels])

    def fused_scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift), each [F, C] float32: the layer at inference is x * scale + shift."""
        if not self.built:
            raise ValueError(f"{self.name}: layer is not built")
        scale, shift = bn_affine(self.bn)  # (S, C)
        repeat = self._freq_bins // self.sub_bands  # contiguous bands: bin f belongs to band f // repeat
        return (np.repeat(scale, repeat, axis=0).astype(np.float32),
                np.repeat(shift, repeat, axis=0).astype(np.float32))

    def plain_layer(self) -> tuple[keras.layers.Layer, list[np.ndarray]]:
        """(standard BatchNormalization over (freq, channel), its weights): each band's statistics and
        affine repeated over the band's bins, so inference computes exactly what this layer does. Under
        this layer's name (the kws_zoo.layers.plain protocol)."""
        if not self.built:
            raise ValueError(f"{self.name}: layer is not built")
        repeat = self._freq_bins // self.sub_bands
        bn = keras.layers.BatchNormalization(axis=[2, 3], momentum=self.momentum, epsilon=self.epsilon,
                                             name=self.name, dtype=self.dtype_policy)
        # Keras stores multi-axis BN weights broadcastable: (1, 1, S, 1, C) here, (1, 1, F, C) there.
        values = [np.repeat(w.numpy()[0, 0, :, 0, :], repeat, axis=0)[None, None] for w in self.bn.weights]
        return bn, values

    def get_config(self) -> dict:
        return {**super().get_config(), "sub_bands": self.sub_bands, "momentum": self.momentum,
                "epsilon": self.epsilon}
