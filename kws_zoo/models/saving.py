"""Opening a saved .keras of this zoo: its custom layers registered, old files upgraded to portable kernels."""
from __future__ import annotations

import kws_zoo.layers  # noqa: F401  (registers the custom layers for deserialisation)
from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ModelLoadError
from kws_zoo.layers.strided_depthwise import with_portable_strides


def load_keras(path: str) -> keras.Model:
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:
        raise ModelLoadError(f"{path}: cannot load as a Keras model ({str(err).splitlines()[0]})") from None
    return with_portable_strides(model)
