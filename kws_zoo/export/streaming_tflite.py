"""Streaming models (kws_zoo.streaming) -> full-integer int8 .tflite, external or internal state.

Both are converted with batch 1 and a step's frames as input, and calibrated on real streams: the
external form on (frames, states) pairs produced by running the float streaming model over
representative feature streams, the internal form on the frames in stream order (the calibrator keeps
the variables between samples, so they see the values a stream gives them). `streaming_forms` converts a
model's whole-window int8 reference and both streaming forms together, the reference calibrated on windows
of the same streams: each int8 model's ranges come from what it saw, and two int8 models calibrated on
different audio disagree on close calls, measured at ~5% of the windows of a weak (80% accurate) model, as
often as either disagrees with float.

External state: inputs and outputs keep their Keras names through the .tflite signature ('features',
'<layer>_state' in; 'logits', '<layer>_state' out), so a runner pairs them by name, not by position
(the converter orders tensors by name). A state comes back with its input's scale and zero point
(CONCATENATION and STRIDED_SLICE keep them), so firmware copies the int8 bytes back unchanged;
`state_pairs` checks that.
Internal state: VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE, with an init subgraph (CALL_ONCE) that zeroes
the variables. The variables are quantized with TFLite's experimental variable quantization
(`_experimental_variable_quantization`, a converter attribute without a public switch): without it they
stay float and the graph gets DEQUANTIZE/QUANTIZE islands around every state.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ExportError
from kws_zoo.device.flatbuffer import float_ops
from kws_zoo.export.reparam import reparameterize
from kws_zoo.export.streaming import (StreamingSpec, reset_states, streaming_spec, to_streaming,
                                      with_frequency_mean_pool, zero_states)
from kws_zoo.export.tflite import converter_of, to_tflite_int8
from kws_zoo.layers.stream import MODES, Stream

WINDOW_EVERY = 3  # the whole-window reference is calibrated on the window ending at every 3rd frame of a stream


def _is_external(stream_model: keras.Model) -> bool:
    return len(stream_model.inputs) > 1


def _names(stream_model: keras.Model) -> list[str]:
    return [t.name.split(":")[0] for t in stream_model.inputs]


def _concrete(stream_model: keras.Model):
    names = _names(stream_model)
    specs = [tf.TensorSpec((1, *t.shape[1:]), t.dtype, name=n) for t, n in zip(stream_model.inputs, names)]
    if not _is_external(stream_model):
        fn = tf.function(lambda x: {"logits": stream_model(x, training=False)}, input_signature=specs)
        return fn.get_concrete_function()

    def step(*xs):
        logits, *states = stream_model(list(xs), training=False)
        return {"logits": logits, **dict(zip(names[1:], states))}

    return tf.function(step, input_signature=specs).get_concrete_function()


def calibration_steps(stream_model: keras.Model, features: np.ndarray, max_steps: int = 2000):
    """Yields model inputs ({name: array}, batch 1) met while streaming features [N, T, ...] from zero states.

    Internal state: consecutive steps (the calibrator carries the variables from one to the next), the last
    max_steps / N of each stream, or its last receptive field and a few steps if more. External state: every
    k-th step of every stream, k chosen for at most max_steps, states computed by the float model as the
    generator goes (nothing is stored: a DS-CNN's states are 50k values per step).
    """
    features = np.asarray(features, np.float32)
    names = _names(stream_model)
    step = stream_model.inputs[0].shape[1]
    steps = features.shape[1] // step
    if not _is_external(stream_model):
        # The last max_steps / N steps of each stream, streams one after another: every stream (often one
        # class each) is seen, and the variables carry real frames, like continuous audio with splices.
        # (The first max_steps in order would calibrate on one stream's warm-up only.)
        # At least a receptive field's worth per stream (the sum of the ring buffers bounds it), so the last
        # steps of each see that stream alone: spliced windows give smaller ranges, and logits calibrated
        # only on them clip (measured: 8x the external form's error).
        field = sum(layer.state_frames for layer in stream_model.layers if isinstance(layer, Stream)) // step + 1
        per = min(steps, max(max_steps // len(features), field + 8))
        chunks = features[:, :steps * step].reshape(len(features), steps, 1, step, *features.shape[2:])
        for chunk in chunks[:, steps - per:].reshape(-1, 1, step, *features.shape[2:]):
            yield {names[0]: chunk}
        return
    every = max(1, -(-len(features) * steps // max_steps))
    call = tf.function(lambda *xs: stream_model(list(xs), training=False))
    states = [tf.constant(z) for z in zero_states(stream_model, len(features))]  # all streams as one batch
    for i in range(steps):
        frames = features[:, i * step:(i + 1) * step]
        if i % every == 0:
            values = [frames, *(s.numpy() for s in states)]
            for b in range(len(features)):
                yield {name: v[b:b + 1] for name, v in zip(names, values)}
        _, *states = call(tf.constant(frames), *states)


def to_tflite_streaming(stream_model: keras.Model, representative: np.ndarray | None = None,
                        max_steps: int = 2000, output_type: str = "int8") -> bytes:
    """int8 .tflite of a streaming model (float when representative is None), calibrated by streaming
    `representative` features [N, T, ...] (a few long streams or many clips). output_type 'uint8' ends the graph
    with a QUANTIZE to uint8 (what ESPHome's micro_wake_word reads)."""
    if output_type not in ("int8", "uint8"):
        raise ExportError(f"output_type must be 'int8' or 'uint8', got {output_type!r}")
    conv = converter_of(stream_model, lambda: _concrete(stream_model))
    saved = []
    if not _is_external(stream_model):
        conv.experimental_enable_resource_variables = True
        # The converter takes the variables' current values as their initial ones: convert from zeros.
        saved = [(layer.state, layer.state.numpy()) for layer in stream_model.layers if isinstance(layer, Stream)]
        reset_states(stream_model)
    if representative is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        # By signature name: the converter orders the inputs by name, not as the Keras model does.
        conv.representative_dataset = lambda: calibration_steps(stream_model, representative, max_steps)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8 if output_type == "int8" else tf.uint8
        if not _is_external(stream_model):
            conv._experimental_variable_quantization = True  # noqa: SLF001 - see the module docstring
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            model_bytes = bytes(conv.convert())
    finally:
        for variable, value in saved:
            variable.assign(value)
    floats = float_ops(model_bytes) if representative is not None else []
    if floats:
        raise ExportError(f"{stream_model.name}: int8 streaming export left float ops {floats}")
    return model_bytes


@dataclasses.dataclass(frozen=True, eq=False)
class StreamForm:
    model: keras.Model  # the float streaming Keras model (its MACs per step)
    int8: bytes


@dataclasses.dataclass(frozen=True, eq=False)
class StreamingForms:
    """A streamable model as a device runs it, every int8 model calibrated on the same streams."""
    spec: StreamingSpec
    inference: keras.Model  # the reparameterized whole-window model, as `kws-zoo export` converts it (its MACs)
    window: bytes  # int8 whole-window reference, frequency means quantized where the streaming graph has them
    external: StreamForm
    internal: StreamForm

    @property
    def forms(self) -> dict[str, StreamForm]:
        return {"external": self.external, "internal": self.internal}


def calibration_windows(streams: np.ndarray, window_frames: int, every: int = WINDOW_EVERY) -> np.ndarray:
    """Whole windows [M, window_frames, ...] cut from streams [N, T, ...]: the one ending every `every` frames."""
    return np.stack([s[end - window_frames + 1:end + 1] for s in streams
                     for end in range(window_frames - 1, s.shape[0], every)])


def streaming_forms(model: keras.Model, streams: np.ndarray, max_steps: int = 2000) -> StreamingForms:
    """int8 whole-window reference and both streaming forms of `model`, calibrated on feature streams [N, T, ...]
    (T >= the window); max_steps bounds the streaming forms' calibration steps (see calibration_steps).

    The one place this conversion is done, for stream-export and stream-cost alike: every form sees the same
    audio, the reference as whole windows cut from the streams (module docstring: int8 models calibrated on
    different audio disagree on close calls, and their arena and flash differ)."""
    streams = np.asarray(streams, np.float32)
    spec = streaming_spec(model)
    inference = reparameterize(model)
    windows = calibration_windows(streams, spec.window_frames)
    window = to_tflite_int8(with_frequency_mean_pool(inference), windows, num_samples=len(windows))
    forms = {}
    for mode in MODES:
        stream_model = to_streaming(model, mode)
        forms[mode] = StreamForm(stream_model, to_tflite_streaming(stream_model, streams, max_steps=max_steps))
    return StreamingForms(spec, inference, window, **forms)
