"""Constant sparse random ternary 1x1 convolution (Mordido, Van Keirsbilck & Keller 2021, arXiv 2103.17142).

The pointwise half of a time-channel separable convolution is replaced by a fixed matrix with entries in
{-1, 0, +1}: no multiplications, nothing to train, and a chip can regenerate it from a seed instead of
storing it. The matrix is therefore not a weight: `build()` regenerates it from (seed, in, out, sparsity)
and keeps it as a tf constant, so checkpoints and .keras files hold only the config (and the optional
per-channel scale). The BatchNorm that follows in MatchboxNet already supplies a learned per-channel scale.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError, ModelError
from kws_zoo.layers.plain import to_plain


def ternary_matrix(seed: int, in_channels: int, out_channels: int, sparsity: float) -> np.ndarray:
    """[in, out] float32 matrix with exactly round(sparsity * in * out) zeros and random signs elsewhere.

    The generator is seeded with sha256 of the arguments, not Python's hash() (salted per process),
    so every process, platform and NumPy version with the same PCG64 stream gives the same matrix.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
    if in_channels < 1 or out_channels < 1:
        raise ConfigError(f"channels must be positive, got {in_channels}x{out_channels}")
    rng = np.random.default_rng(matrix_key(seed, in_channels, out_channels, sparsity))
    n = in_channels * out_channels
    zeros = int(round(sparsity * n))
    flat = np.zeros(n, np.float32)
    nonzero = rng.permutation(n)[zeros:]
    flat[nonzero] = rng.choice(np.array([-1.0, 1.0], np.float32), size=n - zeros)
    return flat.reshape(in_channels, out_channels)


def matrix_key(seed: int, in_channels: int, out_channels: int, sparsity: float) -> int:
    """The 64-bit PCG64 seed of one matrix: the first 8 bytes (little endian) of sha256("seed:in:out:sparsity").
    The TFLM kernel (tflm/kernels/ternary_rng.cc) regenerates the matrix from this number."""
    key = f"{int(seed)}:{int(in_channels)}:{int(out_channels)}:{float(sparsity)!r}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little")


@keras.saving.register_keras_serializable(package="kws_zoo")
class TernaryPointwise(keras.layers.Layer):
    """1x1 convolution over NHWC input ([B, time, 1, channels]) with a constant ternary kernel.

    use_scale adds a learned per-output-channel scale (initialised to 1/sqrt(nonzeros per column) so
    the output variance matches the input's); leave it off when BatchNorm follows.
    """

    def __init__(self, filters: int, seed: int = 0, sparsity: float = 0.5, use_scale: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
        self.filters = int(filters)
        self.seed = int(seed)
        self.sparsity = float(sparsity)
        self.use_scale = bool(use_scale)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ModelError(f"{self.name}: the channel dimension must be known")
        self.matrix = ternary_matrix(self.seed, int(in_channels), self.filters, self.sparsity)
        # A constant, not a tf.Variable: it never enters weights, checkpoints or optimizers.
        self._kernel = tf.constant(self.matrix[None, None])
        self.scale = None
        if self.use_scale:
            fan_in = max(1.0, (1.0 - self.sparsity) * int(in_channels))
            self.scale = self.add_weight(
                name="scale", shape=(self.filters,),
                initializer=keras.initializers.Constant(1.0 / math.sqrt(fan_in)), trainable=True)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: int(in_channels)})
        super().build(input_shape)

    def call(self, inputs):
        y = tf.nn.conv2d(inputs, tf.cast(self._kernel, inputs.dtype), strides=1, padding="VALID")
        return y * tf.cast(self.scale, y.dtype) if self.scale is not None else y

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.filters])

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "seed": self.seed,
                "sparsity": self.sparsity, "use_scale": self.use_scale}

    def plain_layer(self) -> tuple[keras.layers.Layer, list[np.ndarray]]:
        """(standard Conv2D 1x1, its weights) computing the same function; see layers.plain."""
        kernel = self.matrix[None, None].copy()
        if self.scale is not None:
            kernel *= self.scale.numpy()  # per output channel; int8 export re-extracts the +-1
        conv = keras.layers.Conv2D(self.filters, 1, use_bias=False, name=self.name, dtype=self.dtype_policy)
        return conv, [kernel]

    def multiplications_avoided(self, input_shape) -> int:
        """positions * in * out (the dense 1x1 conv's multiplications) minus positions * out when the
        learned scale is applied in float (it multiplies once per output)."""
        dims = tuple(input_shape)[1:]
        if any(d is None for d in dims):
            raise ModelError(f"{self.name}: needs a static input shape, got {tuple(input_shape)}")
        positions = math.prod(dims[:-1])
        dense = positions * dims[-1] * self.filters
        return dense - (positions * self.filters if self.use_scale else 0)


def ternary_layers(model: keras.Model) -> list[TernaryPointwise]:
    """Every TernaryPointwise in the model, nested models included, in layer order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += ternary_layers(layer)
        elif isinstance(layer, TernaryPointwise):
            found.append(layer)
    return found


def ternary_multiplications_avoided(model: keras.Model, input_shape) -> int:
    """Multiplications per inference (one example of `input_shape`, no batch axis) that the ternary
    layers avoid compared with dense 1x1 convolutions of the same shape.

    Counted per ternary layer and call: output positions x in_channels x out_channels, i.e. the
    multiply-accumulates a dense pointwise conv would do (the zeros included, since a dense kernel
    multiplies by them too), minus the positions x out_channels multiplications of the optional
    learned scale. Additions are not counted: the ternary layer still adds/subtracts its nonzeros.
    The int8 .tflite runs the matrix as an ordinary CONV_2D with +-1/0 weights, so these are avoided
    only by a kernel that exploits the ternary structure (or the layers' float graph).
    """
    input_shape = tuple(int(d) for d in input_shape)
    if tuple(model.input_shape[1:]) != input_shape:
        # A clone sees the new shapes without adding graph nodes to the caller's model.
        model = keras.models.clone_model(model, input_tensors=keras.Input(input_shape))
    total = 0
    for layer in ternary_layers(model):
        for i in range(len(layer.inbound_nodes)):
            total += layer.multiplications_avoided(layer.get_input_shape_at(i))
    return int(total)


def export_form(model: keras.Model) -> keras.Model:
    """The same model with every TernaryPointwise as a plain Conv2D 1x1 (kernel = matrix, times the
    scale if any), other custom layers with `plain_layer()` made plain too. For the int8 .tflite with
    literal -1/0/+1 weights use `kws_zoo.export.ternary.to_tflite_int8_ternary`."""
    return to_plain(model)
