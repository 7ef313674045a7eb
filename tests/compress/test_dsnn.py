"""Dynamic sparsity: nested masks, exact per-layer sparsity, every level trained by one set of weights, and each
level's model a plain, savable model equal to what the trainer trained."""
from __future__ import annotations

import numpy as np
import pytest

from kws_zoo.compress.config import DsnnConfig
from kws_zoo.compress.dsnn import (fit_dsnn, kernel_attribute, level_bn_statistics, level_masks, set_sparsity,
                                   sparsifiable_layers)
from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError, ModelError
from kws_zoo.export.reparam import reparameterize
from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D
from kws_zoo.models import create_model
from kws_zoo.models.saving import load_keras

from helpers import randomize_bn, tiny_cnn

# The module-scoped fixture trains: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_dsnn")

L = keras.layers
SHAPE = (20, 8, 1)
CLASSES = 4
LEVELS = (0.0, 0.5, 0.7, 0.9)
SPARSE = ["dw", "sdw", "pw", "hidden"]  # the default policy: all but the first conv and the last Dense


def band_model() -> keras.Model:
    """Every kind of sparsifiable layer (conv, depthwise, unequal-stride depthwise, dense) between a first conv and
    a classifier, plus a BatchNormalization the fold would leave (after a depthwise conv feeding a residual)."""
    inp = keras.Input(SHAPE)
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Add(name="residual")([x, y])
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu1")(x)
    x = StridedDepthwiseConv2D((3, 3), strides=(1, 2), padding="same", name="sdw")(x)
    x = L.Conv2D(16, 1, activation="relu", name="pw")(x)
    x = L.AveragePooling2D((SHAPE[0], 1), name="time_mean")(x)  # keeps the frequency axis: where the energy is
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(16, activation="relu", name="hidden")(x)
    return keras.Model(inp, L.Dense(CLASSES, name="logits")(x))


def band_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random features with a learnable rule: class c has louder frequency bins 2c and 2c + 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.standard_normal((n, *SHAPE)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, :, 2 * c:2 * c + 2] *= 1.6
    return x, y.astype(np.int32)


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def level_losses(model: keras.Model, x, y) -> dict[float, float]:
    return {s: float(LOSS(y, set_sparsity(model, s)(x, training=False))) for s in LEVELS}


def kernels(model: keras.Model) -> dict[str, np.ndarray]:
    return {layer.name: getattr(layer, kernel_attribute(layer)).numpy() for layer in model.layers
            if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.Dense))}


@pytest.fixture(scope="module")
def trained():
    """band_model with non-trivial BN statistics, trained with DSNN for 4 epochs; what it was before, too."""
    keras.utils.set_random_seed(0)
    model = band_model()
    randomize_bn(model, seed=1)
    x, y = band_data(512, seed=0)
    xv, yv = band_data(256, seed=1)
    before = {"kernels": kernels(model), "losses": level_losses(model, xv, yv),
              "bn": [w.copy() for w in model.get_layer("bn").get_weights()]}
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(512, seed=0).batch(32)
    history = fit_dsnn(model, DsnnConfig(levels=LEVELS, levels_per_step=3), dataset, epochs=4,
                       optimizer=keras.optimizers.Adam(5e-3), loss=LOSS, validation=(xv, yv))
    return {"model": model, "history": history, "before": before, "val": (xv, yv)}


# --------------------------------------------------------------------------------------------------------------
# Which layers
# --------------------------------------------------------------------------------------------------------------

def test_policy_keeps_first_conv_and_classifier_dense():
    model = band_model()
    assert [layer.name for layer in sparsifiable_layers(model)] == SPARSE
    assert [layer.name for layer in sparsifiable_layers(model, keep_first=False)] == ["stem", *SPARSE]
    assert [layer.name for layer in sparsifiable_layers(model, keep_last=False)] == [*SPARSE, "logits"]


def test_policy_on_reparameterized_bc_resnet():
    """The real target: BC-ResNet-1's inference form, with its unequal-stride depthwise convs."""
    plain = reparameterize(create_model("bc_resnet_1", num_classes=12), check=False)
    names = [layer.name for layer in sparsifiable_layers(plain)]
    every = [layer.name for layer in plain.layers if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.Dense))]
    assert every[0] == "head_conv" and every[-1] == "logits"
    assert names == every[1:-1]
    strided = [layer.name for layer in plain.layers if isinstance(layer, StridedDepthwiseConv2D)]
    assert strided and set(strided) <= set(names)


def test_policy_refuses_training_form_and_nested_models():
    with pytest.raises(ModelError, match="reparameterize"):
        sparsifiable_layers(create_model("bc_resnet_1", num_classes=12))  # SubSpectralNorm: a training-form layer
    inner = tiny_cnn()
    outer = keras.Model(inner.inputs, inner(inner.inputs))
    with pytest.raises(ModelError, match="nested"):
        sparsifiable_layers(outer)


# --------------------------------------------------------------------------------------------------------------
# Masks and switching
# --------------------------------------------------------------------------------------------------------------

def test_masks_nested_and_by_magnitude_for_every_layer():
    keras.utils.set_random_seed(2)
    model = band_model()
    levels = (0.0, 0.25, 0.5, 0.7, 0.9, 0.95)
    masks = level_masks(model, levels)
    weights = kernels(model)
    assert set(masks) == set(levels)
    for name in SPARSE:
        w = np.abs(weights[name])
        for denser, sparser in zip(levels, levels[1:]):
            dense_mask, sparse_mask = masks[denser][name], masks[sparser][name]
            assert dense_mask.shape == w.shape
            assert not np.any(sparse_mask & ~dense_mask), f"{name}: level {sparser} keeps a weight {denser} drops"
        for s in levels:
            kept = masks[s][name]
            assert kept.sum() == w.size - round(s * w.size), (name, s)
            if 0 < kept.sum() < w.size:
                assert w[kept].min() >= w[~kept].max(), f"{name} at {s}: a dropped weight outweighs a kept one"
    assert masks[0.0]["dw"].all()


def test_set_sparsity_exact_per_layer_dense_elsewhere():
    keras.utils.set_random_seed(3)
    model = band_model()
    randomize_bn(model)
    original = [w.copy() for w in model.get_weights()]
    for s in LEVELS:
        sparse = set_sparsity(model, s)
        assert sparse is not model
        assert [(type(a), a.name) for a in sparse.layers] == [(type(b), b.name) for b in model.layers]
        got = kernels(sparse)
        for name, w in kernels(model).items():
            zeros = int(np.sum(got[name] == 0.0))
            if name in SPARSE:
                assert zeros == round(s * w.size), (name, s, zeros, w.size)
                kept = got[name] != 0.0
                np.testing.assert_array_equal(got[name][kept], w[kept])
            else:  # the first conv and the classifier: untouched
                assert zeros == 0, (name, s)
                np.testing.assert_array_equal(got[name], w)
        for name in ("stem", "bn", "hidden", "logits"):  # biases and BN statistics are copied, never masked
            layer = model.get_layer(name)
            for a, b in zip(sparse.get_layer(name).get_weights()[-1:], layer.get_weights()[-1:]):
                np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), original):  # the input model is left as it was
        np.testing.assert_array_equal(a, b)


def test_set_sparsity_zero_equals_dense_model():
    keras.utils.set_random_seed(4)
    model = tiny_cnn()
    randomize_bn(model)
    x = np.random.default_rng(0).standard_normal((8, 49, 10, 1)).astype(np.float32)
    np.testing.assert_array_equal(set_sparsity(model, 0.0)(x, training=False), model(x, training=False))


def test_level_model_survives_keras_save_load(tmp_path):
    keras.utils.set_random_seed(5)
    model = band_model()
    randomize_bn(model)
    sparse = set_sparsity(model, 0.7)
    path = str(tmp_path / "level70.keras")
    sparse.save(path)
    loaded = load_keras(path)
    assert [(type(a), a.name) for a in loaded.layers] == [(type(b), b.name) for b in sparse.layers]
    for a, b in zip(loaded.get_weights(), sparse.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, _ = band_data(8, seed=2)
    np.testing.assert_array_equal(loaded(x, training=False), sparse(x, training=False))


def test_bad_levels_and_settings_raise():
    model = band_model()
    for level in (1.0, -0.1):
        with pytest.raises(ConfigError, match="sparsity level"):
            set_sparsity(model, level)
    data = tf.data.Dataset.from_tensor_slices(band_data(8, seed=0)).batch(8)
    with pytest.raises(ConfigError, match="mask_update_steps"):
        fit_dsnn(model, DsnnConfig(), data, epochs=1, optimizer="adam", loss=LOSS, mask_update_steps=0)
    only_ends = keras.Model(model.inputs, model.get_layer("stem").output)
    with pytest.raises(ModelError, match="no layer to sparsify"):
        fit_dsnn(only_ends, DsnnConfig(), data, epochs=1, optimizer="adam", loss=LOSS)


# --------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------

def test_training_changes_weights_and_every_level_improves(trained):
    model, before = trained["model"], trained["before"]
    after = kernels(model)
    for name, w in before["kernels"].items():
        assert not np.allclose(after[name], w), f"{name} did not move"
    losses = level_losses(model, *trained["val"])
    # From scratch, 4 epochs: the dense level's loss falls to 0.05-0.3 of chance, the 90% level's (7 of 72 depthwise
    # weights left) to 0.77-0.85 (measured, seeds 0-2).
    assert losses[0.0] < 0.5 * before["losses"][0.0], (before["losses"], losses)
    for s in LEVELS:
        assert losses[s] < 0.95 * before["losses"][s], (s, before["losses"][s], losses[s])
    # Training history: every level's loss fell from the first epoch to the last, on training and validation data.
    history = trained["history"].history
    for s in LEVELS:
        for key in (f"loss_{s:g}", f"val_loss_{s:g}"):
            assert history[key][-1] < history[key][0], (key, history[key])


def test_batchnorm_trains_and_each_level_gets_its_own_statistics(trained):
    """BN's gamma and beta train with the shared weights; level_bn_statistics gives each level the population
    statistics of its own BN inputs (a sparser level shifts them), set_sparsity applies them, and folding BN
    afterwards keeps the level's zeros and its outputs."""
    model, (xv, _) = trained["model"], trained["val"]
    bn = model.get_layer("bn")
    assert bn.trainable and not np.allclose(bn.gamma.numpy(), trained["before"]["bn"][0])
    batches = [xv[:128], xv[128:]]
    stats = {s: level_bn_statistics(model, s, batches) for s in LEVELS}
    for s in LEVELS:
        level = set_sparsity(model, s, bn_stats=stats[s])
        h = keras.Model(level.inputs, level.get_layer("bn").input)(xv, training=False).numpy()
        np.testing.assert_allclose(stats[s]["bn"][0], h.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(level.get_layer("bn").moving_variance.numpy(), h.var(axis=(0, 1, 2)),
                                   rtol=1e-3, atol=1e-5)
        folded = reparameterize(level)  # this BN follows an Add and stays; the folding path is the same call
        np.testing.assert_allclose(folded(xv).numpy(), level(xv, training=False).numpy(), rtol=1e-4, atol=1e-4)
        for name in ("sdw", "pw"):
            assert np.mean(kernels(folded)[name] == 0) == pytest.approx(s, abs=0.02), (s, name)
    assert not np.allclose(stats[0.0]["bn"][1], stats[0.9]["bn"][1])


def test_trained_levels_are_the_deployed_models(trained):
    """What the trainer computed per level (kernels masked on the fly) is what set_sparsity's models compute, and
    the masks the trainer ends with are level_masks of the final weights."""
    model, trainer = trained["model"], trained["history"].model
    masks = level_masks(model, LEVELS)
    for name, ranks, keep in zip(trainer.layer_names, trainer.ranks, trainer.keep):
        for j, s in enumerate(LEVELS):
            np.testing.assert_array_equal(ranks.numpy() < int(keep[j]), masks[s][name])
    xv, yv = trained["val"]
    reported = trainer.evaluate(xv, yv, batch_size=32, return_dict=True, verbose=0)
    deployed = level_losses(model, xv, yv)
    for s in LEVELS:
        assert reported[f"loss_{s:g}"] == pytest.approx(deployed[s], rel=1e-4, abs=1e-6), s


def test_every_step_visits_densest_and_sparsest(trained):
    """levels_per_step=2: only the two ends are ever visited (the middle levels' training loss stays 0); with 3 of
    4 levels per step (the fixture) every level was visited in every epoch. Also runs step-counted mask updates."""
    history = trained["history"].history
    assert all(v > 0 for s in LEVELS for v in history[f"loss_{s:g}"])
    keras.utils.set_random_seed(6)
    model = band_model()
    data = tf.data.Dataset.from_tensor_slices(band_data(64, seed=3)).batch(16)
    ends = fit_dsnn(model, DsnnConfig(levels=LEVELS, levels_per_step=2), data, epochs=1, optimizer="adam",
                    loss=LOSS, mask_update_steps=3).history
    assert ends["loss_0"][0] > 0 and ends["loss_0.9"][0] > 0
    assert ends["loss_0.5"] == [0.0] and ends["loss_0.7"] == [0.0]


def test_sparsity_ramps_up_over_the_first_half_then_holds(trained):
    """DsnnConfig.ramp_fraction (0.5): each level's training mask starts dense and reaches the level's sparsity
    (cubic in the step) halfway through; evaluation and set_sparsity always use the final levels."""
    trainer = trained["history"].model
    assert trainer.ramp_steps == 0.5 * 4 * 16  # 4 epochs of 512 / 32 batches
    saved = int(trainer.optimizer.iterations.numpy())
    size = trainer.sizes[0]
    try:
        for step, share in [(0, 0.0), (trainer.ramp_steps // 2, 1 - 0.5 ** 3), (trainer.ramp_steps, 1.0),
                            (saved, 1.0)]:
            trainer.optimizer.iterations.assign(step)
            assert abs(int(trainer._ramped_keep(size, 3)) - (size - round(0.9 * share * size))) <= 1, step
    finally:
        trainer.optimizer.iterations.assign(saved)


def test_distill_teaches_sparse_levels_the_dense_levels_predictions():
    """DsnnConfig.distill: the dense level's loss is on the labels, a sparse level's on the dense level's softmax for
    the same batch (weights frozen by a zero learning rate, so the deployed levels reproduce both)."""
    keras.utils.set_random_seed(7)
    model = band_model()
    x, y = band_data(32, seed=4)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    cfg = DsnnConfig(levels=LEVELS, levels_per_step=2, ramp_fraction=0.0, distill=True)
    logs = fit_dsnn(model, cfg, data, epochs=1, optimizer=keras.optimizers.SGD(0.0), loss=LOSS).history
    dense, sparse = (set_sparsity(model, s)(x, training=True) for s in (0.0, 0.9))
    soft = keras.losses.categorical_crossentropy(tf.nn.softmax(dense), sparse, from_logits=True)
    assert logs["loss_0.9"][0] == pytest.approx(float(tf.reduce_mean(soft)), rel=1e-4)
    assert logs["loss_0"][0] == pytest.approx(float(LOSS(y, dense)), rel=1e-4)
    assert logs["loss_0.9"][0] != pytest.approx(float(LOSS(y, sparse)), rel=1e-3)


def test_private_bn_trains_each_levels_own_scale_and_offset():
    """DsnnConfig.private_bn: every level trains its own BN gamma and beta (the shared ones stay where they were);
    level_bn_statistics carries them and set_sparsity applies them, so each deployed level computes what the
    trainer evaluated for it."""
    keras.utils.set_random_seed(8)
    model = band_model()
    randomize_bn(model, seed=2)
    shared = [w.copy() for w in model.get_layer("bn").get_weights()[:2]]
    x, y = band_data(256, seed=5)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    cfg = DsnnConfig(levels=LEVELS, levels_per_step=4, ramp_fraction=0.0, private_bn=True)
    trainer = fit_dsnn(model, cfg, data, epochs=2, optimizer=keras.optimizers.Adam(5e-3), loss=LOSS).model
    for before, after in zip(shared, model.get_layer("bn").get_weights()[:2]):
        np.testing.assert_array_equal(before, after)
    affine = trainer.level_bn_affine()
    assert not np.allclose(affine[0.0]["bn"][0], affine[0.9]["bn"][0])
    reported = trainer.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    bn = model.get_layer("bn")
    for s in LEVELS:
        assert not np.allclose(affine[s]["bn"][0], shared[0]), s
        level = set_sparsity(model, s, bn_stats={"bn": (bn.moving_mean.numpy(), bn.moving_variance.numpy(),
                                                        *affine[s]["bn"])})
        assert float(LOSS(y, level(x, training=False))) == pytest.approx(reported[f"loss_{s:g}"], rel=1e-4), s
        stats = level_bn_statistics(model, s, [x], bn_affine=affine[s])
        np.testing.assert_array_equal(stats["bn"][2], affine[s]["bn"][0])
        np.testing.assert_array_equal(stats["bn"][3], affine[s]["bn"][1])


def test_masks_freeze_at_mask_end_fraction_and_the_frozen_ranking_deploys():
    """DsnnConfig.mask_end_fraction: from that step on the ranking stays as it was there (the weights keep
    moving, so their own ranking parts from it); set_sparsity with the trainer's ranks deploys exactly the masks
    that trained, and what it computes is what the trainer reports per level."""
    keras.utils.set_random_seed(8)
    model = band_model()
    x, y = band_data(256, seed=5)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # 8 steps an epoch
    cfg = DsnnConfig(levels=LEVELS, levels_per_step=4, ramp_fraction=0.25, mask_end_fraction=0.5)
    seen = {}

    class Spy(keras.callbacks.Callback):  # the ranks right after the freeze step's own update
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 17:
                seen.update(self.model.level_ranks())

    history = fit_dsnn(model, cfg, data, epochs=4, optimizer=keras.optimizers.Adam(5e-3), loss=LOSS,
                       callbacks=[Spy()])
    trainer = history.model
    assert trainer.frozen
    ranks = trainer.level_ranks()
    assert set(ranks) == set(SPARSE)
    for name in SPARSE:
        np.testing.assert_array_equal(ranks[name], seen[name])
    own = level_masks(model, LEVELS)
    frozen = level_masks(model, LEVELS, ranks=ranks)
    assert any(not np.array_equal(own[s][n], frozen[s][n]) for s in LEVELS[1:] for n in SPARSE)
    reported = trainer.evaluate(x, y, batch_size=32, return_dict=True, verbose=0)
    np.testing.assert_array_equal(trainer.level_ranks()["pw"], ranks["pw"])  # evaluate() leaves frozen masks
    for s in LEVELS:
        level = set_sparsity(model, s, ranks=ranks)
        np.testing.assert_array_equal(kernels(level)["pw"] != 0, frozen[s]["pw"] & (kernels(model)["pw"] != 0))
        assert reported[f"loss_{s:g}"] == pytest.approx(float(LOSS(y, level(x, training=False))), rel=1e-4), s
    with pytest.raises(ModelError, match="shape"):
        set_sparsity(model, 0.5, ranks={**ranks, "pw": ranks["pw"].ravel()})
    with pytest.raises(ConfigError, match="mask_end_fraction"):
        DsnnConfig(ramp_fraction=0.5, mask_end_fraction=0.4)
