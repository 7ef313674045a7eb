"""BC-ResNet: the paper's sizes and shapes, SubSpectral Normalization, and the folded export form."""
from __future__ import annotations

import numpy as np
import pytest

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ModelError
from kws_zoo.device.flatbuffer import tflite_ops
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export.reparam import max_abs_diff, reparameterize
from kws_zoo.export.tflite import to_tflite_int8
from kws_zoo.layers.subspectral_norm import SubSpectralNorm
from kws_zoo.models import create_model, get_entry

from helpers import ARENA, custom_layers, randomize_bn

L = keras.layers
SHAPE = (98, 40)
# Kim et al. 2021, Table 2: parameters at 12 classes on 40 log-mel bins.
PAPER_PARAMS = {"bc_resnet_1": 9.2e3, "bc_resnet_1_5": 17.2e3, "bc_resnet_2": 27.3e3, "bc_resnet_3": 54.2e3,
                "bc_resnet_6": 188e3, "bc_resnet_8": 321e3}


def trainable_params(model: keras.Model) -> int:
    # The paper counts what PyTorch's parameters() holds: weights and BN affines, not BN running stats.
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_parameter_counts_match_the_paper(name):
    assert tuple(get_entry(name).config.default_input_shape) == SHAPE
    model = create_model(name, input_shape=SHAPE, num_classes=12)
    assert trainable_params(model) == pytest.approx(PAPER_PARAMS[name], rel=0.05)


def test_bc_resnet_1_shapes_follow_the_paper():
    model = create_model("bc_resnet_1", input_shape=SHAPE)
    shape = lambda layer: model.get_layer(layer).output_shape[1:]  # noqa: E731
    assert shape("head_relu") == (98, 20, 16)  # 5x5 conv, stride 2 in frequency only
    # (stage, channels, bins): frequency halves in the first block of stages 2 and 3 only.
    for s, (channels, bins) in enumerate([(8, 20), (12, 10), (16, 5), (20, 5)]):
        assert shape(f"s{s}b0_relu") == (98, bins, channels)
        assert shape(f"s{s}b0_freq_mean") == (98, 1, channels)
        assert model.get_layer(f"s{s}b0_time_dw").dilation_rate == (2 ** s, 1)
        assert model.get_layer(f"s{s}b0_freq_dw").kernel_size == (1, 3)  # the paper's 3x1 over frequency
    assert [s for s in range(4) if f"s{s}b1_residual" in [la.name for la in model.layers]] == [0, 1, 2, 3]
    assert "s0b0_residual" not in [la.name for la in model.layers]  # transition blocks have no identity
    assert shape("tail_dw") == (98, 1, 20)  # 5x5 depthwise unpadded in frequency: 5 bins -> 1
    assert shape("tail_relu") == (98, 1, 32)
    with pytest.raises(ModelError, match="multiple of 40"):
        create_model("bc_resnet_1", input_shape=(49, 10))


def test_ssn_normalizes_each_sub_band_on_its_own():
    # Four bands with very different offsets and scales: SSN in training mode brings every (band, channel)
    # to zero mean / unit variance; one BN per channel leaves the bands apart.
    rng = np.random.default_rng(0)
    offsets = np.repeat([-3.0, 0.0, 2.0, 6.0], 3)[None, None, :, None]
    scales = np.repeat([0.5, 1.0, 2.0, 4.0], 3)[None, None, :, None]
    x = (rng.standard_normal((16, 20, 12, 2)) * scales + offsets).astype(np.float32)
    ssn, bn = SubSpectralNorm(4, momentum=0.0), L.BatchNormalization(momentum=0.0)
    bands = lambda y: np.asarray(y).reshape(16, 20, 4, 3, 2)  # noqa: E731
    y_ssn, y_bn = bands(ssn(x, training=True)), bands(bn(x, training=True))
    np.testing.assert_allclose(y_ssn.mean(axis=(0, 1, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y_ssn.std(axis=(0, 1, 3)), 1.0, atol=1e-2)
    assert np.ptp(y_bn.mean(axis=(0, 1, 3)), axis=0).min() > 1.0
    # Moving statistics are per (band, channel) too (momentum 0: the batch's own).
    band_means = ssn.bn.moving_mean.numpy()[0, 0, :, 0, :]
    np.testing.assert_allclose(band_means[:, 0], [-3.0, 0.0, 2.0, 6.0], atol=0.3)


def test_ssn_folds_exactly_and_round_trips():
    inputs = keras.Input((7, 20, 3))
    model = keras.Model(inputs, SubSpectralNorm(5, name="ssn")(inputs))
    randomize_bn(model, seed=4)
    x = np.random.default_rng(5).standard_normal((4, 7, 20, 3)).astype(np.float32)
    plain = reparameterize(model)
    assert [type(la) for la in plain.layers[1:]] == [L.BatchNormalization]
    assert max_abs_diff(model, plain, x) <= 1e-6
    scale, shift = model.get_layer("ssn").fused_scale_shift()
    np.testing.assert_allclose(model(x, training=False).numpy(), x * scale + shift, atol=1e-5)
    assert np.ptp(scale[::4], axis=0).min() > 0  # bands really differ (bins 0, 4, ... are in 5 bands)
    clone = keras.Model.from_config(model.get_config())
    assert clone.get_layer("ssn").get_config() == model.get_layer("ssn").get_config()
    with pytest.raises(ModelError, match="sub-bands"):
        SubSpectralNorm(3)(keras.Input((7, 20, 3)))


def test_folded_bc_resnet_matches_and_runs_int8_on_tflm():
    keras.utils.set_random_seed(0)
    model = create_model("bc_resnet_1", input_shape=SHAPE)
    randomize_bn(model)
    plain = reparameterize(model)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, *SHAPE)).astype(np.float32)
    assert max_abs_diff(model, plain, x) <= 1e-4
    assert custom_layers(model) and not custom_layers(plain)
    model_bytes = to_tflite_int8(plain, rng.standard_normal((32, *SHAPE)).astype(np.float32), num_samples=32)
    # Swish is LOGISTIC + MUL, SSN is MUL + ADD, the dilated time conv adds SPACE/BATCH_ND: all TFLM ops.
    assert {"LOGISTIC", "MUL", "ADD", "DEPTHWISE_CONV_2D", "CONV_2D"} <= set(tflite_ops(model_bytes))
    tflm = TflmModel(model_bytes, arena_size=ARENA)
    y = plain(x, training=False).numpy()
    out = tflm.predict(x)
    assert out.shape == (4, 12)
    assert np.abs(out - y).max() < 0.1 * np.abs(y).max() + 0.05
