"""Pieces every model family shares."""
from __future__ import annotations

import numpy as np

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError
from kws_zoo.layers.strided_depthwise import same_padding


def feature_input(input_shape, feature_stats=None):
    """Input of features (frames, bins) -> tensor [B, frames, bins, 1], optionally normalised per bin.

    Per-bin (global) normalisation is kept inside the model so the exported .tflite consumes raw
    frontend output; per-utterance normalisation was measured to hurt synthetic-to-real transfer.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = inputs
    if feature_stats is not None:
        mean, var = (np.asarray(v, np.float32).reshape(-1).tolist() for v in feature_stats)
        x = keras.layers.Normalization(axis=-1, mean=mean, variance=var, name="feature_norm")(x)
    x = keras.layers.Reshape((*input_shape, 1), name="add_channel")(x)
    return inputs, x


# How a convolution pads the time axis (frequency is always padded as 'same'):
#   same    centred: the default, reads future frames, does not stream;
#   valid   not at all: every output sees only real frames, so a streaming model (kws_zoo.streaming) equals
#           this model on the window ending at each step, exactly;
#   causal  zeros in the past only: output as long as the input, streams, but equals this model only for
#           the first window of a stream (afterwards the stream holds real past frames where it saw zeros).
TIME_PADDINGS = ("same", "valid", "causal")


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(i) for i in v)


def pad_time(x, kernel, strides=1, dilation=1, time_padding: str = "same", name: str = ""):
    """(x, padding for the conv): 'same' leaves x and says 'same'; otherwise x gets an explicit ZeroPadding2D
    (frequency as 'same', time per `time_padding`, none when nothing to pad) and the conv pads 'valid'."""
    if time_padding not in TIME_PADDINGS:
        raise ConfigError(f"time_padding must be one of {TIME_PADDINGS}, got {time_padding!r}")
    if time_padding == "same":
        return x, "same"
    (kt, kf), (st, sf), (dt, df) = _pair(kernel), _pair(strides), _pair(dilation)
    past = max((kt - 1) * dt + 1 - st, 0) if time_padding == "causal" else 0
    freq = same_padding(int(x.shape[2]), kf, sf, df)
    if past or any(freq):
        x = keras.layers.ZeroPadding2D(((past, 0), freq), name=f"{name}pad")(x)
    return x, "valid"


def conv_bn_relu(x, filters, kernel, strides=1, name="", depthwise=False, bn_momentum=0.99, time_padding="same"):
    x, padding = pad_time(x, kernel, strides, 1, time_padding, name)
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}dw")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                                name=f"{name}conv")(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}bn")(x)
    return keras.layers.ReLU(name=f"{name}relu")(x)
