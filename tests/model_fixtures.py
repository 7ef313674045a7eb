"""Helpers that give untrained models realistic BatchNorm state, so numeric checks are not vacuous."""
from __future__ import annotations

import numpy as np

from kws_zoo.core.compat import keras


def calibrate_bn(model: keras.Model, x: np.ndarray, seed: int = 0) -> None:
    """Sets every BatchNormalization's moving statistics to the batch statistics of its input on x
    (in graph order, so each BN sees already-calibrated predecessors), and draws gamma with random
    signs and a nonzero beta. Activations then have unit scale, as after training, instead of the
    shrinking or exploding ones of an untrained model in inference mode."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        h = keras.Model(model.inputs, layer.input)(x, training=False).numpy()
        axes = tuple(range(h.ndim - 1))
        c = h.shape[-1]
        gamma = rng.uniform(0.5, 1.5, c) * rng.choice([-1.0, 1.0], c)
        layer.set_weights([gamma.astype(np.float32), rng.normal(0.0, 0.3, c).astype(np.float32),
                           h.mean(axes).astype(np.float32), (h.var(axes) + 1e-6).astype(np.float32)])
