"""SincConv (Ravanelli & Bengio 2018, "Speaker recognition from raw waveform with SincNet").

A bank of band-pass filters on raw audio whose only parameters are each filter's low cut-off and
bandwidth. The taps are recomputed from them on every call (a windowed difference of two sinc
low-passes), so training moves the band edges rather than free taps. At export `plain_layer()`
freezes the taps into an ordinary Conv2D; the converter also folds them itself, since the taps only
depend on variables.

Input [B, samples, 1, 1] (time as the height axis, so it is a Conv2D, which TFMOT and TFLM handle),
output [B, frames, 1, filters].
"""
from __future__ import annotations

import numpy as np

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError
from kws_zoo.layers.plain import to_plain


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


@keras.saving.register_keras_serializable(package="kws_zoo")
class SincConv(keras.layers.Layer):
    """filters band-pass filters of kernel_size taps (odd), applied with stride `strides`.

    Band edges: f1 = min_low_hz + |low| * 1000, f2 = min(f1 + min_band_hz + |band| * 1000, sr / 2).
    The trainable `low` and `band` are in kHz: Adam moves a parameter by about the learning rate per
    step, and a step of 1e-3 Hz would leave the edges where they started.
    Initialised with mel-spaced edges from min_low_hz to sr / 2; Hamming window.
    """

    def __init__(self, filters: int = 40, kernel_size: int = 101, strides: int = 8,
                 sample_rate: int = 16000, min_low_hz: float = 50.0, min_band_hz: float = 50.0,
                 padding: str = "valid", **kwargs):
        super().__init__(**kwargs)
        if kernel_size % 2 == 0 or kernel_size < 3:
            raise ConfigError(f"kernel_size must be odd and >= 3 (a symmetric filter), got {kernel_size}")
        if padding not in ("valid", "same"):
            raise ConfigError(f"padding must be 'valid' or 'same', got {padding!r}")
        if not (0 < min_low_hz and 0 < min_band_hz and min_low_hz + min_band_hz < sample_rate / 2):
            raise ConfigError("need 0 < min_low_hz, 0 < min_band_hz, min_low_hz + min_band_hz < sr / 2")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.sample_rate = int(sample_rate)
        self.min_low_hz = float(min_low_hz)
        self.min_band_hz = float(min_band_hz)
        self.padding = padding
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={2: 1, -1: 1})

    def _initial_edges(self) -> tuple[np.ndarray, np.ndarray]:
        edges = _mel_to_hz(np.linspace(_hz_to_mel(self.min_low_hz), _hz_to_mel(self.sample_rate / 2),
                                       self.filters + 1))
        low = (edges[:-1] - self.min_low_hz) / 1000.0
        band = np.maximum(np.diff(edges) - self.min_band_hz, 0.0) / 1000.0
        return low.astype(np.float32), band.astype(np.float32)

    def build(self, input_shape):
        low, band = self._initial_edges()
        self.low = self.add_weight(name="low", shape=(self.filters,), trainable=True,
                                   initializer=keras.initializers.Constant(low))
        self.band = self.add_weight(name="band", shape=(self.filters,), trainable=True,
                                    initializer=keras.initializers.Constant(band))
        half = self.kernel_size // 2
        # Tap times (seconds) of the right half, and the symmetric Hamming window of the full filter.
        self._t = tf.constant(np.arange(1, half + 1, dtype=np.float32) / self.sample_rate)
        self._window = tf.constant(np.hamming(self.kernel_size).astype(np.float32))
        super().build(input_shape)

    def band_edges(self) -> tuple[tf.Tensor, tf.Tensor]:
        """(f1, f2) in Hz, shape [filters] each."""
        nyquist = self.sample_rate / 2.0
        f1 = tf.minimum(self.min_low_hz + tf.abs(self.low) * 1000.0, nyquist - self.min_band_hz)
        f2 = tf.minimum(f1 + self.min_band_hz + tf.abs(self.band) * 1000.0, nyquist)
        return f1, f2

    def taps(self) -> tf.Tensor:
        """[kernel_size, filters] impulse responses, unit gain in the pass band.

        h(t) = (sin(2 pi f2 t) - sin(2 pi f1 t)) / (pi t) is the ideal band-pass [f1, f2]; sampling it at
        t = n / sr and dividing by sr gives the discrete filter. The centre tap (t = 0, limit
        2 (f2 - f1) / sr) is written out so there is no 0/0 and its gradient is exact.
        """
        f1, f2 = self.band_edges()
        t = self._t[:, None]
        right = (tf.sin(2.0 * np.pi * f2 * t) - tf.sin(2.0 * np.pi * f1 * t)) / (np.pi * t * self.sample_rate)
        centre = (2.0 * (f2 - f1) / self.sample_rate)[None]
        full = tf.concat([tf.reverse(right, [0]), centre, right], axis=0)
        return full * self._window[:, None]

    def call(self, inputs):
        kernel = tf.cast(self.taps(), inputs.dtype)[:, None, None, :]  # [k, 1, in=1, filters]
        return tf.nn.conv2d(inputs, kernel, strides=(self.strides, 1), padding=self.padding.upper())

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        n = shape[1]
        if n is not None:
            n = -(-n // self.strides) if self.padding == "same" else (n - self.kernel_size) // self.strides + 1
        return tf.TensorShape([shape[0], n, 1, self.filters])

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "sample_rate": self.sample_rate, "min_low_hz": self.min_low_hz,
                "min_band_hz": self.min_band_hz, "padding": self.padding}

    def plain_layer(self) -> tuple[keras.layers.Layer, list[np.ndarray]]:
        """(Conv2D with the current taps as a fixed kernel, its weights); see layers.plain."""
        conv = keras.layers.Conv2D(self.filters, (self.kernel_size, 1), strides=(self.strides, 1),
                                   padding=self.padding, use_bias=False, name=self.name,
                                   dtype=self.dtype_policy)
        return conv, [self.taps().numpy()[:, None, None, :]]


def sinc_to_plain(model: keras.Model) -> keras.Model:
    """The same model with every SincConv as a plain Conv2D holding its current taps."""
    return to_plain(model)
