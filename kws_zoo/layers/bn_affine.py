"""BatchNormalization at inference as y = scale * x + shift: the one formula every fold uses."""
from __future__ import annotations

import numpy as np

from kws_zoo.core.compat import keras


def bn_affine(bn: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) in float64: shape (C,) for the usual one-axis BN, or the sizes of the BN's
    axes in order for a multi-axis BN (axis=[2, 4] on [B, T, S, F/S, C] gives (S, C)).

    float64 so that folding several branches adds no rounding beyond the final cast to float32.
    """
    if not bn.built:
        raise ValueError(f"{bn.name}: BatchNormalization is not built; call the model once first")
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    shift = beta - mean * scale
    if len(bn.axis) > 1:  # Keras keeps multi-axis parameters broadcastable: (1, 1, S, 1, C)
        sizes = [scale.shape[a] for a in bn.axis]
        scale, shift = scale.reshape(sizes), shift.reshape(sizes)
    return scale, shift
