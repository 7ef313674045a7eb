"""Re-parameterization: the folded single-branch graph computes what the multi-branch one does."""
from __future__ import annotations

import numpy as np
import pytest

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError, ExportError
from kws_zoo.device.flatbuffer import read_tflite, tflite_ops
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export.reparam import max_abs_diff, reparameterize
from kws_zoo.export.tflite import to_tflite_int8
from kws_zoo.layers.rep_conv import RepConv2D
from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D
from kws_zoo.models import create_model, get_entry, list_models

from helpers import ARENA, custom_layers, randomize_bn

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_reparam")

L = keras.layers
SHAPE = (49, 10)
# The 2-D RepCNN family (repcnn_wake, the 1-D MatchboxNet-shaped form, is checked in tests/export/test_esphome.py).
REP_PRESETS = [n for n in list_models("repcnn_*") if get_entry(n).family == "repcnn" and not n.endswith("_plain")]


def graph_signature(model: keras.Model) -> list[tuple]:
    """(type, name, output shape, weight shapes) per layer, in graph order."""
    return [(type(layer).__name__, layer.name, layer.output_shape, [tuple(w.shape) for w in layer.weights])
            for layer in model.layers]


def tflite_op_sequence(model_bytes: bytes) -> list[tuple]:
    """(op, output shapes) per operator, in execution order."""
    fb = read_tflite(model_bytes)
    sub = fb.Subgraphs(0)
    seq = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = fb.OperatorCodes(op.OpcodeIndex())
        shapes = [tuple(sub.Tensors(op.Outputs(j)).ShapeAsNumpy()) for j in range(op.OutputsLength())]
        seq.append((max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), shapes))
    return seq


def features(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


@pytest.fixture(scope="module", params=REP_PRESETS)
def repcnn(request):
    keras.utils.set_random_seed(0)
    model = create_model(request.param, input_shape=SHAPE)
    randomize_bn(model)
    return request.param, model, reparameterize(model)


def test_repcnn_folds_exactly_into_standard_layers(repcnn):
    name, model, plain = repcnn
    x = features(8, 1)
    assert max_abs_diff(model, plain, x) <= 1e-4
    assert custom_layers(model) and not custom_layers(plain)
    assert not any(isinstance(layer, L.BatchNormalization) for layer in plain.layers)
    assert plain.count_params() < model.count_params()


def test_the_check_is_sensitive(repcnn):
    # Negative control: perturb one branch's BN after folding; the comparison must notice.
    _, model, plain = repcnn
    x = features(4, 2)
    bn = next(layer for layer in model.layers if isinstance(layer, RepConv2D)).bns[1]
    saved = bn.get_weights()
    bn.beta.assign(bn.beta + 0.5)
    try:
        assert max_abs_diff(model, plain, x) > 1e-3  # 10x the tolerance above
    finally:
        bn.set_weights(saved)


def test_repcnn_and_plain_twin_deploy_as_the_same_graph(repcnn):
    name, model, plain = repcnn
    twin = reparameterize(create_model(f"{name}_plain", input_shape=SHAPE))
    assert graph_signature(twin) == graph_signature(plain)
    rep = features(32, 3)
    plain_tfl = to_tflite_int8(plain, rep, num_samples=32)
    twin_tfl = to_tflite_int8(twin, rep, num_samples=32)
    assert tflite_ops(plain_tfl) == tflite_ops(twin_tfl)
    assert tflite_op_sequence(plain_tfl) == tflite_op_sequence(twin_tfl)

    # The folded model runs int8 on TFLM and agrees with float.
    tflm = TflmModel(plain_tfl, arena_size=ARENA)
    x = features(4, 4)
    y = plain(x, training=False).numpy()
    out = tflm.predict(x)
    assert out.shape == y.shape
    assert np.abs(out - y).max() < 0.1 * np.abs(y).max() + 0.05


# Each RepConv2D form on its own, on odd and even spatial sizes (stride 2 pads unevenly on even sizes).
CASES = {
    "regular_3x3_identity": dict(filters=6, kernel_size=3, branch_kernels=((1, 1), (3, 1), (1, 3))),
    "regular_3x3_stride2": dict(filters=6, kernel_size=3, strides=2, branch_kernels=((1, 1), (3, 1), (1, 3))),
    "regular_1x1_identity": dict(filters=6, kernel_size=1, branch_kernels=()),
    "depthwise_3x3_identity": dict(filters=None, kernel_size=3, depthwise=True, branch_kernels=((1, 1),)),
    "depthwise_3x3_stride2": dict(filters=None, kernel_size=3, depthwise=True, strides=2,
                                  branch_kernels=((1, 1), (3, 1))),
    "depthwise_3x3_freq_stride2": dict(filters=None, kernel_size=3, depthwise=True, strides=(1, 2),
                                       branch_kernels=((1, 1), (1, 3))),
    "temporal_5x1_depthwise": dict(filters=None, kernel_size=(5, 1), depthwise=True,
                                   branch_kernels=((3, 1), (1, 1))),
    "temporal_5x1_dilated": dict(filters=None, kernel_size=(5, 1), depthwise=True, dilation_rate=(3, 1),
                                 branch_kernels=((3, 1), (1, 1))),
    "regular_3x3_dilated": dict(filters=6, kernel_size=3, dilation_rate=2, branch_kernels=((1, 1),)),
}
HAS_IDENTITY = {"regular_3x3_identity", "regular_1x1_identity", "depthwise_3x3_identity",
                "temporal_5x1_depthwise", "temporal_5x1_dilated", "regular_3x3_dilated"}


@pytest.mark.parametrize("spatial", [(13, 7), (12, 8)])
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rep_conv_form_folds_exactly(case, spatial):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((*spatial, 6))
    model = keras.Model(inputs, RepConv2D(**CASES[case], name="rep")(inputs))
    randomize_bn(model, seed=2)
    layer = model.get_layer("rep")
    assert (layer.identity_bn is not None) == (case in HAS_IDENTITY)
    plain = reparameterize(model, check=False)
    (folded,) = plain.layers[1:]
    unequal_strides = layer.strides[0] != layer.strides[1]
    assert type(folded) is (L.Conv2D if not layer.depthwise
                            else StridedDepthwiseConv2D if unequal_strides else L.DepthwiseConv2D)
    assert folded.kernel_size == layer.kernel_size and folded.dilation_rate == layer.dilation_rate
    x = np.random.default_rng(3).standard_normal((3, *spatial, 6)).astype(np.float32)
    y = model(x, training=False).numpy()
    assert folded.output_shape[1:] == y.shape[1:]
    assert max_abs_diff(model, plain, x) <= 1e-5 * max(1.0, np.abs(y).max())


def test_rep_conv_config_round_trip_and_validation():
    layer = RepConv2D(8, (5, 1), dilation_rate=(2, 1), branch_kernels=((3, 1), (1, 1)), identity=False,
                      kernel_regularizer="l2", name="r")
    clone = RepConv2D.from_config(layer.get_config())
    cfg = clone.get_config()
    assert cfg == layer.get_config()
    assert (cfg["kernel_size"], cfg["dilation_rate"], cfg["branch_kernels"]) == ((5, 1), (2, 1), ((3, 1), (1, 1)))
    with pytest.raises(ConfigError, match="odd"):
        RepConv2D(4, 4)
    with pytest.raises(ConfigError, match="must fit"):
        RepConv2D(4, (3, 1), branch_kernels=((1, 3),))
    with pytest.raises(ConfigError, match="dilation"):
        RepConv2D(4, 3, strides=2, dilation_rate=2)


def test_branch_kernels_start_different():
    # One unseeded initializer instance reused for every branch gives (3,1) and (1,3) the same values.
    inputs = keras.Input((9, 9, 4))
    layer = RepConv2D(None, 3, depthwise=True, branch_kernels=((3, 1), (1, 3)))
    layer(inputs)
    _, tall, wide = (k.numpy() for k in layer.kernels)
    assert not np.allclose(tall.ravel(), wide.ravel())


def test_reparameterize_rejects_non_functional_models():
    seq = keras.Sequential([keras.Input((4, 4, 1)), L.Conv2D(2, 3)])
    with pytest.raises(ExportError, match="functional"):
        reparameterize(seq)
