"""One parametrised test over every registered model, plus registry behaviour."""
import dataclasses

import numpy as np
import pytest

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ModelError
from kws_zoo.device.flatbuffer import depthwise_op_strides
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export.tflite import to_tflite_int8
from kws_zoo.layers.rep_conv import RepConv2D
from kws_zoo.models import create_model, get_entry, list_models, model_config

INPUT = {"feature": (49, 10), "raw": (16000,)}


def _input_shape(name):
    cfg = get_entry(name).config
    if getattr(cfg, "default_input_shape", None) is not None:
        return tuple(cfg.default_input_shape)
    return INPUT["raw"] if getattr(cfg, "raw_waveform", False) else INPUT["feature"]


def test_registry_lists_and_filters():
    names = list_models()
    assert names == sorted(names) and "ds_cnn" in names
    assert list_models("ds_cnn*") == [n for n in names if n.startswith("ds_cnn")]
    assert list_models("no_such_*") == []


def test_unknown_model_and_field_are_clear_errors():
    with pytest.raises(ModelError, match="unknown model 'ds_cnm'"):
        create_model("ds_cnm")
    with pytest.raises(ModelError, match="unknown config field"):
        create_model("ds_cnn", filterz=3)


def test_overrides_change_the_architecture():
    small = create_model("ds_cnn", filters=16)
    assert small.count_params() < create_model("ds_cnn").count_params()
    assert model_config("ds_cnn", filters=16).filters == 16


def unequal_depthwise_strides(model) -> list[tuple[int, int]]:
    """Sorted strides of the model's depthwise convs whose row and column strides differ, one per conv op
    (a training-form RepConv2D convolves each branch)."""
    found = []
    for layer in model.layers:
        convs = len(layer.branch_sizes) if isinstance(layer, RepConv2D) and layer.depthwise else int(
            isinstance(layer, keras.layers.DepthwiseConv2D))
        if convs and layer.strides[0] != layer.strides[1]:
            found += [tuple(layer.strides)] * convs
    return sorted(found)


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_trains_round_trips_exports_and_runs_on_tflm(name, tmp_path):
    shape = _input_shape(name)
    stats = None if len(shape) == 1 else (np.full(shape[-1], 0.5), np.full(shape[-1], 2.0))
    model = create_model(name, input_shape=shape, num_classes=12, feature_stats=stats)
    x = np.random.default_rng(0).standard_normal((4, *shape)).astype(np.float32)

    # One training step (gradients of every layer on this CPU's kernels): every trainable weight moves.
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy([0, 1, 2, 3], model(x, training=True), from_logits=True)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads)
    before = [v.numpy() for v in model.trainable_variables]
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, model.trainable_variables))
    assert all(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))

    y = model(x, training=False).numpy()
    assert y.shape == (4, 12) and np.all(np.isfinite(y))

    # Config round trip: the registry's dataclass and Keras' own.
    cfg = get_entry(name).config
    assert type(cfg)(**dataclasses.asdict(cfg)) == cfg
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x, training=False).numpy(), y, atol=1e-5)

    # Save and load.
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), y, atol=1e-5)

    # int8 TFLite on the real TFLM interpreter: top-1 mostly agrees with float on random inputs.
    # Calibration includes the compared inputs: untrained activations on noise are heavy-tailed, and a model that
    # pools few positions (the wake models: 2) shows any clipped outlier in its logits (45% of range, measured).
    rep = np.concatenate([x, np.random.default_rng(1).standard_normal((28, *shape)).astype(np.float32)])
    model_bytes = to_tflite_int8(model, rep, num_samples=32)
    # Every unequal-stride depthwise conv exports as one strided DEPTHWISE_CONV_2D (not a conv and a slice).
    assert sorted(s for s in depthwise_op_strides(model_bytes) if s[0] != s[1]) == unequal_depthwise_strides(model)
    tflm = TflmModel(model_bytes)
    out = tflm.predict(x)
    assert out.shape == (4, 12) and tflm.arena_bytes > 0
    close = np.abs(out - y).max() < 0.25 * (np.abs(y).max() + 1e-3) + 0.1
    assert close, f"int8 max error {np.abs(out - y).max():.3f} of range {np.abs(y).max():.3f}"
