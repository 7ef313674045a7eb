"""Magnitude pruning of the re-parameterized (single-branch) inference form with TFMOT.

`prune_model` wraps, by a per-layer policy, the kernels the device will run with TFMOT's `prune_low_magnitude`
wrapper; the model is then fine-tuned with `pruning_callbacks()` and `strip_pruning` gives back a model of exactly
the original layer classes and names, with the masked kernels holding exact zeros. Zero floats quantize to int8
zero (weights are symmetric), so the sparsity reached is the sparsity of the int8 `.tflite`
(`kws_zoo.device.flatbuffer.weight_sparsity` measures it there).

Policy (`PruneConfig`): every Conv2D and Dense, except the first weighted layer (`keep_first`: it sees the raw
features), the last one (`keep_last`: the classifier; a Dense in every family of the zoo), names matching `skip`
(fnmatch patterns, each must match a layer) and frozen (non-trainable) layers. Depthwise kernels
(DepthwiseConv2D and StridedDepthwiseConv2D) stay dense unless `depthwise=True`. They are small (9 weights per
channel for 3x3, 3 for BC-ResNet's 1x3 / 3x1; 10% of DS-CNN's and 9% of MatchboxNet-3x1x64's kernel weights, 20-24%
of RepCNN-S's and BC-ResNet-1's), each weight is a whole spatial tap of one channel, and one magnitude threshold per
layer strips some channels of most of their taps, while pointwise and dense kernels hold the redundancy (TFMOT's
registry lists no prunable weight for DepthwiseConv2D either). On TFLite Micro a zero int8 weight takes its byte like any other, so sparsity pays only
through compression of the file, where the small depthwise kernels matter least. `depthwise=True` is there for
BC-ResNet-sized models, whose depthwise share is large; it needs a PruneConfig field to come from a recipe.

Two additions to TFMOT live in the wrapper subclass `PruneLowMagnitude` (a drop-in for TFMOT's, same layer names
"prune_low_magnitude_<layer>", registered for .keras files as "kws_zoo>PruneLowMagnitude"):
  - a standard DepthwiseConv2D becomes prunable (TFMOT's registry lists no prunable weight for it);
    StridedDepthwiseConv2D implements TFMOT's PrunableLayer itself (`get_prunable_weights`);
  - block sparsity on kernels of any rank. TFMOT 0.8.1 refuses block sizes other than (1, 1) on kernels that are
    not 2-D, i.e. on every convolution; here a kernel is viewed as the matrix [inputs, outputs] (Conv2D
    [kh*kw*in, out], depthwise [kh*kw, channels*multiplier], Dense [in, out]) and `block_size` = (rows, columns)
    of that matrix, pruned together by their mean magnitude (TFMOT's 'AVG' pooling; 'MAX' works too). (1, 4) zeroes groups
    of 4 consecutive output channels of one input tap. This overrides two private methods of TFMOT's
    `pruning_impl.Pruning` (`_validate_block`, `_maybe_update_block_mask`): tests/compress/test_pruning.py
    checks it against the pinned TFMOT.

Schedules count training steps from 1 (TFMOT's wrapper increments its step before it updates masks) and update
masks every `frequency` steps from `begin`; `schedule_steps` places the last update exactly on the end step, so the
final mask always has the requested sparsity, provided the fine-tune runs at least that many steps.
"""
from __future__ import annotations

import fnmatch

import numpy as np

from kws_zoo.compress.config import PruneConfig
from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError, ModelError
from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D

import tensorflow_model_optimization as tfmot  # noqa: E402  (after compat: TFMOT must find Keras 2)
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl, pruning_wrapper  # noqa: E402

L = keras.layers
# Exact classes whose kernel may be pruned: subclasses (Conv2DTranspose, custom layers) compute something else.
_KINDS = {L.Conv2D: "conv", L.Dense: "dense", L.DepthwiseConv2D: "depthwise", StridedDepthwiseConv2D: "depthwise"}

# StridedDepthwiseConv2D implements the protocol without importing TFMOT (kws_zoo.layers stays below compress).
tfmot.sparsity.keras.PrunableLayer.register(StridedDepthwiseConv2D)


def _kernel(layer: L.Layer) -> tf.Variable:
    return layer.depthwise_kernel if _KINDS[type(layer)] == "depthwise" else layer.kernel


def _inner(layer: L.Layer) -> L.Layer:
    return layer.layer if isinstance(layer, pruning_wrapper.PruneLowMagnitude) else layer


class _BlockPruning(pruning_impl.Pruning):
    """TFMOT's Pruning with block masks on kernels of any rank (see the module docstring). Built only when the
    block size is not (1, 1); the mask schedule and the threshold rule are TFMOT's (`_update_mask` on the pooled
    block magnitudes)."""

    def __init__(self, *, depthwise: bool, **kwargs):
        self._depthwise = depthwise
        super().__init__(**kwargs)

    def _validate_block(self):
        for weight, _, _ in self._pruning_vars:
            if weight.shape.rank not in (2, 4):
                raise ConfigError(f"{weight.name}: block sparsity needs a 2-D or 4-D kernel, got shape {weight.shape}")

    def _maybe_update_block_mask(self, weights):
        shape = weights.shape.as_list()
        size = int(np.prod(shape))
        rows = shape[0] * shape[1] if self._depthwise else size // shape[-1]
        cols = size // rows
        bh, bw = self._block_size
        pad = [[0, -rows % bh], [0, -cols % bw]]
        grid = (-(-rows // bh), bh, -(-cols // bw), bw)
        magnitude = tf.reshape(tf.pad(tf.reshape(tf.math.abs(weights), (rows, cols)), pad), grid)
        if self._block_pooling_type == "MAX":
            pooled = tf.reduce_max(magnitude, axis=(1, 3))
        else:  # the mean over the block's real entries (a block at the border may be partial)
            count = tf.reshape(tf.pad(tf.ones((rows, cols), weights.dtype), pad), grid)
            pooled = tf.reduce_sum(magnitude, axis=(1, 3)) / tf.reduce_sum(count, axis=(1, 3))
        threshold, block_mask = self._update_mask(pooled)
        mask = tf.repeat(tf.repeat(block_mask, bh, axis=0), bw, axis=1)[:rows, :cols]
        return threshold, tf.reshape(mask, shape)


@keras.saving.register_keras_serializable(package="kws_zoo")
class PruneLowMagnitude(pruning_wrapper.PruneLowMagnitude):
    """TFMOT's pruning wrapper (same arguments, names, config and callbacks; tfmot's strip_pruning removes it),
    plus a prunable standard DepthwiseConv2D and block sparsity on convolution kernels (module docstring), and
    `plain_layer()`, the wrapped layer with its masked weights (the custom-layer contract of tests/helpers.py)."""

    def __init__(self, layer, **kwargs):
        if type(layer) is L.DepthwiseConv2D and not hasattr(layer, "get_prunable_weights"):
            # TFMOT's own way for registry layers (an instance attribute); set here so from_config does it too.
            layer.get_prunable_weights = lambda: [layer.depthwise_kernel]
        super().__init__(layer, **kwargs)

    def build(self, input_shape):
        block_size, self.block_size = tuple(self.block_size), (1, 1)  # TFMOT's Pruning refuses blocks on 4-D kernels
        try:
            super().build(input_shape)
        finally:
            self.block_size = block_size
        if block_size != (1, 1):
            self.pruning_obj = _BlockPruning(
                depthwise=_KINDS.get(type(self.layer)) == "depthwise", training_step_fn=lambda: self.pruning_step,
                pruning_vars=self.pruning_vars, pruning_schedule=self.pruning_schedule, block_size=block_size,
                block_pooling_type=self.block_pooling_type, sparsity_m_by_n=self.sparsity_m_by_n)

    def plain_layer(self) -> tuple[L.Layer, list[np.ndarray]]:
        """(a fresh copy of the wrapped layer, its weights with the masks applied): the function the wrapper computes
        in inference, as kws_zoo.layers.plain expects, so to_plain and reparameterize strip the wrapper too. Like
        every plain_layer() it keeps this layer's name ("prune_low_magnitude_<layer>"); strip_pruning restores the
        original names and is the way out of pruning."""
        masks = {id(weight): mask for weight, mask, _ in self.pruning_vars}
        values = [(w * masks[id(w)]).numpy() if id(w) in masks else w.numpy() for w in self.layer.weights]
        return self.layer.__class__.from_config({**self.layer.get_config(), "name": self.name}), values


def schedule_steps(cfg: PruneConfig, total_steps: int) -> tuple[int, int, int]:
    """(begin_step, end_step, frequency) of the mask updates over `total_steps` training steps (counted from 1).

    begin = begin_fraction * total_steps (at least 1: step 0 never runs), end = end_fraction * total_steps; the
    frequency shrinks to end - begin when that span is shorter, and end moves back to the last update step
    (begin + k * frequency), where the polynomial schedule reaches the final sparsity. So the last mask update
    always applies `cfg.sparsity` and the remaining steps fine-tune at it."""
    if int(total_steps) != total_steps or total_steps < 2:
        raise ConfigError(f"pruning needs total_steps >= 2 (an integer), got {total_steps}")
    total_steps = int(total_steps)
    begin = min(max(int(round(cfg.begin_fraction * total_steps)), 1), total_steps - 1)
    end = min(max(int(round(cfg.end_fraction * total_steps)), begin + 1), total_steps)
    frequency = min(cfg.frequency, end - begin)
    return begin, begin + frequency * ((end - begin) // frequency), frequency


def pruning_schedule(cfg: PruneConfig, total_steps: int) -> tfmot.sparsity.keras.PruningSchedule:
    """TFMOT's PolynomialDecay (initial_sparsity -> sparsity, cubic, from begin to end) or ConstantSparsity
    (sparsity at every update from begin to end), on the steps of `schedule_steps`."""
    begin, end, frequency = schedule_steps(cfg, total_steps)
    if cfg.schedule == "polynomial":
        return tfmot.sparsity.keras.PolynomialDecay(cfg.initial_sparsity, cfg.sparsity, begin, end,
                                                    frequency=frequency)
    return tfmot.sparsity.keras.ConstantSparsity(cfg.sparsity, begin, end, frequency=frequency)


def pruned_layer_names(model: keras.Model, cfg: PruneConfig, *, depthwise: bool = False) -> list[str]:
    """Names of the layers `prune_model` wraps, in model order (the policy of the module docstring).
    Raises ModelError for a model that is not the re-parameterized single-branch form, ConfigError for a `skip`
    pattern that matches no layer or a policy that leaves nothing to prune."""
    wrapped = [layer.name for layer in model.layers if isinstance(layer, pruning_wrapper.PruneLowMagnitude)]
    if wrapped:
        raise ModelError(f"{model.name} is already under pruning ({wrapped}); strip_pruning it first")
    unplain = [layer.name for layer in model.layers if hasattr(layer, "plain_layer") or isinstance(layer, keras.Model)]
    if unplain:
        raise ModelError(f"{model.name}: prune the re-parameterized form (kws_zoo.reparam.reparameterize): "
                         f"{unplain} are custom multi-branch layers or nested models, whose deployed kernels "
                         "would not be the pruned ones")
    names = [layer.name for layer in model.layers]
    for pattern in cfg.skip:
        if not fnmatch.filter(names, pattern):
            raise ConfigError(f"skip pattern {pattern!r} matches no layer of {model.name}")
    weighted = [layer for layer in model.layers if type(layer) in _KINDS]
    if not weighted:
        raise ModelError(f"{model.name}: no Conv2D, DepthwiseConv2D or Dense layer to prune")
    kept = ({weighted[0].name} if cfg.keep_first else set()) | ({weighted[-1].name} if cfg.keep_last else set())
    chosen = [layer.name for layer in weighted
              if layer.name not in kept and layer.trainable
              and not any(fnmatch.fnmatchcase(layer.name, p) for p in cfg.skip)
              and (depthwise or _KINDS[type(layer)] != "depthwise")]
    if not chosen:
        raise ConfigError(f"{model.name}: the pruning policy leaves no layer to prune (keep_first, keep_last, skip, "
                          f"depthwise={depthwise}); weighted layers: {[layer.name for layer in weighted]}")
    return chosen


def prune_model(model: keras.Model, cfg: PruneConfig, total_steps: int, *, depthwise: bool = False) -> keras.Model:
    """A copy of the functional, re-parameterized `model` with the layers of `pruned_layer_names` wrapped in
    PruneLowMagnitude (TFMOT's magnitude pruning), each with `pruning_schedule(cfg, total_steps)` and
    `cfg.block_size`. Weights are copied: training the result leaves `model` unchanged. Fit it with
    `pruning_callbacks()` for at least `schedule_steps(cfg, total_steps)[1]` steps, then `strip_pruning`.
    depthwise: also prune DepthwiseConv2D / StridedDepthwiseConv2D kernels (default: kept dense, see the module
    docstring)."""
    chosen = set(pruned_layer_names(model, cfg, depthwise=depthwise))
    schedule = pruning_schedule(cfg, total_steps)
    copies: dict[str, L.Layer] = {}

    def clone(layer: L.Layer) -> L.Layer:
        new = layer.__class__.from_config(layer.get_config())
        copies[layer.name] = new
        if layer.name in chosen:
            return PruneLowMagnitude(new, pruning_schedule=schedule, block_size=tuple(cfg.block_size))
        return new

    pruned = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in copies:
            copies[layer.name].set_weights(layer.get_weights())
    return pruned


def pruning_callbacks(log_dir: str | None = None) -> list:
    """Callbacks `model.fit` needs for a model of `prune_model`: TFMOT's UpdatePruningStep (feeds the step to the
    schedules, re-applies the masks after every epoch), plus PruningSummaries (sparsity and threshold per layer
    for TensorBoard) when log_dir is given."""
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    if log_dir is not None:
        callbacks.append(tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir))
    return callbacks


def strip_pruning(model: keras.Model) -> keras.Model:
    """The inference model of a pruned one: masks applied to the kernels (exact zeros, even if the last optimizer
    step moved masked weights), TFMOT's strip_pruning, then a fresh copy, so the result has exactly the original
    layer classes and names, shares no variable with `model` and carries no pruning state."""
    for layer in model.layers:
        if isinstance(layer, pruning_wrapper.PruneLowMagnitude) and layer.built:
            for weight, mask, _ in layer.pruning_vars:
                weight.assign(weight * mask)
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    fresh = keras.models.clone_model(stripped)
    fresh.set_weights(stripped.get_weights())
    return fresh


def kernel_sparsity(model: keras.Model) -> dict[str, float]:
    """{layer name: fraction of exact zeros in its kernel} for every Conv2D, DepthwiseConv2D and Dense (wrapped or
    not; biases are never pruned), in model order: the Keras-side twin of device.flatbuffer.weight_sparsity."""
    out = {}
    for layer in map(_inner, model.layers):
        if type(layer) in _KINDS:
            kernel = _kernel(layer).numpy()
            out[layer.name] = float(np.count_nonzero(kernel == 0)) / kernel.size
    return out


class KeepZeros(keras.callbacks.Callback):
    """Holds a pruned model's zero weights at zero while a later stage (QAT) fine-tunes it: without it the
    optimizer regrows them (measured: a 50%-pruned pointwise conv was back to 25% zeros after two QAT epochs).
    The mask is every kernel's zeros at construction; only kernels with pruned zeros are held."""

    def __init__(self, model: keras.Model, min_sparsity: float = 0.01):
        super().__init__()
        self.held = []
        for variable in model.trainable_weights:
            if "kernel" not in variable.name:
                continue
            keep = variable.numpy() != 0
            if 1.0 - keep.mean() >= min_sparsity:
                self.held.append((variable, tf.constant(keep, variable.dtype)))

    def _apply(self) -> None:
        for variable, keep in self.held:
            variable.assign(variable * keep)

    def on_train_begin(self, logs=None):
        self._apply()

    def on_train_batch_end(self, batch, logs=None):
        self._apply()
