"""The teacher's classifier on speech_embedding vectors (kws_zoo.data.speech_embedding): two 1-D convolutions
over the vector sequence (80 ms apart), max over time, a dense layer. Not a device model (its frontend is a
330k-weight CNN run on onnxruntime), so it is not in the registry; kws_zoo.workflows.teacher trains it."""
from __future__ import annotations

from kws_zoo.core.compat import keras

L = keras.layers


def build_embedding_head(input_shape: tuple[int, int], num_classes: int, width: int = 128,
                         dropout: float = 0.3) -> keras.Model:
    inputs = keras.Input(input_shape, name="speech_embedding")
    x = L.Conv1D(width, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = L.Dropout(dropout, name="drop1")(x)
    x = L.Conv1D(width, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.GlobalMaxPooling1D(name="time_max")(x)  # a keyword anywhere in the padded clip
    x = L.Dropout(dropout, name="drop2")(x)
    return keras.Model(inputs, L.Dense(num_classes, name="logits")(x), name="embedding_head")
