"""Helpers shared by the re-parameterization and BC-ResNet tests."""
from __future__ import annotations

import numpy as np

from kws_zoo.core.compat import keras
from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D

# An explicit, generous TFLM arena: TflmModel's automatic search tries small arenas first, and at some
# of them TFLM's DEPTHWISE_CONV_2D / STRIDED_SLICE Prepare dereferences a failed allocation (segfault).
ARENA = 1 << 21


def randomize_bn(model: keras.Model, seed: int = 0) -> None:
    """Non-trivial BN statistics and affines everywhere (also inside RepConv2D / SubSpectralNorm), so a
    wrong fold cannot hide behind gamma=1, beta=0, mean=0, var=1."""
    rng = np.random.default_rng(seed)
    for m in model.submodules:
        if isinstance(m, keras.layers.BatchNormalization):
            shape = m.gamma.shape
            m.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            m.beta.assign(rng.normal(0, 0.3, shape).astype(np.float32))
            m.moving_mean.assign(rng.normal(0, 0.3, shape).astype(np.float32))
            m.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))


def custom_layers(model: keras.Model) -> list[str]:
    """'name:Class' of every layer that is not a standard tf_keras layer. StridedDepthwiseConv2D counts as
    standard: it is keras' DepthwiseConv2D (same config and weights) computed on any CPU's kernels."""
    return [f"{layer.name}:{type(layer).__name__}" for layer in model.layers
            if not type(layer).__module__.startswith("tf_keras.") and type(layer) is not StridedDepthwiseConv2D]
