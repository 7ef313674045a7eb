"""SincConv: band-pass filters with learnable edges, plain-conv export, int8 on TFLM."""
from __future__ import annotations

import numpy as np
import pytest

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export.tflite import to_tflite_int8
from kws_zoo.layers.sinc_conv import SincConv, sinc_to_plain
from kws_zoo.models import create_model
from kws_zoo.models.profile import count_macs

from helpers import calibrate_bn

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_sinc")

SR = 16000


def _layer(**kwargs) -> SincConv:
    layer = SincConv(**{"filters": 8, "kernel_size": 101, "strides": 8, **kwargs})
    layer.build((None, SR, 1, 1))
    return layer


def _response(taps: np.ndarray) -> np.ndarray:
    """|H(f)| at 1 Hz resolution, [SR // 2 + 1, filters]."""
    return np.abs(np.fft.rfft(taps, n=SR, axis=0))


def _set_edges(layer: SincConv, f1, f2) -> None:
    low = (np.asarray(f1, np.float32) - layer.min_low_hz) / 1000
    band = (np.asarray(f2, np.float32) - np.asarray(f1) - layer.min_band_hz) / 1000
    layer.set_weights([low, band])


def test_filters_pass_their_band_and_stop_elsewhere():
    layer = _layer(filters=3)
    edges = [(1000, 3000), (4000, 5000), (600, 1500)]
    _set_edges(layer, *zip(*edges))
    f1, f2 = (e.numpy() for e in layer.band_edges())
    np.testing.assert_allclose(np.stack([f1, f2], 1), edges, atol=1e-3)
    h = _response(layer.taps().numpy())
    for i, (lo, hi) in enumerate(edges):
        # A 101-tap Hamming window smears each edge over about +-4 sr / 101 / 2 = +-320 Hz.
        assert abs(h[(lo + hi) // 2, i] - 1) < 0.02  # unit gain in the pass band
        assert h[: lo - 400, i].max() < 0.01 and h[hi + 400:, i].max() < 0.01


def test_initial_bank_is_mel_spaced_band_pass():
    layer = _layer(filters=40)
    f1, f2 = (e.numpy() for e in layer.band_edges())
    assert f1[0] == pytest.approx(50) and f2[-1] == pytest.approx(SR / 2)
    widths = f2 - f1
    assert np.all(np.diff(f1) > 0) and np.all(np.diff(widths) > 0)  # mel: wider with frequency
    h = _response(layer.taps().numpy())
    peaks = h.argmax(axis=0)
    # The two lowest bands (50 Hz wide, below 150 Hz) are finer than 101 taps resolve: they
    # come out as low-passes. Every other filter peaks inside its band...
    assert np.all((f1[2:] <= peaks[2:]) & (peaks[2:] <= f2[2:]))
    # ...and those starting at 300 Hz or above reject DC.
    away = f1 >= 300
    assert away.sum() == 35 and np.all(h[0, away] < 0.02 * h[peaks[away], away])


def test_cutoffs_are_learnable():
    layer = _layer(filters=8)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 4000, 1, 1)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x)))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert [w.name.split("/")[-1] for w in layer.trainable_weights] == ["low:0", "band:0"]
    for g in grads:
        assert np.all(np.isfinite(g.numpy())) and np.all(g.numpy() != 0)
    before = layer.band_edges()[0].numpy()
    keras.optimizers.SGD(1.0).apply_gradients(zip(grads, layer.trainable_weights))
    assert np.abs(layer.band_edges()[0].numpy() - before).min() > 0


def test_config_round_trip_and_validation():
    layer = _layer(filters=5, strides=10, padding="same")
    clone = SincConv.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ConfigError, match="odd"):
        SincConv(kernel_size=100)


@pytest.fixture(scope="module")
def small():
    keras.utils.set_random_seed(0)
    model = create_model("sinc_kws_small", input_shape=(SR,), num_classes=6)
    rng = np.random.default_rng(0)
    # Edges moved off their initial values, as after training, so the export has to follow them.
    low, band = model.get_layer("sinc").get_weights()
    model.get_layer("sinc").set_weights([low * rng.uniform(0.7, 1.3, low.shape),
                                         band * rng.uniform(0.7, 1.3, band.shape)])
    x = (0.3 * rng.normal(size=(32, SR))).astype(np.float32)
    calibrate_bn(model, x)
    return model, x


def test_plain_export_matches(small):
    model, x = small
    plain = sinc_to_plain(model)
    assert not any(isinstance(layer, SincConv) for layer in plain.layers)
    conv = plain.get_layer("sinc")
    assert type(conv) is keras.layers.Conv2D and conv.kernel.shape == (101, 1, 1, 24)
    y = model(x, training=False).numpy()
    assert np.abs(y).max() > 0.1
    np.testing.assert_allclose(plain(x, training=False).numpy(), y, atol=1e-4)
    # count_macs only sees standard layers: the plain form shows the filterbank's cost.
    assert count_macs(plain) - count_macs(model) == 1590 * 101 * 24


def test_int8_runs_on_tflm(small):
    model, x = small
    tflm = TflmModel(to_tflite_int8(sinc_to_plain(model), x, num_samples=32))
    y = model(x[:8], training=False).numpy()
    out = tflm.predict(x[:8])
    assert out.shape == (8, 6)
    assert np.abs(out - y).max() < 0.15 * np.abs(y).max()
    assert 16000 < tflm.arena_bytes < 128 * 1024  # holds the 16000-sample int8 input
