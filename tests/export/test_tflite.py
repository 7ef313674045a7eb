"""Export (float / full-integer .tflite), quantization helpers and profiling (MACs, ops)."""
from __future__ import annotations

import numpy as np
import pytest

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import DeviceError, ExportError
from kws_zoo.device import flatbuffer
from kws_zoo.device.flatbuffer import quant_params
from kws_zoo.device.quant import dequantize, quantize
from kws_zoo.export import tflite as export
from kws_zoo.models import profile

from helpers import tiny_cnn

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_export")

L = keras.layers


@pytest.fixture(scope="module")
def cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    return tiny_cnn()


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(64, 49, 10, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def int8_bytes(cnn, feats) -> bytes:
    return export.to_tflite_int8(cnn, feats, num_samples=64)


def _litert(model_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()
    return interp


def test_int8_export_is_full_integer(int8_bytes):
    assert flatbuffer.tflite_ops(int8_bytes) == ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                              "MEAN"]
    assert flatbuffer.float_ops(int8_bytes) == []
    interp = _litert(int8_bytes)
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8


def test_quant_params_match_interpreter_and_calibration(int8_bytes, feats):
    in_s, in_zp, out_s, out_zp = quant_params(int8_bytes)
    interp = _litert(int8_bytes)
    assert (in_s, in_zp) == pytest.approx(interp.get_input_details()[0]["quantization"])
    assert (out_s, out_zp) == pytest.approx(interp.get_output_details()[0]["quantization"])
    assert in_s > 0 and out_s > 0 and -128 <= in_zp <= 127 and -128 <= out_zp <= 127
    # Input range comes from the calibration features: it must cover them, give or take a step.
    lo, hi = in_s * (-128 - in_zp), in_s * (127 - in_zp)
    assert lo <= feats.min() + in_s and hi >= feats.max() - in_s
    assert hi - lo < 1.1 * (feats.max() - feats.min()) + 2 * in_s


def test_float_export_matches_keras_and_has_no_quant_params(cnn, feats):
    fb = export.to_tflite_float(cnn)
    with pytest.raises(DeviceError, match="not quantized"):
        quant_params(fb)
    interp = _litert(fb)
    interp.set_tensor(interp.get_input_details()[0]["index"], feats[:1])
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, cnn(feats[:1]).numpy(), atol=1e-5)


def test_int8_export_rejects_float_islands():
    inp = keras.Input((8,))
    model = keras.Model(inp, L.Dense(4)(L.Lambda(tf.sin)(inp)))  # SIN has no int8 kernel
    with pytest.raises(ExportError, match="SIN"):
        export.to_tflite_int8(model, np.random.default_rng(0).random((16, 8)))


def test_representative_accepts_batches_tuples_and_missing_channel(cnn, feats):
    ds = tf.data.Dataset.from_tensor_slices((feats[..., 0], np.zeros(64))).batch(10)
    examples = export.representative_examples(cnn, ds, num_samples=25)
    assert len(examples) == 25 and all(e.shape == (1, 49, 10, 1) for e in examples)
    np.testing.assert_array_equal(examples[12], feats[12:13])
    with pytest.raises(ExportError, match="empty"):
        export.representative_examples(cnn, [], num_samples=5)
    with pytest.raises(ExportError, match="does not fit"):
        export.representative_examples(cnn, np.zeros((3, 49, 9)), num_samples=5)


def test_quantize_rounds_half_away_from_zero_and_saturates():
    q = quantize(np.array([2.5, -2.5, 0.49, 1000.0, -1000.0]), scale=1.0, zero_point=0)
    np.testing.assert_array_equal(q, [3, -3, 0, 127, -128])
    assert q.dtype == np.int8
    x = np.linspace(-1.0, 1.0, 101, dtype=np.float32)
    scale, zp = 2.0 / 255, -1
    err = np.abs(dequantize(quantize(x, scale, zp), scale, zp) - x)
    assert err.max() <= scale / 2 + 1e-7


def test_count_macs_hand_computed():
    sub_in = keras.Input((4, 4, 5))
    sub = keras.Model(sub_in, L.Conv2D(10, 1, groups=5)(sub_in))  # kernel 1x1x1x10 per position
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3)(inp)                                        # 6*6*4 * 3*3*3   = 3888
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)  # 6*6*8 * 3*3   = 2592
    x = L.BatchNormalization()(x)                                  # not a MAC layer
    x = L.SeparableConv2D(5, 3)(x)                      # 4*4*8*9 = 1152 dw + 4*4*8*5 = 640 pw
    x = sub(x)                                                     # 4*4*10 * 1      = 160
    x = L.Reshape((16, 10))(x)
    x = L.Dense(3)(x)                                              # 16 * 10*3       = 480
    x = L.GlobalAveragePooling1D()(x)
    model = keras.Model(inp, L.Dense(2)(x))                        # 3*2             = 6
    assert profile.count_macs(model) == 3888 + 2592 + 1152 + 640 + 160 + 480 + 6
    assert profile.count_params_macs(model) == (model.count_params(), 8918)


def test_count_macs_sees_through_pruning_wrapper():
    import tensorflow_model_optimization as tfmot

    inp = keras.Input((6, 6, 2))
    x = L.Conv2D(3, 3)(inp)                   # 4*4*3 * 3*3*2 = 864
    model = keras.Model(inp, L.Dense(5)(L.Flatten()(x)))  # 48*5 = 240
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model)
    assert profile.count_macs(model) == profile.count_macs(pruned) == 864 + 240


def test_tflite_readers_reject_non_tflite():
    with pytest.raises(DeviceError, match="TFL3"):
        flatbuffer.tflite_ops(b"definitely not a flatbuffer")
