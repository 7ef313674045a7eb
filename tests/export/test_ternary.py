"""Constant sparse random ternary pointwise layer: determinism, sparsity, checkpoints, export, int8."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError, ExportError
from kws_zoo.device.flatbuffer import op_name, quant_params, read_tflite
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export.ternary import exact_ternary_int8, to_tflite_int8_ternary
from kws_zoo.export.tflite import to_tflite_int8
from kws_zoo.layers.ternary_pointwise import (TernaryPointwise, export_form, ternary_layers, ternary_matrix,
                                              ternary_multiplications_avoided)
from kws_zoo.models import create_model

from helpers import calibrate_bn

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_ternary")

L = keras.layers


def test_same_seed_gives_identical_matrix_in_a_new_process():
    code = ("import hashlib, sys; from kws_zoo.layers.ternary_pointwise import ternary_matrix; "
            "sys.stdout.write(hashlib.sha256(ternary_matrix(7, 48, 96, 0.6).tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == hashlib.sha256(ternary_matrix(7, 48, 96, 0.6).tobytes()).hexdigest()
    assert not np.array_equal(ternary_matrix(7, 48, 96, 0.6), ternary_matrix(8, 48, 96, 0.6))
    assert not np.array_equal(ternary_matrix(7, 48, 96, 0.6), ternary_matrix(7, 48, 96, 0.5))


@pytest.mark.parametrize("shape", [(64, 128), (128, 64), (7, 5), (1, 1)])
@pytest.mark.parametrize("sparsity", [0.0, 0.33, 0.5, 0.9])
def test_values_are_ternary_with_exact_sparsity(shape, sparsity):
    m = ternary_matrix(0, *shape, sparsity)
    assert m.shape == shape and m.dtype == np.float32
    assert set(np.unique(m)) <= {-1.0, 0.0, 1.0}
    n = m.size
    assert int((m == 0).sum()) == int(round(sparsity * n))
    if n >= 100:
        assert abs((m == 0).mean() - sparsity) <= 0.01
        nonzero = m[m != 0]
        assert 0.4 < (nonzero > 0).mean() < 0.6  # both signs, in about equal numbers


def test_bad_sparsity_is_rejected():
    with pytest.raises(ConfigError, match="sparsity"):
        ternary_matrix(0, 4, 4, 1.0)
    with pytest.raises(ConfigError, match="sparsity"):
        TernaryPointwise(4, sparsity=-0.1)


def _tiny(time_steps=10) -> keras.Model:
    inp = keras.Input((time_steps, 1, 8))
    x = TernaryPointwise(16, seed=3, sparsity=0.5, name="tern_a")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = TernaryPointwise(24, seed=4, sparsity=0.25, use_scale=True, name="tern_b")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, L.Dense(5, name="dense")(x))


def test_matrix_is_a_constant_not_a_weight_and_config_round_trips():
    model = _tiny()
    a, b = ternary_layers(model)
    assert a.weights == [] and [w.name for w in b.weights] == ["tern_b/scale:0"]
    assert not isinstance(a._kernel, tf.Variable)
    np.testing.assert_array_equal(a._kernel.numpy()[0, 0], ternary_matrix(3, 8, 16, 0.5))
    clone = TernaryPointwise.from_config(b.get_config())
    assert clone.get_config() == b.get_config()
    clone.build((None, 10, 1, 16))
    np.testing.assert_array_equal(clone.matrix, b.matrix)


def _stored_arrays_h5(group) -> dict[str, tuple]:
    found = {}
    group.visititems(lambda name, obj: found.__setitem__(name, obj.shape)
                     if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" else None)
    return found


def _assert_only_model_weights(shapes: list[tuple], model: keras.Model):
    """Stored float arrays are exactly the model's weights (by shape multiset): no ternary matrix
    ([8, 16], [16, 24] or as 1x1 kernels), which is not a weight."""
    expected = sorted(tuple(w.shape) for w in model.weights)
    assert sorted(tuple(s) for s in shapes) == expected
    for shape in shapes:
        assert int(np.prod(shape)) not in (8 * 16, 16 * 24)


def test_checkpoints_hold_no_ternary_matrix(tmp_path):
    model = _tiny()
    x = np.random.default_rng(0).normal(size=(2, 10, 1, 8)).astype(np.float32)
    y = model(x).numpy()

    model.save_weights(str(tmp_path / "w.h5"))
    with h5py.File(tmp_path / "w.h5") as f:
        stored = _stored_arrays_h5(f)
        assert not _stored_arrays_h5(f["tern_a"])
        assert list(_stored_arrays_h5(f["tern_b"]).values()) == [(24,)]  # the learned scale only
    _assert_only_model_weights(list(stored.values()), model)

    model.save_weights(str(tmp_path / "ckpt"))  # TF checkpoint format
    variables = dict(tf.train.list_variables(str(tmp_path / "ckpt")))
    del variables["_CHECKPOINTABLE_OBJECT_GRAPH"]  # the object graph (strings), not a variable
    assert [n for n in variables if n.endswith("kernel/.ATTRIBUTES/VARIABLE_VALUE")] == \
        ["layer_with_weights-2/kernel/.ATTRIBUTES/VARIABLE_VALUE"]  # the Dense's; no ternary kernel
    _assert_only_model_weights([tuple(s) for s in variables.values()], model)

    model.save(str(tmp_path / "m.keras"))
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        config = json.loads(z.read("config.json"))
        z.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as f:
        _assert_only_model_weights(list(_stored_arrays_h5(f).values()), model)
    layer_cfg = {layer["config"]["name"]: layer["config"] for layer in config["config"]["layers"]}
    assert {k: layer_cfg["tern_a"][k] for k in ("filters", "seed", "sparsity")} == \
        {"filters": 16, "seed": 3, "sparsity": 0.5}
    loaded = keras.models.load_model(str(tmp_path / "m.keras"), compile=False)  # regenerates it
    np.testing.assert_allclose(loaded(x).numpy(), y, atol=1e-6)


def test_multiplications_avoided_hand_computed():
    model = _tiny(time_steps=10)
    # tern_a: 10 positions * 8 in * 16 out = 1280, no scale.
    # tern_b: 10 * 16 * 24 = 3840 dense multiplications, minus 10 * 24 = 240 for the scale.
    assert ternary_multiplications_avoided(model, (10, 1, 8)) == 1280 + 3840 - 240
    inp = keras.Input((None, 1, 8))
    flexible = keras.Model(inp, TernaryPointwise(4)(inp))
    assert ternary_multiplications_avoided(flexible, (25, 1, 8)) == 25 * 8 * 4
    assert len(flexible.layers[1].inbound_nodes) == 1  # counting did not grow the caller's graph


@pytest.fixture(scope="module")
def small_ternary():
    """A narrow ternary MatchboxNet with calibrated, sign-mixed BatchNorm (fast to convert)."""
    keras.utils.set_random_seed(0)
    model = create_model("matchboxnet_3x1x64_ternary", input_shape=(40, 16), num_classes=6,
                         channels=16, prologue_channels=24, epilogue_channels=24, ternary_scope="all")
    x = np.random.default_rng(0).normal(size=(64, 40, 16)).astype(np.float32)
    calibrate_bn(model, x)
    return model, x


def test_export_form_is_plain_and_matches(small_ternary):
    model, x = small_ternary
    plain = export_form(model)
    assert not ternary_layers(plain)
    for layer in ternary_layers(model):
        kernel = plain.get_layer(layer.name)
        assert type(kernel) is L.Conv2D
        np.testing.assert_array_equal(kernel.get_weights()[0][0, 0], layer.matrix)
    y = model(x, training=False).numpy()
    assert np.abs(y).max() > 0.1  # not a vacuous comparison
    np.testing.assert_allclose(plain(x, training=False).numpy(), y, atol=1e-5)


def _conv_filters(model_bytes: bytes) -> list[np.ndarray]:
    """int8 filter [out, kh, kw, in] of every CONV_2D, read from the flatbuffer."""
    m = read_tflite(model_bytes)
    sub = m.Subgraphs(0)
    out = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        if op_name(m, op.OpcodeIndex()) != "CONV_2D":
            continue
        t = sub.Tensors(op.Inputs(1))
        data = np.array(m.Buffers(t.Buffer()).DataAsNumpy()).view(np.int8)
        out.append(data.reshape(t.ShapeAsNumpy()))
    return out


def test_int8_ternary_weights_are_exactly_minus_one_zero_one(small_ternary):
    model, x = small_ternary
    plain_bytes = to_tflite_int8(export_form(model), x, num_samples=64)
    ternary_bytes = to_tflite_int8_ternary(model, x, num_samples=64)
    matrices = [layer.matrix for layer in ternary_layers(model)]
    filters = _conv_filters(ternary_bytes)
    exact = [f for f in filters if set(np.unique(f)) <= {-1, 0, 1}]
    assert len(exact) == len(matrices) == 5  # prologue, 3 blocks, epilogue
    for f, m in zip(exact, matrices):
        w = f[:, 0, 0, :].T.astype(int)  # [in, out]
        assert np.array_equal(w != 0, m != 0)
        # Each column is the matrix column times +-1 (BN's gamma sign): products all share a sign.
        assert np.array_equal(np.abs((w * m).sum(0)), np.abs(m).sum(0))
    # The other convs (residual, epilogue 1x1) are ordinary int8 weights, and the plain export
    # stores the ternary ones at +-127: the rewrite is what made them literal -1/0/+1.
    assert all(np.abs(f).max() == 127 for f in filters if not any(f is e for e in exact))
    assert sum(set(np.unique(f)) <= {-1, 0, 1} for f in _conv_filters(plain_bytes)) == 0

    # Same computation up to the bias rounding (see ternary_tflite): on the real TFLM interpreter
    # the error against float stays within 2x that of the unmodified int8 model (measured 1.5x).
    arena = 1 << 20  # explicit: TFLM crashes instead of failing when an auto-arena probe is too small
    a, b = TflmModel(plain_bytes, arena_size=arena), TflmModel(ternary_bytes, arena_size=arena)
    y = model(x, training=False).numpy()
    out_scale = quant_params(ternary_bytes)[2]
    err_plain = np.abs(a.predict(x) - y).mean() / out_scale
    err_ternary = np.abs(b.predict(x) - y).mean() / out_scale
    assert err_ternary < 2 * err_plain + 0.5 and err_ternary < 4  # in output LSB


def test_rewrite_refuses_models_without_the_matrix(small_ternary):
    model, x = small_ternary
    plain_bytes = to_tflite_int8(export_form(model), x, num_samples=16)
    with pytest.raises(ExportError, match="no matching CONV_2D"):
        exact_ternary_int8(plain_bytes, [ternary_matrix(99, 16, 24, 0.5)])
