"""From a trained Keras model to deployable bytes: re-parameterization (reparam), streaming graphs (streaming),
float/int8 .tflite (tflite), streaming .tflite and the whole-window reference (streaming_tflite) and exact ternary
weights (ternary)."""
from kws_zoo.export.reparam import reparameterize
from kws_zoo.export.streaming import to_streaming
from kws_zoo.export.tflite import to_tflite_float, to_tflite_int8

__all__ = ["reparameterize", "to_streaming", "to_tflite_float", "to_tflite_int8"]
