"""Pruning (kws_zoo.compress.pruning): the per-layer policy, schedules that reach their target, the masks in the
stripped model and in its int8 .tflite, block sparsity, BC-ResNet-1 with its StridedDepthwiseConv2D layers, and
the .keras round trip.

The models are small re-parameterized DS-CNNs (16 frames x 10 bins, 32 channels, 2 blocks: 1024-weight pointwise
kernels, 288-weight depthwise ones) fitted on random data for 20 steps; the assertions are about masks, not about
accuracy."""
from __future__ import annotations

import os

import numpy as np
import pytest

from kws_zoo.compress.config import PruneConfig
from kws_zoo.compress.pruning import (PruneLowMagnitude, kernel_sparsity, prune_model, pruned_layer_names,
                                      pruning_callbacks, pruning_schedule, schedule_steps, strip_pruning)
from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError, ModelError
from kws_zoo.device.flatbuffer import weight_sparsity
from kws_zoo.export.tflite import to_tflite_float, to_tflite_int8
from kws_zoo.layers.plain import to_plain
from kws_zoo.layers.rep_conv import RepConv2D
from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D
from kws_zoo.models import create_model
from kws_zoo.models.saving import load_keras
from kws_zoo.reparam import reparameterize

import tensorflow_model_optimization as tfmot  # noqa: E402  (after kws_zoo.core.compat: Keras 2 first)

from helpers import run_layer_test, tiny_cnn

# Module-scoped fixtures train models: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_pruning")

STEPS, BATCH = 20, 8
TOLERANCE = 0.01  # "within 1 point" of the requested sparsity
INPUT = (16, 10)

# Two schedules, two depthwise policies: polynomial 0 -> 75% with depthwise kernels kept dense (the default),
# constant 50% with depthwise kernels pruned too. frequency 4 over 20 steps: masks change at steps 1, 5, 9.
CASES = {
    "polynomial": (PruneConfig(sparsity=0.75, schedule="polynomial", frequency=4), False),
    "constant": (PruneConfig(sparsity=0.5, schedule="constant", frequency=4), True),
}


def _ds_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    return reparameterize(create_model("ds_cnn", input_shape=INPUT, num_classes=4, filters=32, blocks=2))


def _data(shape, steps: int = STEPS, batch: int = BATCH, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(steps * batch, *shape)).astype(np.float32), rng.integers(0, classes, steps * batch)


def _fit(model: keras.Model, shape, steps: int = STEPS, batch: int = BATCH, callbacks=(), eager: bool = False):
    x, y = _data(shape, steps, batch, classes=model.output_shape[-1])
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=eager)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0,
              callbacks=pruning_callbacks() + list(callbacks))


def _layer_of(tensor_name: str) -> str:
    """The Keras layer of a .tflite filter tensor: the converter names it '<model>/<layer>/<op>'."""
    return tensor_name.split("/")[1]


class _MaskLog(keras.callbacks.Callback):
    """Fraction of zeros of one wrapped layer's mask after every batch (the mask, not the kernel: the optimizer
    step after the masking may move masked weights until the next forward pass re-masks them)."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self.sparsity = name, []

    def on_train_batch_end(self, batch, logs=None):
        mask = self.model.get_layer(f"prune_low_magnitude_{self.name}").pruning_vars[0][1].numpy()
        self.sparsity.append(float(np.mean(mask == 0)))


@pytest.fixture(scope="module")
def ds_cnn() -> keras.Model:
    return _ds_cnn()


@pytest.fixture(scope="module", params=sorted(CASES))
def pruned(request, ds_cnn):
    """(case, cfg, depthwise, wrapped model after the fit, its mask log for block0_pw_conv, stripped model)."""
    cfg, depthwise = CASES[request.param]
    wrapped = prune_model(ds_cnn, cfg, STEPS, depthwise=depthwise)
    log = _MaskLog("block0_pw_conv")
    _fit(wrapped, INPUT, callbacks=[log])
    return request.param, cfg, depthwise, wrapped, log.sparsity, strip_pruning(wrapped)


# ----------------------------------------------------------------------------------------------------------------
# Policy and schedule arithmetic (no training)
# ----------------------------------------------------------------------------------------------------------------

def test_policy_keeps_first_and_last_and_depthwise_by_default(ds_cnn):
    assert pruned_layer_names(ds_cnn, PruneConfig()) == ["block0_pw_conv", "block1_pw_conv"]
    assert pruned_layer_names(ds_cnn, PruneConfig(), depthwise=True) == [
        "block0_dw", "block0_pw_conv", "block1_dw", "block1_pw_conv"]
    every = PruneConfig(keep_first=False, keep_last=False)
    assert pruned_layer_names(ds_cnn, every) == ["stem_conv", "block0_pw_conv", "block1_pw_conv", "logits"]
    assert pruned_layer_names(ds_cnn, PruneConfig(skip=("block1_*",)), depthwise=True) == [
        "block0_dw", "block0_pw_conv"]


def test_policy_errors(ds_cnn):
    with pytest.raises(ConfigError, match="matches no layer"):
        pruned_layer_names(ds_cnn, PruneConfig(skip=("blokc0_*",)))
    # tiny_cnn: conv (first), depthwise, dense (last): nothing is left under the default policy.
    with pytest.raises(ConfigError, match="no layer to prune"):
        prune_model(tiny_cnn(), PruneConfig(), STEPS)
    tiny = tiny_cnn()
    assert pruned_layer_names(tiny, PruneConfig(), depthwise=True) == [
        layer.name for layer in tiny.layers if type(layer) is keras.layers.DepthwiseConv2D]
    inp = keras.Input((8, 8, 4))
    multi_branch = keras.Model(inp, keras.layers.Conv2D(4, 1)(RepConv2D(4, 3, name="rep")(keras.layers.Conv2D(4, 1)(inp))))
    with pytest.raises(ModelError, match="re-parameterized"):
        prune_model(multi_branch, PruneConfig(), STEPS)
    with pytest.raises(ConfigError, match="total_steps"):
        prune_model(ds_cnn, PruneConfig(), 1)
    with pytest.raises(ModelError, match="already under pruning"):
        prune_model(prune_model(ds_cnn, PruneConfig(), STEPS), PruneConfig(), STEPS)


def test_frozen_layers_are_not_pruned():
    model = _ds_cnn()
    model.get_layer("block1_pw_conv").trainable = False
    assert pruned_layer_names(model, PruneConfig()) == ["block0_pw_conv"]


@pytest.mark.parametrize("total_steps", [2, 3, 7, 20, 101, 1000])
@pytest.mark.parametrize("cfg", [PruneConfig(), PruneConfig(frequency=1, begin_fraction=0.2, end_fraction=0.9),
                                 PruneConfig(frequency=7, end_fraction=1.0), PruneConfig(schedule="constant")],
                         ids=["default", "every_step", "to_the_end", "constant"])
def test_last_mask_update_applies_the_target(cfg, total_steps):
    begin, end, frequency = schedule_steps(cfg, total_steps)
    assert 1 <= begin < end <= total_steps and (end - begin) % frequency == 0 and frequency <= cfg.frequency
    schedule = pruning_schedule(cfg, total_steps)
    should_prune, sparsity = schedule(np.int64(end))
    assert bool(should_prune) and float(sparsity) == pytest.approx(cfg.sparsity)
    assert not any(bool(schedule(np.int64(step))[0]) for step in range(end + 1, total_steps + 1))


# ----------------------------------------------------------------------------------------------------------------
# (a) schedules reach their target; (b) the int8 .tflite holds the same sparsity
# ----------------------------------------------------------------------------------------------------------------

def test_schedule_reaches_target(pruned, ds_cnn):
    case, cfg, depthwise, wrapped, _, stripped = pruned
    names = pruned_layer_names(ds_cnn, cfg, depthwise=depthwise)
    assert [type(l) for l in stripped.layers] == [type(l) for l in ds_cnn.layers]
    assert [l.name for l in stripped.layers] == [l.name for l in ds_cnn.layers]
    measured = kernel_sparsity(stripped)
    print(f"\n{case}: kernel sparsity after strip {measured}")
    for name, sparsity in measured.items():
        if name in names:
            assert abs(sparsity - cfg.sparsity) <= TOLERANCE, (case, name, sparsity)
        else:
            assert sparsity == 0.0, (case, name, sparsity)
    assert "stem_conv" not in names and "logits" not in names
    assert all(int(layer.pruning_step.numpy()) == STEPS for layer in wrapped.layers
               if isinstance(layer, PruneLowMagnitude))


def test_mask_follows_the_schedule_step_by_step(pruned):
    """After batch i (TFMOT's step i + 1) the mask has the schedule's sparsity at the last update step <= i + 1:
    gradual for the polynomial schedule (0 at step 1, the cubic's value at step 5, the target from step 9)."""
    _, cfg, _, _, log, _ = pruned
    schedule = pruning_schedule(cfg, STEPS)
    expected, current = [], 0.0
    for step in range(1, STEPS + 1):
        update, sparsity = schedule(np.int64(step))
        current = float(sparsity) if bool(update) else current
        expected.append(current)
    assert len(log) == STEPS
    np.testing.assert_allclose(log, expected, atol=1 / 1024)
    if cfg.schedule == "polynomial":
        assert 0.0 < log[4] < cfg.sparsity and log[0] == 0.0  # step 5: in between


def test_int8_tflite_has_the_same_sparsity(pruned):
    case, cfg, _, _, _, stripped = pruned
    x, _ = _data(INPUT, steps=4)
    device = weight_sparsity(to_tflite_int8(stripped, x, num_samples=len(x)))
    keras_side = kernel_sparsity(stripped)
    print(f"\n{case}: int8 .tflite filter sparsity {device}")
    assert sorted(_layer_of(name) for name in device) == sorted(keras_side)
    for name, sparsity in device.items():
        float_sparsity = keras_side[_layer_of(name)]
        # int8 zeros are the float zeros plus weights smaller than half a quantization step.
        assert float_sparsity <= sparsity <= float_sparsity + TOLERANCE, (case, name, sparsity, float_sparsity)


def test_float_tflite_has_exactly_the_keras_sparsity(pruned):
    _, _, _, _, _, stripped = pruned
    device = weight_sparsity(to_tflite_float(stripped))
    assert {_layer_of(name): value for name, value in device.items()} == kernel_sparsity(stripped)


# ----------------------------------------------------------------------------------------------------------------
# (c) block sparsity
# ----------------------------------------------------------------------------------------------------------------

def _blocks(kernel: np.ndarray, depthwise: bool, width: int) -> np.ndarray:
    """The kernel as the matrix the module documents, cut into (1, width) blocks: [rows, blocks, width]."""
    rows = kernel.shape[0] * kernel.shape[1] if depthwise else kernel.size // kernel.shape[-1]
    return kernel.reshape(rows, -1, width)


def test_block_sparsity_zeroes_whole_blocks(ds_cnn):
    cfg = PruneConfig(sparsity=0.5, frequency=4, block_size=(1, 4))
    wrapped = prune_model(ds_cnn, cfg, STEPS, depthwise=True)
    _fit(wrapped, INPUT)
    stripped = strip_pruning(wrapped)
    for name in pruned_layer_names(ds_cnn, cfg, depthwise=True):
        layer = stripped.get_layer(name)
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        blocks = _blocks((layer.depthwise_kernel if depthwise else layer.kernel).numpy(), depthwise, 4)
        zero = (blocks == 0).all(-1)
        assert np.array_equal(zero, (blocks == 0).any(-1)), f"{name}: a block is partly zero"
        assert abs(zero.mean() - cfg.sparsity) <= TOLERANCE, (name, zero.mean())


def test_block_masks_equal_tfmot_on_a_dense_kernel():
    """On a 2-D kernel TFMOT's own block pruning runs: the any-rank version must give the same mask."""
    def mlp():
        keras.utils.set_random_seed(3)
        inp = keras.Input((16,))
        x = keras.layers.Dense(32, activation="relu", name="hidden")(keras.layers.Dense(32, name="first")(inp))
        return keras.Model(inp, keras.layers.Dense(4, name="last")(x))

    cfg = PruneConfig(sparsity=0.5, schedule="constant", frequency=1, block_size=(2, 4))
    ours = prune_model(mlp(), cfg, 2)
    reference = mlp()
    theirs = keras.models.clone_model(reference, clone_function=lambda layer: tfmot.sparsity.keras.prune_low_magnitude(
        layer, pruning_schedule=pruning_schedule(cfg, 2), block_size=(2, 4)) if layer.name == "hidden" else layer)
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        _fit(model, (16,), steps=1)  # the mask update of step 1 sees the initial (equal) weights
    mask = {id(m): m.get_layer("prune_low_magnitude_hidden").pruning_vars[0][1].numpy() for m in (ours, theirs)}
    assert mask[id(ours)].mean() == 0.5
    np.testing.assert_array_equal(mask[id(ours)], mask[id(theirs)])


# ----------------------------------------------------------------------------------------------------------------
# (d) BC-ResNet-1, with its StridedDepthwiseConv2D layers
# ----------------------------------------------------------------------------------------------------------------

def test_bc_resnet_1_prunes_strided_depthwise():
    keras.utils.set_random_seed(0)
    model = reparameterize(create_model("bc_resnet_1", num_classes=12))
    strided = [l.name for l in model.layers if type(l) is StridedDepthwiseConv2D]
    assert len(strided) == 2
    assert isinstance(model.get_layer(strided[0]), tfmot.sparsity.keras.PrunableLayer)
    cfg = PruneConfig(sparsity=0.5, frequency=2)
    names = pruned_layer_names(model, cfg, depthwise=True)
    assert set(strided) <= set(names)
    wrapped = prune_model(model, cfg, 4, depthwise=True)
    for name in strided:
        wrapper = wrapped.get_layer(f"prune_low_magnitude_{name}")
        assert type(wrapper.layer) is StridedDepthwiseConv2D and len(wrapper.prunable_weights) == 1
    # Eager: tracing the training step of 42 pruning wrappers takes ~40 s, running 4 steps eagerly ~10 s.
    _fit(wrapped, model.input_shape[1:], steps=4, batch=2, eager=True)
    stripped = strip_pruning(wrapped)
    assert [type(l) for l in stripped.layers] == [type(l) for l in model.layers]
    measured = kernel_sparsity(stripped)
    for name, sparsity in measured.items():
        # every pruned kernel of BC-ResNet-1 has an even size: 50% is exact
        assert sparsity == (0.5 if name in names else 0.0), (name, sparsity)
    x = np.random.default_rng(0).normal(size=(2, *model.input_shape[1:])).astype(np.float32)
    device = weight_sparsity(to_tflite_int8(stripped, x, num_samples=2))
    for name in strided:
        [sparsity] = [v for k, v in device.items() if _layer_of(k) == name]
        assert 0.5 <= sparsity <= 0.5 + TOLERANCE, (name, sparsity)


# ----------------------------------------------------------------------------------------------------------------
# (e) .keras round trips
# ----------------------------------------------------------------------------------------------------------------

def test_stripped_model_keras_round_trip(pruned, tmp_path):
    _, _, _, _, _, stripped = pruned
    path = os.path.join(tmp_path, "pruned.keras")
    stripped.save(path)
    loaded = load_keras(path)
    assert [(type(l), l.name) for l in loaded.layers] == [(type(l), l.name) for l in stripped.layers]
    for a, b in zip(loaded.get_weights(), stripped.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, _ = _data(INPUT, steps=1)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), stripped(x, training=False).numpy())
    assert kernel_sparsity(loaded) == kernel_sparsity(stripped)


def test_wrapped_model_keras_round_trip(pruned, tmp_path):
    """A model under pruning (masks, thresholds, steps, block size, prunable DepthwiseConv2D) saves and loads."""
    _, _, _, wrapped, _, _ = pruned
    path = os.path.join(tmp_path, "wrapped.keras")
    wrapped.save(path)
    loaded = keras.models.load_model(path, compile=False)
    assert [(type(l), l.name) for l in loaded.layers] == [(type(l), l.name) for l in wrapped.layers]
    assert len(loaded.weights) == len(wrapped.weights)
    for a, b in zip(loaded.weights, wrapped.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ----------------------------------------------------------------------------------------------------------------
# The wrapper as a custom layer: the shared contract, and its plain form with trained masks
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("inner", ["depthwise_block", "strided_depthwise"])
def test_wrapper_keeps_the_layer_contract(inner, tmp_path):
    layer = {"depthwise_block": lambda: keras.layers.DepthwiseConv2D(3, padding="same", name="dw"),
             "strided_depthwise": lambda: StridedDepthwiseConv2D(3, strides=(1, 2), padding="same", name="dw")}[inner]()
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, 1, 9, frequency=4)
    run_layer_test(PruneLowMagnitude, dict(layer=layer, pruning_schedule=schedule,
                                           block_size=(1, 4) if inner == "depthwise_block" else (1, 1)),
                   (6, 8, 4), tmp_dir=tmp_path)


def test_plain_form_of_a_pruned_model_is_the_stripped_model(pruned):
    """to_plain (and so reparameterize) of a model under pruning applies the masks as strip_pruning does; only the
    names differ (a plain_layer() keeps its layer's name)."""
    _, _, _, wrapped, _, stripped = pruned
    plain = to_plain(wrapped)
    assert [type(l) for l in plain.layers] == [type(l) for l in stripped.layers]
    for a, b in zip(plain.get_weights(), stripped.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, _ = _data(INPUT, steps=1)
    np.testing.assert_array_equal(plain(x, training=False).numpy(), stripped(x, training=False).numpy())
    # The kernels are already masked (UpdatePruningStep re-masks after every epoch): move every weight, as an
    # optimizer step does, and the plain form must still hold zeros where the mask has them.
    wrapper = wrapped.get_layer("prune_low_magnitude_block0_pw_conv")
    kernel, mask, _ = wrapper.pruning_vars[0]
    saved = kernel.numpy()
    try:
        kernel.assign(saved + 0.5)
        [plain_kernel, *_] = to_plain(wrapped).get_layer(wrapper.name).get_weights()
        np.testing.assert_array_equal(plain_kernel, (saved + 0.5) * mask.numpy())
    finally:
        kernel.assign(saved)
