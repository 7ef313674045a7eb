"""Pieces every model family shares."""
from __future__ import annotations

import numpy as np

from kws_zoo.compat import keras


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


def conv_bn_relu(x, filters, kernel, strides=1, name="", depthwise=False, bn_momentum=0.99):
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=f"{name}dw")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}conv")(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}bn")(x)
    return keras.layers.ReLU(name=f"{name}relu")(x)
