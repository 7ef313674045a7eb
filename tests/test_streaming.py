"""Streaming: every streamable registered model, float equality with the windowed model, int8 on TFLM."""
from __future__ import annotations

import numpy as np
import pytest

from kws_zoo.compat import keras
from kws_zoo.export import to_tflite_int8
from kws_zoo.models import create_model, get_entry, list_models
from kws_zoo.reparam import reparameterize
from kws_zoo.streaming import (StreamingError, reset_states, run_stream, streaming_spec, to_streaming,
                               zero_states)
from kws_zoo.streaming_cost import step_macs
from kws_zoo.profile import count_macs
from kws_zoo.streaming_export import to_tflite_streaming
from model_fixtures import calibrate_bn
from reparam_helpers import randomize_bn
from tflm.runtime import TflmModel
from tflm.streaming import TflmStreamingModel

STREAMABLE = [n for n in list_models() if get_entry(n).streamable]


def _shape(name: str) -> tuple[int, int]:
    return tuple(getattr(get_entry(name).config, "default_input_shape", None) or (49, 10))


def streams(n: int, frames: int, bins: int, seed: int = 0) -> np.ndarray:
    """[n, frames, bins] slowly varying random features (a random walk per bin, unit scale), so that
    consecutive windows differ but a classifier's decision does not flip at every frame."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal((n, frames, bins)), axis=1)
    x = x - x.mean(axis=1, keepdims=True)
    return (x / x.std(axis=1, keepdims=True)).astype(np.float32)


def prepared(name: str, **overrides) -> keras.Model:
    """A registered model with realistic BN statistics and unit-scale logits: equality checks at 1e-5 are
    then not vacuous (an untrained model in inference mode can shrink its logits to nothing)."""
    shape = overrides.pop("input_shape", None) or _shape(name)
    keras.utils.set_random_seed(0)
    model = create_model(name, input_shape=shape, num_classes=12,
                         feature_stats=(np.full(shape[-1], 0.1), np.full(shape[-1], 1.5)), **overrides)
    x = streams(4, shape[0], shape[1], seed=1)
    randomize_bn(model)  # also the BNs inside RepConv2D and SubSpectralNorm
    calibrate_bn(model, x)
    dense = model.get_layer("logits")
    scale = np.asarray(model(x, training=False)).std() + 1e-12
    dense.set_weights([w / scale for w in dense.get_weights()])
    return model


def windows_ending_at(features: np.ndarray, ends, window: int) -> np.ndarray:
    """[len(ends), window, bins]: the window of one stream ending at each frame index."""
    return np.stack([features[e - window + 1:e + 1] for e in ends])


@pytest.mark.parametrize("name", STREAMABLE)
def test_external_state_stream_equals_the_model_on_every_window(name):
    model = prepared(name)
    spec = streaming_spec(model)
    w, s = spec.window_frames, spec.frames_per_step
    assert spec.padding == "valid"
    feats = streams(2, w + 40 * s, model.input_shape[-1], seed=2)
    stream = to_streaming(model, "external")
    assert [t.shape[1:] for t in stream.inputs[1:]] == [shape for _, shape in spec.states]

    ends = np.arange(s - 1, feats.shape[1], s)
    full = ends >= w - 1  # steps whose window is all real frames
    ref = np.stack([model.predict(windows_ending_at(f, ends[full], w), verbose=0) for f in feats])
    assert np.abs(ref).max() > 0.5  # non-vacuous

    # From zero states, and from random ones: with no time padding the past state is flushed by then.
    rng = np.random.default_rng(3)
    random_states = [rng.standard_normal(z.shape).astype(np.float32) for z in zero_states(stream, 2)]
    for states in (None, random_states):
        y = run_stream(stream, feats, states)
        assert y.shape == (2, len(ends), 12)
        assert np.abs(y[:, full] - ref).max() < 1e-5

    # Internal state: the same numbers, and again after a reset.
    internal = to_streaming(model, "internal")
    first = run_stream(internal, feats[:1])
    reset_states(internal)
    again = run_stream(internal, feats[:1])
    assert np.abs(first[0, full] - ref[0]).max() < 1e-5
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("name", STREAMABLE)
def test_int8_streaming_on_tflm_agrees_with_the_int8_model(name):
    """Both state forms, int8, frame by frame on the TFLM interpreter vs the int8 whole-window model."""
    model = prepared(name)
    w = streaming_spec(model).window_frames
    feats = streams(3, w + 200, model.input_shape[-1], seed=4)
    calibration, test = feats[1:], feats[0]
    ends = np.arange(w - 1, feats.shape[1])
    whole = to_tflite_int8(reparameterize(model),
                           np.concatenate([windows_ending_at(f, ends[::8], w) for f in calibration]))
    ref = TflmModel(whole).predict(windows_ending_at(test, ends, w))
    for mode in ("external", "internal"):
        tflm = TflmStreamingModel(to_tflite_streaming(to_streaming(model, mode), calibration, max_steps=100))
        assert tflm.external == (mode == "external") and not tflm.requantized_states
        assert tflm.state_bytes == sum(np.prod(shape) for _, shape in streaming_spec(model).states)  # int8
        y = tflm.run(test)[w - 1:]
        agreement = np.mean(y.argmax(1) == ref.argmax(1))
        assert agreement >= 0.99, f"{mode}: top-1 agreement {agreement:.3f}"


def test_strided_model_streams_several_frames_per_step():
    # Time stride 2 in the stem: a step is 2 frames; 50 frames tile (50 - 10 is even).
    model = prepared("ds_cnn_stream", first_stride=(2, 2), input_shape=(50, 10))
    spec = streaming_spec(model)
    assert spec.frames_per_step == 2 and spec.states[0] == ("stem_conv", (8, 12, 1))
    feats = streams(1, 50 + 40, 10, seed=5)
    y = run_stream(to_streaming(model), feats)[0]
    ends = np.arange(1, 90, 2)
    ref = model.predict(windows_ending_at(feats[0], ends[ends >= 49], 50), verbose=0)
    assert np.abs(y[ends >= 49] - ref).max() < 1e-5
    with pytest.raises(StreamingError, match="stem_conv.*49 frames do not tile"):
        to_streaming(prepared("ds_cnn_stream", first_stride=(2, 2), input_shape=(49, 10)))


def test_causal_padding_equals_the_model_on_the_first_window_only():
    model = prepared("ds_cnn_stream", time_padding="causal")
    spec = streaming_spec(model)
    assert spec.padding == "causal"
    feats = streams(1, 49 + 20, 10, seed=6)
    y = run_stream(to_streaming(model), feats)[0]
    first = model.predict(feats[:, :49], verbose=0)[0]
    assert np.abs(y[48] - first).max() < 1e-5
    # Later the ring buffers hold real frames where the windowed model pads zeros: not equal, by design.
    later = model.predict(feats[:, 20:69], verbose=0)[0]
    assert np.abs(y[68] - later).max() > 1e-3


@pytest.mark.parametrize("name", list_models())
def test_registry_records_which_models_stream(name):
    model = create_model(name)
    if get_entry(name).streamable:
        assert streaming_spec(model).padding == "valid"
    else:
        with pytest.raises(StreamingError, match=r"layer '\w+'"):
            streaming_spec(model)


def test_errors_name_the_layer_and_the_fix():
    with pytest.raises(StreamingError, match=r"'stem_conv'.*padding 'same'.*time_padding='valid'"):
        to_streaming(create_model("ds_cnn"))
    inp = keras.Input((49, 10))
    x = keras.layers.Reshape((49, 10, 1))(inp)
    x = keras.layers.Conv2D(4, (3, 3), padding="valid", name="conv")(x)
    x = keras.layers.Flatten(name="too_early")(x)
    with pytest.raises(StreamingError, match="'too_early'.*flattens 47 frames"):
        to_streaming(keras.Model(inp, keras.layers.Dense(2)(x)))


def test_streaming_models_save_and_load(tmp_path):
    model = prepared("ds_cnn_stream", input_shape=(49, 10))
    feats = streams(1, 60, 10, seed=7)
    for mode in ("external", "internal"):
        stream = to_streaming(model, mode)
        path = str(tmp_path / f"{mode}.keras")
        stream.save(path)
        loaded = keras.models.load_model(path, compile=False)
        reset_states(stream)
        np.testing.assert_allclose(run_stream(loaded, feats), run_stream(stream, feats), atol=1e-6)


@pytest.mark.parametrize("name,hop_ms", [("ds_cnn_stream", 20), ("bc_resnet_1_stream", 10)])
def test_streaming_costs_ten_times_fewer_macs_per_second(name, hop_ms):
    """MACs per second of audio: streaming (one step per hop) vs recomputing the window every 20 ms."""
    shape = (49, 40) if name == "ds_cnn_stream" else (98, 40)
    model = create_model(name, input_shape=shape)
    stream = to_streaming(model)
    whole_per_s = count_macs(reparameterize(model)) * 1000 / 20
    stream_per_s = step_macs(stream) * 1000 / hop_ms
    assert whole_per_s >= 10 * stream_per_s
