"""Dynamic sparsity (DSNN, arXiv 2005.10627): one set of weights, nested magnitude masks, every level trained.

The model is the re-parameterized inference form (docs/architecture.md: train -> re-parameterize -> compress ->
export), so every mask acts on a kernel the device runs.

Layers. `sparsifiable_layers` is the policy, shared with pruning: every Conv2D, DepthwiseConv2D (including
StridedDepthwiseConv2D) and Dense, except the first conv (it sees raw features) and the last Dense (the
classifier). Only kernels are masked; biases and BatchNormalization stay dense.

Masks. Per layer, |w| is ranked once (0 = largest; ties broken by position, so the order is total) and level s
keeps the n - round(s * n) best-ranked weights. A sparser level keeps a prefix of the same ranking as a denser one,
so the masks are nested by construction, and a layer reaches exactly round(s * n) pruned weights at every level.

Training (`fit_dsnn`). Each step visits DsnnConfig.levels_per_step levels: the densest (levels[0]), the sparsest
and levels_per_step - 2 others drawn at random without replacement (slimmable networks' "sandwich rule"). Each
level runs the model with kernels w * m (the gradient reaches only that level's kept weights); the level losses are
averaged (so a learning rate right for ordinary fine-tuning stays right) and one optimizer update moves the shared
weights. With DsnnConfig.distill, the sparse levels learn the dense level's predictions on the same batch instead
of the labels (inplace distillation, as slimmable networks; their training `loss_<level>` is then that soft loss).
Over the first DsnnConfig.ramp_fraction of the steps every level's sparsity grows from 0 to its own (cubic,
as TFMOT's polynomial schedule; still prefixes of one ranking, so nested); evaluation always uses the final levels.
Masks are recomputed from the dense weights at the start of every epoch (or every `mask_update_steps` steps)
and before every evaluation, until DsnnConfig.mask_end_fraction of the steps; from there the ranking, hence every
level's mask, stays fixed (as TFMOT's end_step) so that each level fine-tunes the weights it keeps. The ranking a
run ends with is part of its checkpoint (`_DsnnTrainer.level_ranks`, given to `set_sparsity(..., ranks=)`); with
mask_end_fraction 1.0 it is recomputed once more when training ends and equals the final weights' own ranking.

BatchNormalization. The compression stage hands DSNN the re-parameterized model with its BN layers still
standalone (`reparameterize(model, fold_bn=False)`). With BN folded, a sparse level cannot re-centre its
activations: measured on DS-CNN, the 75% and 90% levels stayed at chance (loss above ln 12) through training.
So BN trains as usual (gamma and beta shared, each level's forward pass normalized by its own batch statistics),
and, as universally slimmable networks do, each level gets its own moving statistics afterwards
(`level_bn_statistics`: population mean and variance of every BN input with that level's masks, in graph order).
Those statistics (a few floats per channel per level) are part of the checkpoint; `set_sparsity(model, level,
bn_stats=...)` applies them, and folding BN into the convs afterwards keeps every masked zero. With
DsnnConfig.private_bn each level also trains its own BN scale and offset (slimmable networks' switchable BN;
`_DsnnTrainer.level_bn_affine`), stored and applied the same way; BN folds into each level's own file, so the
device pays nothing for them.

Switching. `set_sparsity(model, level, ranks=...)` returns a plain clone (same classes and layer names) whose
kernels are masked at `level`: exportable and streamable as is, one int8 .tflite per level. `level_masks` shows
the masks.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from kws_zoo.compress.config import DsnnConfig
from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError, ModelError

L = keras.layers
_CONVS = (L.Conv2D, L.DepthwiseConv2D)  # StridedDepthwiseConv2D is a DepthwiseConv2D


# ----------------------------------------------------------------------------------------------------------------
# Which layers, which masks
# ----------------------------------------------------------------------------------------------------------------

def kernel_attribute(layer: L.Layer) -> str:
    """The attribute holding the kernel a sparsifiable layer's call() reads."""
    return "depthwise_kernel" if isinstance(layer, L.DepthwiseConv2D) else "kernel"


def sparsifiable_layers(model: keras.Model, keep_first: bool = True, keep_last: bool = True,
                        depthwise: bool = True) -> list[L.Layer]:
    """The layers whose kernels pruning and DSNN mask, in graph order: every Conv2D, DepthwiseConv2D (and
    subclasses such as StridedDepthwiseConv2D) and Dense of `model`, except the first conv (keep_first) and the last
    Dense (keep_last), and without depthwise kernels when depthwise is False. The model must be the single-branch
    inference form (kws_zoo.reparam.reparameterize):
    a layer with `plain_layer()` (RepConv2D, SubSpectralNorm, SincConv, ...) holds kernels no mask here would reach
    as deployed, and a nested model hides its layers; both raise ModelError."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise ModelError(f"{model.name}: nested model {layer.name!r}; flatten it first")
        if hasattr(layer, "plain_layer"):
            raise ModelError(f"{model.name}: layer {layer.name!r} ({type(layer).__name__}) is a training-form "
                                   "layer; compress the re-parameterized model (kws_zoo.reparam.reparameterize)")
    candidates = [layer for layer in model.layers if isinstance(layer, (*_CONVS, L.Dense))]
    kept = set()
    convs = [layer for layer in candidates if isinstance(layer, _CONVS)]
    dense = [layer for layer in candidates if isinstance(layer, L.Dense)]
    if keep_first and convs:
        kept.add(convs[0].name)
    if keep_last and dense:
        kept.add(dense[-1].name)
    return [layer for layer in candidates
            if layer.name not in kept and (depthwise or not isinstance(layer, L.DepthwiseConv2D))]


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 <= level < 1.0:
        raise ConfigError(f"a sparsity level must lie in [0, 1), got {level}")
    return level


def _ranks(kernel: np.ndarray) -> np.ndarray:
    """Each weight's rank by |w| (0 = largest), ties by position: the one ordering every level cuts."""
    flat = np.abs(np.asarray(kernel)).ravel()
    ranks = np.empty(flat.size, np.int32)
    ranks[np.argsort(-flat, kind="stable")] = np.arange(flat.size, dtype=np.int32)
    return ranks.reshape(np.shape(kernel))


def _kept(size: int, level: float) -> int:
    """How many of `size` weights level `level` keeps (round half to even, as Python's round)."""
    return size - int(round(level * size))


def level_masks(model: keras.Model, levels: Sequence[float], *, keep_first: bool = True,
                keep_last: bool = True, depthwise: bool = True, ranks: dict[str, np.ndarray] | None = None
                ) -> dict[float, dict[str, np.ndarray]]:
    """{level: {layer name: bool mask of its kernel (True = kept)}} for the sparsifiable layers of `model`: the
    masks set_sparsity applies and fit_dsnn trains. ranks: the ranking a DSNN run ended with ({layer name: rank
    array}, _DsnnTrainer.level_ranks); without it, the ranking of the current weights' magnitudes."""
    levels = [_check_level(s) for s in levels]
    out: dict[float, dict[str, np.ndarray]] = {s: {} for s in levels}
    for layer in sparsifiable_layers(model, keep_first, keep_last, depthwise):
        kernel = getattr(layer, kernel_attribute(layer)).numpy()
        order = _ranks(kernel) if ranks is None else np.asarray(ranks[layer.name])
        if order.shape != kernel.shape:
            raise ModelError(f"{layer.name}: ranks of shape {order.shape} for a kernel of shape {kernel.shape}")
        for s in levels:
            out[s][layer.name] = order < _kept(kernel.size, s)
    return out


def set_sparsity(model: keras.Model, level: float, *, keep_first: bool = True, keep_last: bool = True,
                 depthwise: bool = True, bn_stats: dict[str, tuple[np.ndarray, ...]] | None = None,
                 ranks: dict[str, np.ndarray] | None = None) -> keras.Model:
    """A plain clone of `model` (same classes, layer names and config) whose sparsifiable kernels are masked at
    `level` (no retraining): exactly round(level * n) zeros more per layer of n weights (fewer only where weights
    were zero already), other weights copied. `model` is left as it is. Use the keep_first / keep_last /
    depthwise that fit_dsnn trained with. bn_stats: {BN layer name: (moving mean, moving variance)} of this level
    (level_bn_statistics), or (mean, variance, gamma, beta) with the level's own scale and offset (private_bn);
    without it the clone keeps `model`'s own. ranks: the DSNN run's final ranking (level_masks)."""
    level = _check_level(level)
    masks = level_masks(model, [level], keep_first=keep_first, keep_last=keep_last, depthwise=depthwise,
                        ranks=ranks)[level]
    clone = keras.models.clone_model(model)
    for layer in clone.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
        if layer.name in masks:
            kernel = getattr(layer, kernel_attribute(layer))
            kernel.assign(np.where(masks[layer.name], kernel.numpy(), 0.0).astype(kernel.dtype.as_numpy_dtype))
        if bn_stats and layer.name in bn_stats:
            # (mean, variance[, gamma, beta]): the last two only from private_bn, which requires both.
            own = (layer.moving_mean, layer.moving_variance, layer.gamma, layer.beta)
            for variable, values in zip(own, bn_stats[layer.name]):
                variable.assign(np.asarray(values, np.float32))
    return clone


def level_bn_statistics(model: keras.Model, level: float, batches: Sequence[np.ndarray], *, keep_first: bool = True,
                        keep_last: bool = True, depthwise: bool = True,
                        bn_affine: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                        ranks: dict[str, np.ndarray] | None = None) -> dict[str, tuple[np.ndarray, ...]]:
    """{BN layer name: (mean, variance)} of each BatchNormalization's input over `batches` (feature arrays) in the
    model masked at `level`, in graph order: each BN is measured after its predecessors got this level's
    statistics, so the result is the level's own population statistics. bn_affine: the level's own {name: (gamma,
    beta)} (private_bn); they are applied while measuring and appended to each result. ranks: as set_sparsity."""
    clone = set_sparsity(model, level, keep_first=keep_first, keep_last=keep_last, depthwise=depthwise,
                         ranks=ranks)
    for name, (gamma, beta) in (bn_affine or {}).items():
        clone.get_layer(name).gamma.assign(gamma)
        clone.get_layer(name).beta.assign(beta)
    stats = {}
    for layer in clone.layers:
        if not isinstance(layer, L.BatchNormalization):
            continue
        probe = keras.Model(clone.inputs, layer.input)
        h = np.concatenate([probe(x, training=False).numpy() for x in batches])
        axes = tuple(range(h.ndim - 1))
        stats[layer.name] = (h.mean(axis=axes), h.var(axis=axes), *(bn_affine or {}).get(layer.name, ()))
        layer.moving_mean.assign(stats[layer.name][0])
        layer.moving_variance.assign(stats[layer.name][1])
    return stats


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------

class _DsnnTrainer(keras.Model):
    """Wraps the model to train; its variables are the model's own (shared), plus one rank table per layer.

    train_step: the sandwich rule (module docstring). test_step: every level, each level's loss reported as
    `loss_<level>` and their mean as `loss`. evaluate() first recomputes the masks from the current weights,
    unless they are frozen (`frozen`, set by _MaskUpdates at DsnnConfig.mask_end_fraction).
    """

    def __init__(self, model: keras.Model, cfg: DsnnConfig, layer_names: Sequence[str], seed: int,
                 ramp_steps: int = 0):
        super().__init__(name=f"{model.name}_dsnn")
        self.ramp_steps = int(ramp_steps)
        self.inner = model
        self.levels = tuple(float(s) for s in cfg.levels)
        self.levels_per_step = int(cfg.levels_per_step)
        self.distill = bool(cfg.distill)
        self.seed = int(seed)
        self.layer_names = tuple(layer_names)
        self.ranks, self.keep, self.sizes = [], [], []
        for name in self.layer_names:
            kernel = self._kernel(name)
            self.sizes.append(int(np.prod(kernel.shape)))
            self.ranks.append(tf.Variable(tf.zeros(kernel.shape, tf.int32), trainable=False, name=f"{name}_rank"))
            self.keep.append(tf.constant([_kept(int(np.prod(kernel.shape)), s) for s in self.levels], tf.int32))
        self.frozen = False
        self.update_masks()
        # private_bn: one row of scale and offset per level for every BN layer, read through tf.gather(., level).
        bns = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization) and cfg.private_bn]
        for layer in bns:
            if layer.gamma is None or layer.beta is None:
                raise ModelError(f"{layer.name}: private_bn needs BatchNormalization with scale and center")
        self.bn_names = tuple(layer.name for layer in bns)
        self.bn_affine = [[tf.Variable(tf.tile(v[None], [len(self.levels), 1]), name=f"{layer.name}_{part}_per_level")
                           for v, part in ((layer.gamma, "gamma"), (layer.beta, "beta"))] for layer in bns]
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.level_trackers = [keras.metrics.Mean(name=f"loss_{s:g}") for s in self.levels]

    @property
    def metrics(self):
        return [self.loss_tracker, *self.level_trackers]

    def _kernel(self, name: str):
        layer = self.inner.get_layer(name)
        return getattr(layer, kernel_attribute(layer))

    def level_bn_affine(self) -> dict[float, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """{level: {BN layer name: (gamma, beta)}} trained per level (private_bn); {} per level without it."""
        return {s: {name: (gamma[j].numpy(), beta[j].numpy()) for name, (gamma, beta) in
                    zip(self.bn_names, self.bn_affine)} for j, s in enumerate(self.levels)}

    def level_ranks(self) -> dict[str, np.ndarray]:
        """{layer name: rank of each kernel weight}: the ranking every level's mask cuts (set_sparsity's ranks)."""
        return {name: ranks.numpy() for name, ranks in zip(self.layer_names, self.ranks)}

    def update_masks(self) -> None:
        """Ranks recomputed from the current (dense) weights, the masks of every level following; not once
        frozen."""
        if self.frozen:
            return
        for name, ranks in zip(self.layer_names, self.ranks):
            ranks.assign(_ranks(self._kernel(name).numpy()))

    def _ramped_keep(self, size: int, index):
        """Weights level `index` keeps at this training step while its sparsity ramps up (cubic in the step, from
        0 to the level's sparsity at ramp_steps); the same prefix of the ranking, so the levels stay nested."""
        progress = tf.minimum(1.0, tf.cast(self.optimizer.iterations, tf.float32) / float(self.ramp_steps))
        level = tf.gather(tf.constant(self.levels, tf.float32), index) * (1.0 - (1.0 - progress) ** 3)
        return size - tf.cast(tf.round(level * size), tf.int32)

    @contextlib.contextmanager
    def _masked(self, index, ramp: bool = False):
        """Within it, each sparsifiable layer's call() reads kernel * mask of level `index` (a scalar tensor)
        instead of its variable (ramp: the level's sparsity at this training step), and with private_bn each BN
        layer reads the level's own gamma and beta. The attribute is rebound with
        object.__setattr__, past Keras' attribute tracking, so the layer's weight lists and checkpoint
        dependencies never change; it is restored on exit."""
        swapped = []
        try:
            for name, ranks, keep, size in zip(self.layer_names, self.ranks, self.keep, self.sizes):
                layer = self.inner.get_layer(name)
                attr = kernel_attribute(layer)
                kernel = getattr(layer, attr)
                kept = self._ramped_keep(size, index) if ramp and self.ramp_steps else tf.gather(keep, index)
                mask = tf.cast(ranks < kept, kernel.dtype)
                swapped.append((layer, attr, kernel))
                object.__setattr__(layer, attr, kernel * mask)
            for name, per_level in zip(self.bn_names, self.bn_affine):
                layer = self.inner.get_layer(name)
                for attr, variable in zip(("gamma", "beta"), per_level):
                    swapped.append((layer, attr, getattr(layer, attr)))
                    object.__setattr__(layer, attr, tf.gather(variable, index))
            yield
        finally:
            for layer, attr, kernel in swapped:
                object.__setattr__(layer, attr, kernel)

    def _draw_levels(self) -> list:
        """Level indices of one step: the densest, the sparsest, then levels_per_step - 2 of the others at random
        (stateless: seeded by `seed` and the optimizer's step, so a run repeats exactly)."""
        last = len(self.levels) - 1
        visits = [tf.constant(0, tf.int32), tf.constant(last, tf.int32)]
        extra = self.levels_per_step - 2
        if extra:
            seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.optimizer.iterations, tf.int64)])
            others = tf.argsort(tf.random.stateless_uniform([last - 1], seed=seed))[:extra] + 1
            visits += [tf.cast(others[i], tf.int32) for i in range(extra)]
        return visits

    def _level_logits(self, index, x, training: bool):
        with self._masked(index, ramp=training):
            return self.inner(x, training=training)

    def _level_loss(self, index, x, y, sample_weight, training: bool):
        return self.compiled_loss(y, self._level_logits(index, x, training), sample_weight)

    def _training_losses(self, visits, x, y, sample_weight) -> list:
        """Each visited level's loss: on the labels, or (distill) the sparse levels' on the dense level's
        predictions (visits[0] is the dense level; no gradient flows into the teacher)."""
        dense = self._level_logits(visits[0], x, True)
        losses = [self.compiled_loss(y, dense, sample_weight)]
        teacher = tf.stop_gradient(tf.nn.softmax(dense))
        for index in visits[1:]:
            logits = self._level_logits(index, x, True)
            losses.append(_soft_loss(teacher, logits, sample_weight) if self.distill
                          else self.compiled_loss(y, logits, sample_weight))
        return losses

    def _track(self, visits, losses) -> None:
        for index, loss in zip(visits, losses):
            for j, tracker in enumerate(self.level_trackers):
                tracker.update_state(loss, sample_weight=tf.cast(tf.equal(index, j), loss.dtype))

    def call(self, inputs, training=None):
        return self.inner(inputs, training=training)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        visits = self._draw_levels()
        with tf.GradientTape() as tape:
            losses = self._training_losses(visits, x, y, sample_weight)
            loss = tf.add_n(losses) / len(losses)
            if self.inner.losses:
                loss += tf.add_n(self.inner.losses)
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients((g, v) for g, v in zip(grads, variables) if g is not None)
        self.loss_tracker.update_state(loss)
        self._track(visits, losses)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        visits = [tf.constant(j, tf.int32) for j in range(len(self.levels))]
        losses = [self._level_loss(index, x, y, sample_weight, False) for index in visits]
        self.loss_tracker.update_state(tf.add_n(losses) / len(losses))
        self._track(visits, losses)
        return {m.name: m.result() for m in self.metrics}

    def evaluate(self, *args, **kwargs):
        self.update_masks()
        return super().evaluate(*args, **kwargs)


def _soft_loss(teacher, logits, sample_weight):
    loss = keras.losses.categorical_crossentropy(teacher, logits, from_logits=True)
    if sample_weight is not None:
        loss *= tf.cast(tf.reshape(sample_weight, tf.shape(loss)), loss.dtype)
    return tf.reduce_mean(loss)


class _MaskUpdates(keras.callbacks.Callback):
    """Recomputes the trainer's masks at every epoch start (every_steps None) or every `every_steps` steps, and at
    the end of training; freezes them from step `freeze_step` on (None: never)."""

    def __init__(self, trainer: _DsnnTrainer, every_steps: int | None, freeze_step: int | None = None):
        super().__init__()
        self.trainer, self.every_steps, self.freeze_step, self.step = trainer, every_steps, freeze_step, 0

    def on_epoch_begin(self, epoch, logs=None):
        if self.every_steps is None:
            self.trainer.update_masks()

    def on_train_batch_begin(self, batch, logs=None):
        if self.freeze_step is not None and self.step == self.freeze_step:
            self.trainer.update_masks()  # the ranking of the weights as they are here, kept from now on
            self.trainer.frozen = True
        if self.every_steps is not None and self.step % self.every_steps == 0:
            self.trainer.update_masks()
        self.step += 1

    def on_train_end(self, logs=None):
        self.trainer.update_masks()


def fit_dsnn(model: keras.Model, cfg: DsnnConfig, dataset, *, epochs: int, optimizer, loss,
             steps_per_epoch: int | None = None, validation=None, callbacks: Sequence = (),
             mask_update_steps: int | None = None, keep_first: bool = True, keep_last: bool = True,
             depthwise: bool = True, seed: int = 0,
             verbose: int = 0) -> keras.callbacks.History:
    """Trains `model`'s weights in place so that every level of cfg.levels works (module docstring).

    dataset, validation: as keras.Model.fit takes them ((features, labels) batches); loss: as compile takes it,
    on the model's logits; optimizer: a Keras optimizer (or its name). Masks are recomputed every epoch, or every
    `mask_update_steps` steps when given. BatchNormalization trains (see the module docstring; give each level
    its own statistics with level_bn_statistics afterwards). The History's logs hold `loss` (mean over the
    visited levels) and `loss_<level>` (a level's mean over the steps that visited it; 0 if none did), `val_` the
    same over every level; `history.model` is the trainer, whose evaluate() reports the same for any data. Then
    set_sparsity(model, level, ranks=history.model.level_ranks()) gives each level's model.
    """
    if mask_update_steps is not None and mask_update_steps < 1:
        raise ConfigError(f"mask_update_steps must be >= 1 or None, got {mask_update_steps}")
    layers = sparsifiable_layers(model, keep_first, keep_last, depthwise)
    if not layers:
        raise ModelError(f"{model.name}: no layer to sparsify (keep_first={keep_first}, keep_last={keep_last})")
    steps = steps_per_epoch or (int(dataset.cardinality()) if isinstance(dataset, tf.data.Dataset) else 0)
    if cfg.ramp_fraction and steps < 1:
        raise ConfigError("fit_dsnn: the dataset's length is unknown; pass steps_per_epoch (the ramp needs it)")
    if cfg.mask_end_fraction < 1.0 and steps < 1:
        raise ConfigError("fit_dsnn: the dataset's length is unknown; pass steps_per_epoch (mask_end_fraction "
                          "needs it)")
    trainer = _DsnnTrainer(model, cfg, [layer.name for layer in layers], seed,
                           ramp_steps=int(round(cfg.ramp_fraction * epochs * steps)))
    trainer.compile(optimizer=optimizer, loss=loss)
    freeze = int(round(cfg.mask_end_fraction * epochs * steps)) if cfg.mask_end_fraction < 1.0 else None
    return trainer.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=validation,
                       callbacks=[_MaskUpdates(trainer, mask_update_steps, freeze), *callbacks], verbose=verbose)
