"""MatchboxNet: sizes against the paper, the ternary budget, dilation, and cost bookkeeping."""
from __future__ import annotations

import numpy as np
import pytest

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError
from kws_zoo.device.flatbuffer import tflite_ops
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export.tflite import to_tflite_int8
from kws_zoo.layers.ternary_pointwise import export_form, ternary_layers, ternary_multiplications_avoided
from kws_zoo.models import create_model, get_entry
from kws_zoo.models.matchboxnet import MatchboxNetConfig
from kws_zoo.models.profile import count_macs

from helpers import calibrate_bn

MFCC = (98, 64)  # 64 MFCC as in the paper, 1 s at a 10 ms hop


def _trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name, paper", [("matchboxnet_3x1x64", 77_000), ("matchboxnet_3x2x64", 93_000),
                                         ("matchboxnet_6x2x64", 140_000)])
def test_parameter_counts_match_the_paper(name, paper):
    # The paper counts trainable parameters for the 30 words of Speech Commands v1.
    assert get_entry(name).config.default_input_shape == MFCC
    model = create_model(name, input_shape=MFCC, num_classes=30)
    assert abs(_trainable(model) - paper) / paper < 0.05


def test_3x1x64_is_77k_at_12_classes_too():
    model = create_model("matchboxnet_3x1x64", input_shape=MFCC, num_classes=12)
    assert abs(_trainable(model) - 77_000) / 77_000 < 0.05  # 74.9k
    assert abs(model.count_params() - 77_000) / 77_000 < 0.05  # 76.4k with BN moving statistics


def test_deep_ternary_spends_the_dense_budget():
    dense = create_model("matchboxnet_3x1x64", input_shape=MFCC, num_classes=12)
    deep = create_model("matchboxnet_3x1x64_ternary_deep", input_shape=MFCC, num_classes=12)
    shallow = create_model("matchboxnet_3x1x64_ternary", input_shape=MFCC, num_classes=12)
    assert abs(_trainable(deep) - _trainable(dense)) / _trainable(dense) < 0.02  # measured -0.4%
    assert _trainable(shallow) < 0.8 * _trainable(dense) and len(ternary_layers(shallow)) == 3  # the B blocks
    assert len(ternary_layers(deep)) == 1 + 6 * 3 + 1  # prologue, every sub-block, epilogue


@pytest.mark.parametrize("name", ["matchboxnet_3x1x64", "matchboxnet_3x2x64"])
def test_ternary_variant_removes_exactly_the_separable_pointwise_weights(name):
    dense = create_model(name, input_shape=MFCC, num_classes=12)
    ternary = create_model(f"{name}_ternary", input_shape=MFCC, num_classes=12)
    removed = sum(int(np.prod(dense.get_layer(t.name).kernel.shape)) for t in ternary_layers(ternary))
    assert _trainable(dense) - _trainable(ternary) == removed
    # The export form is the dense architecture again (same MACs); the training graph's MACs omit
    # the ternary layers, by exactly the multiplications they avoid.
    avoided = ternary_multiplications_avoided(ternary, MFCC)
    assert count_macs(export_form(ternary)) == count_macs(dense)
    assert count_macs(dense) - count_macs(ternary) == avoided > 0


def test_dilated_epilogue_exports_as_one_dilated_depthwise_and_runs_on_tflm():
    keras.utils.set_random_seed(0)
    model = create_model("matchboxnet_3x1x64", input_shape=(40, 16), num_classes=4, channels=16,
                         prologue_channels=16, epilogue_channels=16)
    x = np.random.default_rng(0).normal(size=(32, 40, 16)).astype(np.float32)
    calibrate_bn(model, x)
    model_bytes = to_tflite_int8(model, x, num_samples=32)
    ops = tflite_ops(model_bytes)
    # SPACE_TO_BATCH_ND around a depthwise conv is how TFLM went wrong (see matchboxnet's docstring).
    assert "DEPTHWISE_CONV_2D" in ops and "SPACE_TO_BATCH_ND" not in ops and "BATCH_TO_SPACE_ND" not in ops
    y = model(x, training=False).numpy()
    out = TflmModel(model_bytes, arena_size=1 << 20).predict(x)
    assert np.abs(out - y).max() < 0.1 * np.abs(y).max()


def test_config_validation():
    with pytest.raises(ConfigError, match="positive"):
        MatchboxNetConfig(epilogue_dilation=0)
    with pytest.raises(ConfigError, match="ternary_sparsity"):
        MatchboxNetConfig(ternary_sparsity=1.0)
    with pytest.raises(ConfigError, match="ternary_scope"):
        MatchboxNetConfig(ternary_scope="prologue")


def test_ternary_scope_blocks_keeps_prologue_and_epilogue_dense():
    model = create_model("matchboxnet_3x1x64_ternary", input_shape=MFCC, num_classes=12)  # the preset's scope
    names = [t.name for t in ternary_layers(model)]
    assert names == ["b1_r1_pw", "b2_r1_pw", "b3_r1_pw"]
    assert isinstance(model.get_layer("prologue_pw"), keras.layers.Conv2D)
    everywhere = create_model("matchboxnet_3x1x64_ternary", input_shape=MFCC, num_classes=12, ternary_scope="all")
    assert len(ternary_layers(everywhere)) == 5 and _trainable(everywhere) < _trainable(model)
