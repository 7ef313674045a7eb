"""Unequal-stride depthwise convs: exact on every CPU kernel set, one strided DEPTHWISE_CONV_2D when exported."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from kws_zoo.core.compat import keras, tf
from kws_zoo.device.flatbuffer import depthwise_op_strides, read_tflite, tflite_ops
from kws_zoo.device.runtime import LiteRtModel, TflmModel
from kws_zoo.export.tflite import to_tflite_float, to_tflite_int8
from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D, depthwise_conv2d, with_portable_strides
from kws_zoo.models.saving import load_keras


def reference_depthwise(x: np.ndarray, kernel: np.ndarray, strides, padding: str) -> np.ndarray:
    """Direct loops over output positions: what TensorFlow's documentation defines the op to be."""
    (sh, sw), (kh, kw, c, m) = strides, kernel.shape
    _, h, w, _ = x.shape
    if padding == "SAME":
        oh, ow = -(-h // sh), -(-w // sw)
        ph = max((oh - 1) * sh + kh - h, 0)
        pw = max((ow - 1) * sw + kw - w, 0)
        x = np.pad(x, [(0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)])
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, c * m), np.float64)
    for i, j in itertools.product(range(oh), range(ow)):
        patch = x[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]  # [B, kh, kw, C]
        out[:, i, j] = np.einsum("bhwc,hwcm->bcm", patch, kernel).reshape(len(x), -1)
    return out


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("strides", [(1, 2), (2, 1), (1, 3), (2, 2)])
@pytest.mark.parametrize("size", [(7, 8), (6, 5), (1, 9)])
def test_depthwise_conv2d_equals_the_definition(size, strides, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *size, 3)).astype(np.float32)
    for kernel_shape in [(1, 3), (3, 3), (3, 1)]:
        if padding == "VALID" and (kernel_shape[0] > size[0] or kernel_shape[1] > size[1]):
            continue
        kernel = rng.standard_normal((*kernel_shape, 3, 2)).astype(np.float32)
        got = depthwise_conv2d(tf.constant(x), tf.constant(kernel), strides, padding).numpy()
        want = reference_depthwise(x.astype(np.float64), kernel.astype(np.float64), strides, padding)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def _freq_strided_model(layer_cls=StridedDepthwiseConv2D) -> keras.Model:
    inputs = keras.Input((12, 8, 4))
    x = layer_cls((1, 3), strides=(1, 2), padding="same", use_bias=True, name="freq_dw")(inputs)
    x = layer_cls((3, 3), strides=(2, 1), padding="valid", activation="relu", name="time_dw")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(x))


def test_layer_trains_and_matches_the_definition():
    keras.utils.set_random_seed(0)
    model = _freq_strided_model()
    x = np.random.default_rng(1).standard_normal((8, 12, 8, 4)).astype(np.float32)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.get_layer("freq_dw").get_weights()[0].copy()
    model.fit(x, np.arange(8) % 5, epochs=1, batch_size=4, verbose=0)  # gradients on any CPU kernel set
    assert not np.allclose(before, model.get_layer("freq_dw").get_weights()[0])
    kernel, bias = model.get_layer("freq_dw").get_weights()
    y = model.get_layer("freq_dw")(x).numpy()
    np.testing.assert_allclose(y, reference_depthwise(x, kernel, (1, 2), "SAME") + bias, atol=1e-5)


def test_export_has_one_strided_op_per_layer_and_equals_keras():
    keras.utils.set_random_seed(0)
    model = _freq_strided_model()
    x = np.random.default_rng(2).standard_normal((1, 12, 8, 4)).astype(np.float32)
    float_bytes = to_tflite_float(model)
    assert tflite_ops(float_bytes) == ["DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE"]
    assert read_tflite(float_bytes).Subgraphs(0).OperatorsLength() == 4
    assert depthwise_op_strides(float_bytes) == [(1, 2), (2, 1)]
    np.testing.assert_allclose(LiteRtModel(float_bytes).predict(x), model(x).numpy(), atol=1e-4)

    rep = np.random.default_rng(3).standard_normal((16, 12, 8, 4)).astype(np.float32)
    int8_bytes = to_tflite_int8(model, rep, num_samples=16)
    assert depthwise_op_strides(int8_bytes) == [(1, 2), (2, 1)]
    assert "STRIDED_SLICE" not in tflite_ops(int8_bytes) and "PAD" not in tflite_ops(int8_bytes)
    out, y = TflmModel(int8_bytes).predict(x), model(x).numpy()
    assert np.abs(out - y).max() < 0.1 * np.abs(y).max()


def test_runs_saved_with_the_plain_layer_load_portable(tmp_path):
    """.keras runs from before this layer hold keras DepthwiseConv2D with strides (1, 2)."""
    keras.utils.set_random_seed(0)
    old = _freq_strided_model(keras.layers.DepthwiseConv2D)
    path = str(tmp_path / "old.keras")
    old.save(path)
    loaded = load_keras(path)
    assert [type(loaded.get_layer(n)) for n in ("freq_dw", "time_dw")] == [StridedDepthwiseConv2D] * 2
    x = np.random.default_rng(4).standard_normal((2, 12, 8, 4)).astype(np.float32)
    kernel, bias = old.get_layer("freq_dw").get_weights()
    np.testing.assert_allclose(loaded.get_layer("freq_dw")(x).numpy(),
                               reference_depthwise(x, kernel, (1, 2), "SAME") + bias, atol=1e-5)
    for a, b in zip(old.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    inputs = keras.Input((4, 4, 2))
    equal = keras.Model(inputs, keras.layers.DepthwiseConv2D(3, strides=2)(inputs))
    assert with_portable_strides(equal) is equal  # equal strides run natively everywhere


def test_whole_zoo_path_runs_without_onednn():
    """Unequal-stride presets build, train a step and re-parameterize under TensorFlow's portable kernels
    (what AMD and ARM CPUs run), whichever kernels this test process has."""
    script = (
        "import numpy as np\n"
        "from kws_zoo.core.compat import keras, tf\n"
        "from kws_zoo.models import create_model\n"
        "from kws_zoo.reparam import reparameterize\n"
        "x = tf.random.normal([2, 12, 8, 3])\n"
        "try:\n"
        "    tf.nn.depthwise_conv2d(x, tf.ones([1, 3, 3, 1]), (1, 1, 2, 1), 'SAME')\n"
        "    raise SystemExit('TensorFlow ran unequal strides natively: oneDNN is not off')\n"
        "except tf.errors.InvalidArgumentError:\n"
        "    pass\n"
        "for name, shape in [('bc_resnet_1', (98, 40)), ('repcnn_s_stream', (49, 10)), ('sinc_kws_small', (16000,))]:\n"
        "    model = create_model(name, input_shape=shape, num_classes=4)\n"
        "    model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
        "    data = np.random.default_rng(0).standard_normal((4, *shape)).astype(np.float32)\n"
        "    model.fit(data, np.arange(4), epochs=1, batch_size=2, verbose=0)\n"
        "    reparameterize(model)\n"
        "print('ok')\n")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
