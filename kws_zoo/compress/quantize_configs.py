"""How QAT quantizes each layer of the re-parameterized (single-branch inference) graph: the quantizers and the one
table of rules.

Why not TFMOT's default 8-bit scheme (`tfmot.quantization.keras.quantize_model`):
  - it looks layers up by exact class: StridedDepthwiseConv2D, a standalone BatchNormalization (SubSpectralNorm's
    plain form) and Activation('swish') are not in its registry;
  - its layout transform `LayerReLUQuantize` gives every Conv2D / DepthwiseConv2D / Dense / Add followed by a
    separate ReLU layer a NoOp config, meant to drop the quantizer between the op and the ReLU TFLite fuses into it,
    but it drops the op's *weight* quantizers too. BN folding leaves exactly that (conv -> ReLU layer) everywhere:
    measured on the re-parameterized DS-CNN, none of its 9 convolutions had a weight quantizer;
  - weights and activations are 8-bit only, and a FakeQuant of fewer bits converts to an i4 tensor type that no
    TFLite op accepts (measured: "'tfl.conv_2d' op operand #0 must be ... QI8 ..., but got quant.uniform<i4...>").
So kws_zoo.compress.qat annotates every layer with a config from this module and lets TFMOT add nothing but the
input's quantizer.

Low bits on an int8 device. Both quantizers below always emit an 8-bit FakeQuant whose grid *contains* the b-bit grid
(same step, zero on the grid): the converter then writes ordinary int8 tensors whose values lie on the b-bit grid.
  weights      symmetric, narrow range, per output channel: step_c = max|w_c| / (2**(b-1) - 1), the int8 weights
               are the integers -(2**(b-1) - 1) .. 2**(b-1) - 1: at most 2**b - 1 distinct values per channel (what
               TFLM's look-up-table compression needs). Identical to a b-bit FakeQuant (the range is the weights'
               own, nothing is clipped).
  activations  asymmetric per tensor, range [lo, hi] by moving average: step = (hi - lo) / (2**b - 1), zero on the
               grid; the int8 tensor has that step and its top value at hi, so values above hi saturate as in a
               b-bit quantizer. Below lo an int8 tensor cannot clip at an arbitrary value, so the grid simply goes on
               (255 steps in all): for ReLU outputs (lo = 0, the fused ReLU clips at zero) this is exactly b bits
               (2**b values); for signed tensors it is the b-bit step with a wider range. Training and inference
               use the same function, so the QAT model's inference is what the device computes.

The table (`RULES`, looked up along the layer's MRO, so a subclass of a standard layer inherits its row unless it
has its own):
  weighted   Conv2D, DepthwiseConv2D, StridedDepthwiseConv2D: per-channel weights (a depthwise kernel
             [kh, kw, C, m] has C*m output channels, quantized as TFLite stores it, [1, kh, kw, C*m]); Dense:
             per-tensor weights (the converter rejects per-channel FakeQuant on a kernel it must transpose:
             "'tfl.transpose' op has mismatched quantized axes"). Output quantized unless the layer's only reader is
             a ReLU that TFLite fuses into it (then the ReLU's quantizer gives the op's output, as on the device).
  output     ReLU, Activation (relu, relu6, swish), Add, Multiply, Concatenate, GlobalAveragePooling2D (MEAN
             requantizes), standalone BatchNormalization, Normalization: one output quantizer (none for an Add that
             a fused ReLU follows: ADD with fused RELU).
  pass       Reshape, Flatten, Permute, Dropout, SpatialDropout1D/2D, ZeroPadding1D/2D, Cropping1D/2D,
             AveragePooling2D, MaxPooling2D, GlobalMaxPooling2D, Activation('linear'): no quantizer; TFLite keeps
             the input's scale (AVERAGE_POOL_2D must: a quantizer of its own would add a requantizing QUANTIZE op).
The model input and outputs stay 8-bit whatever activation_bits says (int8 features in, int8 logits out, as the
low-bit paper arXiv 2104.06666 keeps its first and last layers' precision), and so does every tensor an average pool
reads (kws_zoo.compress.qat.layer_configs says why). With per_channel=False every kernel is quantized per tensor.

What the simulation does not model (the error it leaves is measured in tests/compress/test_qat.py): the device
rounds an average pool's mean at its input's scale; it requantizes with fixed-point multipliers that round twice, so
a value within about 2**-7 of a half step can round the other way; a standalone BatchNormalization becomes MUL + ADD,
whose intermediate tensor the converter calibrates. (The feature Normalization's SUB + MUL is simulated:
QuantizedNormalization.)
"""
from __future__ import annotations

import dataclasses

from kws_zoo.core.compat import keras, tf  # first: TFMOT must see the legacy Keras (kws_zoo.core.compat)
import tensorflow_model_optimization as tfmot  # noqa: E402  (after compat, see above)

from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D

L = keras.layers
_tq = tfmot.quantization.keras
QuantizeConfig = _tq.QuantizeConfig
Quantizer = _tq.quantizers.Quantizer

IO_BITS = 8            # model input and outputs
_TINY = 1e-8           # smallest range: a channel or tensor of zeros still gets a valid (tiny) step


class _Comparable:
    """Equality by class and config (TFMOT compares quantizers and configs this way)."""

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))


@keras.saving.register_keras_serializable(package="kws_zoo")
class WeightQuantizer(_Comparable, Quantizer):
    """Symmetric narrow-range weight quantizer with num_bits (2..8), per output channel (per_axis) or per tensor.
    The range is the weights' own max |w| (TFMOT's "last value"). depthwise: the kernel is
    Keras' [kh, kw, C, m], whose output channels are the C*m columns of [kh, kw, 1, C*m]."""

    def __init__(self, num_bits: int = 8, per_axis: bool = True, depthwise: bool = False):
        self.num_bits, self.per_axis, self.depthwise = int(num_bits), bool(per_axis), bool(depthwise)

    def _flat(self, shape) -> list[int]:
        return [int(shape[0]), int(shape[1]), 1, int(shape[2]) * int(shape[3])] if self.depthwise else list(shape)

    def build(self, tensor_shape, name, layer):
        shape = (self._flat(tensor_shape)[-1],) if self.per_axis else ()
        return {"min_var": layer.add_weight(f"{name}_min", shape=shape, trainable=False,
                                            initializer=keras.initializers.Constant(-6.0)),
                "max_var": layer.add_weight(f"{name}_max", shape=shape, trainable=False,
                                            initializer=keras.initializers.Constant(6.0))}

    def __call__(self, inputs, training, weights, **kwargs):
        x = tf.reshape(inputs, self._flat(inputs.shape)) if self.depthwise else inputs
        # The range is always the weights' own (in inference too: a model converted without fine-tuning gets the
        # right ranges, not the variables' initial guess); training records it in min_var / max_var.
        axes = list(range(x.shape.rank - 1)) if self.per_axis else None
        top = tf.maximum(tf.stop_gradient(tf.reduce_max(tf.abs(x), axis=axes)), _TINY)
        if training:
            with tf.control_dependencies([weights["min_var"].assign(-top), weights["max_var"].assign(top)]):
                top = tf.identity(top)
        # The 8-bit narrow grid with this num_bits' step: -127..127 steps, the weights on -(2**(b-1)-1)..(2**(b-1)-1).
        limit = top * (127.0 / (2 ** (self.num_bits - 1) - 1))
        if self.per_axis:
            y = tf.quantization.fake_quant_with_min_max_vars_per_channel(x, -limit, limit, num_bits=8,
                                                                         narrow_range=True)
        else:
            y = tf.quantization.fake_quant_with_min_max_vars(x, -limit, limit, num_bits=8, narrow_range=True)
        return tf.reshape(y, inputs.shape) if self.depthwise else y

    def get_config(self):
        return {"num_bits": self.num_bits, "per_axis": self.per_axis, "depthwise": self.depthwise}


@keras.saving.register_keras_serializable(package="kws_zoo")
class ActivationQuantizer(_Comparable, Quantizer):
    """Asymmetric per-tensor activation quantizer with num_bits (2..8) on the 8-bit grid (module docstring).

    The range [lo, hi] (always containing 0) is a moving average of the batch min / max with `ema_decay`, as TFMOT's
    MovingAverageQuantizer, except that the first training batch sets it outright: TFMOT starts every range at
    [-6, 6] and moves it 0.1% per step, so a short fine-tune would deploy ranges that are mostly that guess."""

    def __init__(self, num_bits: int = 8, ema_decay: float = 0.999):
        self.num_bits, self.ema_decay = int(num_bits), float(ema_decay)

    def build(self, tensor_shape, name, layer):
        def var(suffix, value):
            return layer.add_weight(f"{name}_{suffix}", shape=(), trainable=False,
                                    initializer=keras.initializers.Constant(value))

        return {"min_var": var("min", -6.0), "max_var": var("max", 6.0), "seen_var": var("seen", 0.0)}

    def __call__(self, inputs, training, weights, **kwargs):
        lo_var, hi_var, seen = weights["min_var"], weights["max_var"], weights["seen_var"]
        if training:
            batch_lo = tf.stop_gradient(tf.minimum(tf.reduce_min(inputs), 0.0))
            batch_hi = tf.stop_gradient(tf.maximum(tf.reduce_max(inputs), 0.0))
            decay = seen * self.ema_decay  # 0 on the first batch
            lo = decay * lo_var + (1.0 - decay) * batch_lo
            hi = decay * hi_var + (1.0 - decay) * batch_hi
            with tf.control_dependencies([lo_var.assign(lo), hi_var.assign(hi), seen.assign(1.0)]):
                lo, hi = tf.identity(lo), tf.identity(hi)
        else:
            lo, hi = tf.convert_to_tensor(lo_var), tf.convert_to_tensor(hi_var)
        lo, hi = self.int8_range(lo, hi, self.num_bits)
        return tf.quantization.fake_quant_with_min_max_vars(inputs, lo, hi, num_bits=8, narrow_range=False)

    @staticmethod
    def int8_range(lo, hi, num_bits: int):
        """The (min, max) of the 8-bit FakeQuant equal to a num_bits FakeQuant on [lo, hi] up to its lowest value:
        the same step and zero point nudging, the top at the nudged num_bits maximum (itself for num_bits=8)."""
        hi = tf.maximum(hi, lo + _TINY)
        if num_bits == 8:
            return lo, hi
        levels = float(2 ** num_bits - 1)
        step = (hi - lo) / levels
        zero = tf.round(tf.clip_by_value(-lo / step, 0.0, levels))
        top = (levels - zero) * step
        return top - 255.0 * step, top

    def get_config(self):
        return {"num_bits": self.num_bits, "ema_decay": self.ema_decay}


def _range_vars(layer: L.Layer, prefix: str):
    """(lo, hi, seen) variables of a range learned over every value training has seen."""
    def var(suffix):
        return layer.add_weight(f"{prefix}_{suffix}", shape=(), trainable=False,
                                initializer=keras.initializers.Constant(0.0))

    return var("min"), var("max"), var("seen")


def _all_values_fake_quant(inputs, range_vars, training):
    """8-bit FakeQuant of `inputs` on the range of every value training has seen (TFMOT's AllValuesQuantizer), so
    the converter's int8 tensor never clips where training did not. `training` may be a Python or tensor bool."""
    lo_var, hi_var, seen = range_vars

    def quantize(train: bool):
        lo, hi = tf.convert_to_tensor(lo_var), tf.convert_to_tensor(hi_var)
        if train:
            batch_lo = tf.stop_gradient(tf.minimum(tf.reduce_min(inputs), 0.0))
            batch_hi = tf.stop_gradient(tf.maximum(tf.reduce_max(inputs), 0.0))
            first = tf.equal(seen, 0.0)
            lo = tf.where(first, batch_lo, tf.minimum(lo, batch_lo))
            hi = tf.where(first, batch_hi, tf.maximum(hi, batch_hi))
            with tf.control_dependencies([lo_var.assign(lo), hi_var.assign(hi), seen.assign(1.0)]):
                lo, hi = tf.identity(lo), tf.identity(hi)
        return tf.quantization.fake_quant_with_min_max_vars(inputs, lo, tf.maximum(hi, lo + _TINY), num_bits=8,
                                                            narrow_range=False)

    if training is None:
        training = keras.backend.learning_phase()
    if tf.is_tensor(training):
        return tf.cond(tf.cast(training, tf.bool), lambda: quantize(True), lambda: quantize(False))
    return quantize(bool(training))


@keras.saving.register_keras_serializable(package="kws_zoo")
class InputQuantizer(L.Layer):
    """The model input's 8-bit quantizer, the layer kws_zoo.compress.qat puts right after each model input (range:
    _all_values_fake_quant). (TFMOT's own QuantizeLayer does not survive a .keras round trip: its build() leaves
    `built` unset, so loading builds it twice and fails on the extra variables.)"""

    def __init__(self, **kwargs):  # no arguments of its own: its range is learned
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.lo, self.hi, self.seen = _range_vars(self, "input")
        super().build(input_shape)

    def call(self, inputs, training=None):
        return _all_values_fake_quant(inputs, (self.lo, self.hi, self.seen), training)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="kws_zoo")
class QuantizedNormalization(L.Normalization):
    """The feature Normalization as the int8 device computes it: TFLite lowers (x - mean) / std to SUB then MUL by
    1/std, the two constants int8 per tensor, with an int8 tensor between the ops whose range the converter would
    otherwise calibrate unseen by QAT (measured on MatchboxNet: it and the input were the only tensors that moved
    with the representative set). Here all three are quantized in training too (the SUB output's range:
    _all_values_fake_quant); the layer's output quantizer is its QAT config's.
    kws_zoo.compress.qat swaps it in for Normalization and back (strip_qat)."""

    def build(self, input_shape):
        if self.invert:
            raise ValueError(f"{self.name}: QAT of an inverting Normalization is not supported")
        super().build(input_shape)
        self.centred_range = _range_vars(self, "centred")

    def call(self, inputs, training=None):
        # The two constants are int8 tensors on the device too (per tensor, their range widened to hold 0).
        mean = _constant_fake_quant(self.mean)
        inverse_std = _constant_fake_quant(1.0 / tf.maximum(tf.sqrt(self.variance), keras.backend.epsilon()))
        centred = tf.cast(self._standardize_inputs(inputs), self.compute_dtype) - mean
        return _all_values_fake_quant(centred, self.centred_range, training) * inverse_std


def _constant_fake_quant(values):
    return tf.quantization.fake_quant_with_min_max_vars(values, tf.minimum(tf.reduce_min(values), 0.0),
                                                        tf.maximum(tf.reduce_max(values), 0.0), num_bits=8)


@keras.saving.register_keras_serializable(package="kws_zoo")
class WeightedConfig(_Comparable, QuantizeConfig):
    """A layer with a kernel (Conv2D, DepthwiseConv2D, StridedDepthwiseConv2D, Dense): its kernels through a
    WeightQuantizer; its `activation` (linear after re-parameterization) followed by an ActivationQuantizer unless
    quantize_output=False (the output feeds a ReLU that TFLite fuses into this op). Biases stay float: TFLite stores
    them as int32 at the input scale times the weight scale, far finer than any activation step."""

    def __init__(self, weight_attrs=("kernel",), weight_bits: int = 8, activation_bits: int = 8,
                 quantize_output: bool = True, per_axis: bool = True, depthwise: bool = False):
        self.weight_attrs = [str(a) for a in weight_attrs]
        self.weight_bits, self.activation_bits = int(weight_bits), int(activation_bits)
        self.quantize_output, self.per_axis, self.depthwise = bool(quantize_output), bool(per_axis), bool(depthwise)

    def get_weights_and_quantizers(self, layer):
        return [(getattr(layer, attr), WeightQuantizer(self.weight_bits, self.per_axis, self.depthwise))
                for attr in self.weight_attrs]

    def set_quantize_weights(self, layer, quantize_weights):
        if len(quantize_weights) != len(self.weight_attrs):
            raise ValueError(f"{layer.name}: {len(quantize_weights)} quantized weights for {self.weight_attrs}")
        for attr, value in zip(self.weight_attrs, quantize_weights):
            setattr(layer, attr, value)

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, ActivationQuantizer(self.activation_bits))] if self.quantize_output else []

    def set_quantize_activations(self, layer, quantize_activations):
        if quantize_activations:
            layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {"weight_attrs": list(self.weight_attrs), "weight_bits": self.weight_bits,
                "activation_bits": self.activation_bits, "quantize_output": self.quantize_output,
                "per_axis": self.per_axis, "depthwise": self.depthwise}


@keras.saving.register_keras_serializable(package="kws_zoo")
class OutputConfig(_Comparable, QuantizeConfig):
    """A layer without kernels whose output is a new int8 tensor on the device: one ActivationQuantizer on the
    output (none with quantize_output=False: a ReLU fused into this op follows, e.g. ADD + RELU)."""

    def __init__(self, activation_bits: int = 8, quantize_output: bool = True):
        self.activation_bits, self.quantize_output = int(activation_bits), bool(quantize_output)

    def get_weights_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [ActivationQuantizer(self.activation_bits)] if self.quantize_output else []

    def get_config(self):
        return {"activation_bits": self.activation_bits, "quantize_output": self.quantize_output}


@keras.saving.register_keras_serializable(package="kws_zoo")
class PassConfig(OutputConfig):
    """A layer that moves, drops or averages values at their own scale (reshape, padding, dropout, pooling): no
    quantizer; TFLite gives its output the input's scale."""

    def __init__(self):
        super().__init__(quantize_output=False)

    def get_config(self):
        return {}


# --------------------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Rule:
    kind: str                          # "weighted" | "output" | "pass"
    weight_attrs: tuple[str, ...] = ()
    per_axis: bool = True
    depthwise: bool = False


RULES: dict[type, Rule] = {
    StridedDepthwiseConv2D: Rule("weighted", ("depthwise_kernel",), depthwise=True),
    L.DepthwiseConv2D: Rule("weighted", ("depthwise_kernel",), depthwise=True),
    L.Conv2D: Rule("weighted", ("kernel",)),
    L.Dense: Rule("weighted", ("kernel",), per_axis=False),
    L.ReLU: Rule("output"),
    L.Activation: Rule("output"),      # by activation: see ACTIVATIONS
    L.Add: Rule("output"),
    L.Multiply: Rule("output"),
    L.Concatenate: Rule("output"),
    L.GlobalAveragePooling2D: Rule("output"),
    L.BatchNormalization: Rule("output"),
    L.Normalization: Rule("output"),
    L.Reshape: Rule("pass"),
    L.Flatten: Rule("pass"),
    L.Permute: Rule("pass"),
    L.Dropout: Rule("pass"),           # SpatialDropout1D/2D subclass it
    L.ZeroPadding1D: Rule("pass"),
    L.ZeroPadding2D: Rule("pass"),
    L.Cropping1D: Rule("pass"),
    L.Cropping2D: Rule("pass"),
    L.AveragePooling2D: Rule("pass"),
    L.MaxPooling2D: Rule("pass"),
    L.GlobalMaxPooling2D: Rule("pass"),
}
# Activation layers by function name: None = no rule (the int8 kernels of sigmoid/tanh/softmax have fixed output
# scales this table does not model).
ACTIVATIONS = {"relu": Rule("output"), "relu6": Rule("output"), "swish": Rule("output"), "silu": Rule("output"),
               "linear": Rule("pass")}
# Layers whose TFLite op takes a following RELU / RELU6 as its fused_activation_function.
FUSES_RELU = (L.Conv2D, L.DepthwiseConv2D, L.Dense, L.Add)


def rule_for(layer: L.Layer) -> Rule | None:
    """The table's rule for `layer`, None if it has none."""
    for cls in type(layer).__mro__:
        if cls in RULES:
            if cls is L.Activation:
                return ACTIVATIONS.get(getattr(layer.activation, "__name__", ""))
            return RULES[cls]
    return None


def is_fusable_relu(layer: L.Layer) -> bool:
    """A ReLU that TFLite folds into the op before it (fused_activation_function RELU or RELU6)."""
    if type(layer) is L.ReLU:
        cfg = layer.get_config()
        return not cfg.get("negative_slope") and not cfg.get("threshold") and cfg.get("max_value") in (None, 6.0)
    if type(layer) is L.Activation:
        return getattr(layer.activation, "__name__", "") in ("relu", "relu6")
    return False


def make_config(rule: Rule, *, weight_bits: int, activation_bits: int, quantize_output: bool = True) -> QuantizeConfig:
    """The QuantizeConfig of a layer under `rule`."""
    if rule.kind == "weighted":
        return WeightedConfig(rule.weight_attrs, weight_bits, activation_bits, quantize_output, rule.per_axis,
                              rule.depthwise)
    if rule.kind == "output":
        return OutputConfig(activation_bits, quantize_output)
    return PassConfig()


# Every class a saved QAT model of kws_zoo may name (kws_zoo.compress.qat.qat_scope).
CUSTOM_OBJECTS = {cls.__name__: cls for cls in (WeightQuantizer, ActivationQuantizer, InputQuantizer,
                                                 QuantizedNormalization, WeightedConfig, OutputConfig, PassConfig)}
