"""Swap custom layers for standard Keras layers that compute the same function (the export form).

The TFLite converter, TFMOT and firmware only know standard layers, and a custom layer's training
parametrisation (sinc cut-offs, a seed-generated ternary matrix) says nothing to them. A custom layer
opts in by defining `plain_layer() -> (unbuilt standard layer, its weights)`; every other layer is
cloned from its config with its weights copied, so the returned model is independent of the input.
"""
from __future__ import annotations

import numpy as np

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ExportError


def to_plain(model: keras.Model) -> keras.Model:
    """Functional clone of `model` with every layer that has `plain_layer()` replaced by it."""
    weights: dict[str, list[np.ndarray]] = {}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.Model):
            raise ExportError(f"{layer.name}: nested models are not supported; flatten the model first")
        if hasattr(layer, "plain_layer"):
            new, values = layer.plain_layer()
        else:
            new, values = layer.__class__.from_config(layer.get_config()), layer.get_weights()
        weights[layer.name] = values
        return new

    plain = keras.models.clone_model(model, clone_function=clone)
    # Cloned layers keep their names (plain_layer() reuses the custom layer's name).
    for layer in plain.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])
    return plain
