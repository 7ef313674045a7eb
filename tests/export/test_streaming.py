"""Streaming: every streamable registered model, float equality with the windowed model, int8 on TFLM."""
from __future__ import annotations

import numpy as np
import pytest

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import StreamingError
from kws_zoo.device.runtime import TflmModel
from kws_zoo.device.streaming import TflmStreamingModel
from kws_zoo.export.reparam import reparameterize
from kws_zoo.export.streaming import (reset_states, run_stream, streaming_spec, to_streaming,
                                      with_frequency_mean_pool, zero_states)
from kws_zoo.export.streaming_tflite import to_tflite_streaming
from kws_zoo.export.tflite import to_tflite_int8
from kws_zoo.models import create_model, get_entry, list_models
from kws_zoo.models.profile import count_macs, step_macs

STREAMABLE = [n for n in list_models() if get_entry(n).streamable]
# A plain twin streams its multi-branch model's graph (tests/export/test_reparam.py and test_esphome.py check the two
# deploy as the same graph), so the streaming equalities run once per inference graph. matchboxnet_wake is
# repcnn_wake's graph without the depthwise biases (its strided prologue is covered there, its plain depthwise convs
# by matchboxnet_3x1x64_stream, and it streams on TFLM in tests/workflows/test_wakeword.py).
STREAM_GRAPHS = [n for n in STREAMABLE if not n.endswith("_plain") and n != "matchboxnet_wake"]


def _per_model(names):
    """Each model's tests on one pytest-xdist worker (--dist loadgroup), so `prepared` trains it once, not once per
    worker (BC-ResNet: 15 s)."""
    return [pytest.param(name, marks=pytest.mark.xdist_group(f"stream_{name}")) for name in names]


def _shape(name: str) -> tuple[int, int]:
    return tuple(getattr(get_entry(name).config, "default_input_shape", None) or (49, 10))


def streams(n: int, frames: int, bins: int, seed: int = 0) -> np.ndarray:
    """[n, frames, bins] slowly varying random features (a random walk per bin, unit scale), so that
    consecutive windows differ but a classifier's decision does not flip at every frame."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal((n, frames, bins)), axis=1)
    x = x - x.mean(axis=1, keepdims=True)
    return (x / x.std(axis=1, keepdims=True)).astype(np.float32)


def class_streams(labels, frames: int, bins: int, seed: int = 0) -> np.ndarray:
    """[len(labels), frames, bins]: stream i is class labels[i]'s spectral shape (a smooth curve over the
    bins), slowly modulated in level, plus noise: classes a random network's pooled features separate."""
    f = np.linspace(0, 1, bins)
    shapes = np.stack([1.5 * np.sin(np.pi * (1 + c % 4) * f + c) for c in range(12)])
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    out = [shapes[c] + 0.5 * np.sin(2 * np.pi * t / rng.uniform(20, 60) + rng.uniform(0, 6))
           + 0.3 * rng.standard_normal((frames, bins)) for c in labels]
    return np.asarray(out, np.float32)


_PREPARED: dict = {}


def prepared(name: str, train: bool = True, **overrides) -> keras.Model:
    """A registered model briefly trained on class_streams (so its outputs have the margins and its
    activations the ranges of a trained network; int8 comparisons then measure the graph, not ties), with
    logits scaled to unit size (so float equality at 1e-5 is neither vacuous nor loose). Cached per test run.

    After training, every BN (also inside RepConv2D and SubSpectralNorm) takes the statistics of its input
    on a batch (one training-mode pass with momentum 0): 60 steps are too few for moving averages.
    train=False skips the training (for float-only checks of graph structure).
    """
    key = (name, train, tuple(sorted(overrides.items())))
    if key in _PREPARED:
        return _PREPARED[key]
    shape = overrides.pop("input_shape", None) or _shape(name)
    keras.utils.set_random_seed(0)
    model = create_model(name, input_shape=shape, num_classes=12,
                         feature_stats=(np.full(shape[-1], 0.1), np.full(shape[-1], 1.5)), **overrides)
    labels = np.arange(96) % 12
    x = class_streams(labels, shape[0], shape[1], seed=1)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if train:
        model.fit(x, labels, batch_size=32, epochs=20, verbose=0)
    bns = [m for m in model.submodules if isinstance(m, keras.layers.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0
    model(x, training=True)
    for bn in bns:
        bn.momentum = 0.99
    dense = model.get_layer("logits")
    scale = np.asarray(model(x, training=False)).std() + 1e-12
    dense.set_weights([w / scale for w in dense.get_weights()])
    _PREPARED[key] = model
    return model


def windows_ending_at(features: np.ndarray, ends, window: int) -> np.ndarray:
    """[len(ends), window, bins]: the window of one stream ending at each frame index."""
    return np.stack([features[e - window + 1:e + 1] for e in ends])


@pytest.mark.parametrize("name", _per_model(STREAM_GRAPHS))
def test_external_state_stream_equals_the_model_on_every_window(name):
    model = prepared(name)
    spec = streaming_spec(model)
    w, s = spec.window_frames, spec.frames_per_step
    assert spec.padding == "valid"
    feats = streams(2, (w // s + 40) * s, model.input_shape[-1], seed=2)  # whole steps
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


@pytest.mark.parametrize("name", _per_model(STREAM_GRAPHS))
def test_int8_streaming_on_tflm_agrees_with_the_int8_model(name):
    """Both state forms, int8, frame by frame on the TFLM interpreter vs the int8 whole-window model."""
    model = prepared(name)
    w, s = streaming_spec(model).window_frames, streaming_spec(model).frames_per_step
    bins, frames = model.input_shape[-1], (w // s + 60 // s) * s  # whole steps
    calibration = class_streams(np.arange(6) * 2, frames, bins, seed=4)
    tests = class_streams(np.arange(6) * 2 + 1, frames, bins, seed=5)
    ends = np.arange(s - 1, frames, s)
    ends = ends[ends >= w - 1]  # the last frame of every step whose window is all stream
    whole = to_tflite_int8(with_frequency_mean_pool(reparameterize(model)),
                           np.concatenate([windows_ending_at(f, ends[::4], w) for f in calibration]))
    ref = TflmModel(whole).predict(np.concatenate([windows_ending_at(f, ends, w) for f in tests]))
    assert np.mean(ref.argmax(1) == np.repeat(np.arange(6) * 2 + 1, len(ends))) > 0.9  # decisive classifier
    for mode in ("external", "internal"):
        tflm = TflmStreamingModel(to_tflite_streaming(to_streaming(model, mode), calibration, max_steps=160))
        assert tflm.external == (mode == "external") and not tflm.requantized_states
        assert tflm.state_bytes == sum(np.prod(shape) for _, shape in streaming_spec(model).states)  # int8
        y = np.concatenate([tflm.run(f)[-len(ends):] for f in tests])
        agreement = np.mean(y.argmax(1) == ref.argmax(1))
        assert agreement >= 0.99, f"{mode}: top-1 agreement {agreement:.3f}"


def test_ten_minutes_on_tflm_without_drift():
    """30000 steps (10 min at a 20 ms hop) of both int8 forms on TFLM: the last minute agrees with the int8
    whole-window model as well as the first does, and external and internal state stay in step."""
    model = prepared("ds_cnn_stream", filters=16)  # 60000 invokes: a narrow DS-CNN keeps them quick
    w, bins, segment = 49, model.input_shape[-1], 150  # a class every 3 s
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 12, 30000 // segment)
    feats = class_streams(labels, segment, bins, seed=9).reshape(-1, bins)
    calibration = class_streams(np.arange(12), w + 60, bins, seed=10)
    ends = np.arange(w - 1, w + 60, 6)
    whole = TflmModel(to_tflite_int8(with_frequency_mean_pool(reparameterize(model)),
                                     np.concatenate([windows_ending_at(f, ends, w) for f in calibration])))
    runs = {mode: TflmStreamingModel(to_tflite_streaming(to_streaming(model, mode), calibration)).run(feats)
            for mode in ("external", "internal")}
    # Frames whose window lies inside one segment, in the first and the last minute.
    inside = np.arange(len(feats))[(np.arange(len(feats)) % segment) >= w - 1]
    errors = {mode: [] for mode in runs}
    for minute in (inside[inside < 3000], inside[inside >= len(feats) - 3000]):
        ref = whole.predict(windows_ending_at(feats, minute, w))
        for mode, y in runs.items():
            assert np.mean(y[minute].argmax(1) == ref.argmax(1)) >= 0.99, mode
            errors[mode].append(np.abs(y[minute] - ref).mean())
        assert np.mean(runs["external"][minute].argmax(1) == runs["internal"][minute].argmax(1)) >= 0.99
    for mode, (first, last) in errors.items():  # int8 noise, not growing: within an output step of the first
        assert last <= 1.25 * first + 0.01, f"{mode}: mean |stream - whole| {first:.4f} -> {last:.4f}"


def test_strided_model_streams_several_frames_per_step():
    # Time stride 2 in the stem: a step is 2 frames; 50 frames tile (50 - 10 is even).
    model = prepared("ds_cnn_stream", train=False, first_stride=(2, 2), input_shape=(50, 10))
    spec = streaming_spec(model)
    assert spec.frames_per_step == 2 and spec.states[0] == ("stem_conv", (8, 12, 1))
    feats = streams(1, 50 + 40, 10, seed=5)
    y = run_stream(to_streaming(model), feats)[0]
    ends = np.arange(1, 90, 2)
    ref = model.predict(windows_ending_at(feats[0], ends[ends >= 49], 50), verbose=0)
    assert np.abs(y[ends >= 49] - ref).max() < 1e-5
    with pytest.raises(StreamingError, match="stem_conv.*49 frames do not tile"):
        to_streaming(create_model("ds_cnn_stream", first_stride=(2, 2), input_shape=(49, 10)))


def test_causal_padding_equals_the_model_on_the_first_window_only():
    model = prepared("ds_cnn_stream", train=False, time_padding="causal")
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
    model = prepared("ds_cnn_stream", train=False)
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


def test_valid_repconv_model_trains_across_fit_calls():
    """RepCNN's 'valid' branches once crashed oneDNN's graph rewrite on a second fit() at 40 bins
    (zero-padded small kernels, or sliced outputs, before BN); they now read exactly their input window."""
    model = create_model("repcnn_s_stream", input_shape=(49, 40))
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = class_streams(np.arange(24) % 12, 49, 40, seed=11), np.arange(24) % 12
    for _ in range(3):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.all(np.isfinite(model.predict(x, verbose=0)))


@pytest.mark.parametrize("name", ["ds_cnn_stream", "repcnn_s_stream", "bc_resnet_1_stream"])
def test_frequency_mean_pool_is_the_same_function_quantized_like_the_stream(name):
    model = prepared(name, train=False)
    split = with_frequency_mean_pool(model)
    x = streams(2, model.input_shape[1], model.input_shape[-1], seed=3)
    assert np.abs(split.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-5
    # No average pool over frequency is left: the means are depthwise convs, as in the streaming graph.
    pools = [layer for layer in split.layers if isinstance(layer, keras.layers.AveragePooling2D)]
    assert all(layer.pool_size[1] == 1 for layer in pools)
    if name != "bc_resnet_1_stream":  # BC-ResNet's map has one frequency bin left at the pool
        assert dict(streaming_spec(model).states)["pool"][1] == 1  # a frequency mean per buffered frame
