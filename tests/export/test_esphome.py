"""ESPHome micro_wake_word: the two-class model becomes one exact sigmoid; the loader's constraints are checked and
each one, broken, gives an error naming it; the v2 manifest likewise."""
import numpy as np
import pytest

from kws_zoo.core.errors import ExportError
from kws_zoo.export import esphome
from kws_zoo.export.reparam import max_abs_diff, reparameterize
from kws_zoo.export.streaming import to_streaming
from kws_zoo.export.streaming_tflite import to_tflite_streaming
from kws_zoo.models import create_model

from helpers import randomize_bn

FRAMES = (98, 40)


def _model(**kwargs):
    return create_model("matchboxnet_wake", input_shape=FRAMES, num_classes=2, **kwargs)


def _calibration(high=25.0):
    return np.random.default_rng(0).uniform(0, high, (2, 300, FRAMES[1])).astype(np.float32)


def _convert(model, *, binary=True, anchor=True, mode="internal", output_type="uint8", int8=True):
    model = esphome.with_wake_probability(reparameterize(model)) if binary else reparameterize(model)
    streams = esphome.anchor_input_range(_calibration()) if anchor else _calibration(10.0)
    return to_tflite_streaming(to_streaming(model, mode), streams if int8 else None, output_type=output_type)


@pytest.fixture(scope="module")
def good():
    return _convert(_model())


def test_with_wake_probability_is_the_two_class_softmax_exactly():
    model = _model()
    x = _calibration()[:, :FRAMES[0]]
    logits = np.asarray(model(x, training=False), np.float64)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    binary = esphome.with_wake_probability(model, wake_index=1)
    assert np.allclose(np.asarray(binary(x, training=False))[:, 0], softmax[:, 1], atol=1e-6)
    with pytest.raises(ExportError, match="Dense of 2 units"):
        esphome.with_wake_probability(create_model("matchboxnet_wake", input_shape=FRAMES, num_classes=3))


def test_the_wake_model_fits_esphome(good):
    assert esphome.model_problems(good) == []
    esphome.check_model(good)


@pytest.mark.parametrize("kwargs, problem", [
    (dict(output_type="int8"), "output is not uint8"),
    (dict(binary=False), "output shape [1, 2]"),
    (dict(anchor=False), "input quantization"),
    (dict(mode="external"), "inputs and"),
    (dict(int8=False), "input is not int8"),
])
def test_each_broken_model_constraint_is_named(kwargs, problem):
    with pytest.raises(ExportError, match="does not fit ESPHome") as err:
        esphome.check_model(_convert(_model(), **kwargs))
    assert problem in str(err.value)


def test_ops_outside_the_resolver_and_wrong_bins_are_named():
    normalised = _model(feature_stats=(np.full(FRAMES[1], 10.0), np.full(FRAMES[1], 4.0)))
    problems = esphome.model_problems(_convert(normalised))
    assert any("SUB" in p and "not in ESPHome's op resolver" in p for p in problems)
    narrow = create_model("matchboxnet_wake", input_shape=(98, 32), num_classes=2)
    streams = esphome.anchor_input_range(_calibration())[:, :, :32]
    stream = to_streaming(esphome.with_wake_probability(reparameterize(narrow)), "internal")
    problems = esphome.model_problems(to_tflite_streaming(stream, streams, output_type="uint8"))
    assert any("input shape [1, 3, 32]" in p for p in problems)


def test_too_many_resource_variables_are_named(good, monkeypatch):
    monkeypatch.setattr(esphome, "MAX_RESOURCE_VARIABLES", 2)
    assert any("resource variables; ESPHome makes room for 2" in p for p in esphome.model_problems(good))


def _manifest(**micro):
    m = esphome.make_manifest(wake_word="Hey Zoo", model_file="hey_zoo.tflite", cutoff=0.9, window=5,
                              arena_bytes=17000)
    m["micro"].update(micro)
    return m


def test_manifest_is_v2_with_the_measured_arena_and_margin():
    m = _manifest()
    assert m["version"] == 2 and m["type"] == "micro" and m["micro"]["feature_step_size"] == 10
    assert m["micro"]["tensor_arena_size"] == 19456  # 17000 * 1.1, up to whole KB
    esphome.check_manifest(m, arena_bytes=17000)


@pytest.mark.parametrize("change, problem", [
    (lambda m: m.update(type="openWakeWord"), "'type'"),
    (lambda m: m.update(version=1), "'version'"),
    (lambda m: m.pop("wake_word"), "'wake_word'"),
    (lambda m: m.update(website="not a url"), "'website'"),
    (lambda m: m.update(trained_languages="en"), "'trained_languages'"),
    (lambda m: m["micro"].update(probability_cutoff=1.5), "probability_cutoff"),
    (lambda m: m["micro"].update(sliding_window_size=0), "sliding_window_size"),
    (lambda m: m["micro"].update(feature_step_size=20), "feature_step_size 20 ms"),
    (lambda m: m["micro"].update(tensor_arena_size=1000), "below the measured arena"),
    (lambda m: m["micro"].update(minimum_esphome_version="soon"), "minimum_esphome_version"),
])
def test_each_broken_manifest_field_is_named(change, problem):
    m = _manifest()
    change(m)
    with pytest.raises(ExportError, match="not a valid ESPHome") as err:
        esphome.check_manifest(m, arena_bytes=17000)
    assert problem in str(err.value)


def test_repcnn_wake_folds_exactly_into_its_plain_twins_graph():
    rep = create_model("repcnn_wake", input_shape=FRAMES, num_classes=2)
    randomize_bn(rep)
    plain = reparameterize(rep)
    twin = reparameterize(create_model("repcnn_wake_plain", input_shape=FRAMES, num_classes=2))
    assert max_abs_diff(rep, plain, _calibration()[:, :FRAMES[0]]) < 1e-4
    assert [type(x).__name__ for x in plain.layers] == [type(x).__name__ for x in twin.layers]
