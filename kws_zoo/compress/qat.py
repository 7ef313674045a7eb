"""Quantization-aware training (TFMOT) of the re-parameterized inference graph, 8-bit or fewer bits.

The stage order (kws_zoo.compress.config): train -> re-parameterize -> compress (prune / DSNN, then QAT) the
single-branch inference form -> export. So QAT fine-tunes exactly the merged kernels the device runs.

`quantize_model(model, cfg)` wraps every layer of a functional single-branch model (what
kws_zoo.reparam.reparameterize returns) in a TFMOT QuantizeWrapperV2 with the QuantizeConfig the table of
kws_zoo.compress.quantize_configs gives it, so the fake quantizers sit where the int8 TFLite graph has its int8
tensors: per-channel weights of every conv, one quantizer per op output, none between an op and the ReLU TFLite
fuses into it, none on reshapes, padding, dropout and pooling. Fine-tune the result like any Keras model (compile,
fit: the first training batch sets every activation range, later ones move it by moving average), then
kws_zoo.export.tflite.to_tflite_int8_qat converts it with the ranges it learned.

`qat_scope()` opens a saved QAT model: `with qat_scope(): keras.models.load_model(path)`.
`strip_qat(qat_model)` is the float model the QAT model simulates (standard layers, kernels on their quantized grid),
for the rewrites that need standard layers (kws_zoo.export.streaming.to_streaming).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator

import numpy as np

from kws_zoo.core.compat import keras
import tensorflow_model_optimization as tfmot  # noqa: E402  (after compat: TFMOT must see the legacy Keras)
# Not exported by TFMOT's public API; the wrapper's config must see through it (QuantizeWrapperV2.get_config).
from tensorflow_model_optimization.python.core.quantization.keras.quantize_aware_activation import (  # noqa: E402
    QuantizeAwareActivation)

from kws_zoo.compress.config import QatConfig
from kws_zoo.compress.quantize_configs import (CUSTOM_OBJECTS, FUSES_RELU, IO_BITS, InputQuantizer,
                                               QuantizedNormalization, WeightedConfig, WeightQuantizer,
                                               is_fusable_relu, make_config, rule_for)
from kws_zoo.core.errors import ConfigError
from kws_zoo.models.graph import inbound_refs, is_functional, rename_refs

_tq = tfmot.quantization.keras
_transforms = _tq.graph_transformations.transforms


def _readers(model: keras.Model) -> tuple[dict[str, list[str]], set[str]]:
    """({layer name: names of the layers reading its output}, names of the layers whose output the model returns)."""
    config = model.get_config()
    readers: dict[str, list[str]] = {entry["name"]: [] for entry in config["layers"]}
    for entry in config["layers"]:
        for ref in inbound_refs(entry["inbound_nodes"]):
            readers[ref[0]].append(entry["name"])
    return readers, {ref[0] for ref in inbound_refs(config["output_layers"])}


# --------------------------------------------------------------------------------------------------------------
# Quantizing
# --------------------------------------------------------------------------------------------------------------

def layer_configs(model: keras.Model, cfg: QatConfig = QatConfig()) -> dict[str, _tq.QuantizeConfig]:
    """{layer name: QuantizeConfig} for every layer of `model` but its inputs: the table's rule
    (kws_zoo.compress.quantize_configs.rule_for) with cfg's bits, and two facts of the graph:
      - an op TFLite fuses a ReLU into (conv, dense, add) whose only reader is such a ReLU has no output quantizer;
      - a tensor the model returns, or an average pool reads (through pass layers such as dropout), keeps 8 bits
        whatever cfg.activation_bits says: TFLite's AVERAGE_POOL_2D returns its input's scale, so from a b-bit
        input the device would round every average to b bits, which no quantizer of the QAT graph can see
        (measured on an untrained DS-CNN, random input, activation_bits=4: TFLM and the QAT model 65 output steps
        apart at most without this rule, 16 with it).
    cfg.per_channel=False quantizes conv weights per tensor too. Raises ConfigError naming every layer without a
    rule."""
    readers, outputs = _readers(model)
    layers = {layer.name: layer for layer in model.layers}
    rules = {name: rule_for(layer) for name, layer in layers.items() if not isinstance(layer, keras.layers.InputLayer)}
    unknown = [f"{name} ({type(layers[name]).__name__})" for name, rule in rules.items() if rule is None]
    if unknown:
        raise ConfigError(f"{model.name}: no QAT rule for layer(s) {', '.join(unknown)}; quantize the "
                          "re-parameterized model (kws_zoo.reparam.reparameterize), which holds standard layers only")

    def keeps_8_bits(name: str) -> bool:
        return name in outputs or any(
            isinstance(layers[reader], keras.layers.AveragePooling2D)
            or (rules[reader].kind == "pass" and keeps_8_bits(reader)) for reader in readers[name])

    configs: dict[str, _tq.QuantizeConfig] = {}
    for name, rule in rules.items():
        mine = readers[name]
        fused = (isinstance(layers[name], FUSES_RELU) and name not in outputs and len(mine) == 1
                 and is_fusable_relu(layers[mine[0]]))
        if not cfg.per_channel:
            rule = dataclasses.replace(rule, per_axis=False)
        configs[name] = make_config(rule, weight_bits=cfg.weight_bits, quantize_output=not fused,
                                    activation_bits=IO_BITS if keeps_8_bits(name) else cfg.activation_bits)
    return configs


class _QuantizeInputs(_transforms.Transform):
    """InputLayer => InputLayer -> InputQuantizer for the inputs named (TFMOT's InputLayerQuantize, with kws_zoo's
    loadable layer)."""

    def __init__(self, names: set[str]):
        self.names = names

    def pattern(self):
        return _transforms.LayerPattern("InputLayer")

    def replacement(self, match_layer):
        name = match_layer.layer["config"]["name"]
        if name not in self.names:
            return match_layer
        layer = InputQuantizer(name=f"{name}_quantizer")
        config = {"class_name": "InputQuantizer", "config": layer.get_config(), "name": layer.name}
        return _transforms.LayerNode(config, input_layers=[match_layer])

    def custom_objects(self):
        return {"InputQuantizer": InputQuantizer}


class _InputsOnlyLayout(_tq.QuantizeLayoutTransform):
    """TFMOT's layout step without its fusing transforms (kws_zoo.compress.quantize_configs says why): only model
    inputs get a quantizer, the ones named."""

    def __init__(self, names: set[str]):
        self.names = names

    def apply(self, model, layer_quantize_map):
        return _tq.graph_transformations.model_transformer.ModelTransformer(
            model, [_QuantizeInputs(self.names)], set(layer_quantize_map), layer_quantize_map).transform()


class _Scheme(_tq.QuantizeScheme):
    def __init__(self, quantized_inputs: set[str]):
        self.quantized_inputs = quantized_inputs

    def get_layout_transformer(self):
        return _InputsOnlyLayout(self.quantized_inputs)

    def get_quantize_registry(self):
        # Every layer comes annotated with its config, so quantize_apply never consults the registry.
        return _tq.default_8bit.Default8BitQuantizeRegistry()


def quantize_model(model: keras.Model, cfg: QatConfig = QatConfig()) -> keras.Model:
    """The QAT form of a functional inference model (kws_zoo.reparam.reparameterize first): its weights, every layer
    in a TFMOT QuantizeWrapperV2 with its config (layer_configs), each input behind an 8-bit InputQuantizer; not
    compiled. Layer names gain TFMOT's prefix 'quant_'. Its activation ranges are placeholders until the first
    training batch sets them: fine-tune before converting (to_tflite_int8_qat refuses an unset range). Raises
    ConfigError for a model or layer it cannot quantize."""
    if not is_functional(model):
        raise ConfigError(f"{getattr(model, 'name', model)}: QAT needs a functional keras.Model")
    configs = layer_configs(model, cfg)
    quantized_inputs = {layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer)}

    def annotate(layer):  # wraps the layer itself: the annotated clone shares its (already built) weights
        if type(layer) is keras.layers.Normalization and layer.input_mean is not None:  # constants: config makes it
            layer = QuantizedNormalization.from_config(layer.get_config())
        return _tq.quantize_annotate_layer(layer, configs[layer.name]) if layer.name in configs else layer

    with qat_scope():
        annotated = keras.models.clone_model(model, clone_function=annotate)
        qat = _tq.quantize_apply(annotated, scheme=_Scheme(quantized_inputs))
    qat._name = f"{model.name}_qat"  # noqa: SLF001 - keras has no public renamer
    return qat


# --------------------------------------------------------------------------------------------------------------
# Saving and unwrapping
# --------------------------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="kws_zoo")
class QuantizeWrapperV2(_tq.QuantizeWrapperV2):
    """TFMOT's QuantizeWrapperV2, loadable from .keras: qat_scope() opens every saved QuantizeWrapperV2 as this class
    (the same class name: a .keras file keys each layer's variables by it). TFMOT's build() lists the wrapped layer's
    weights among its own before it builds that layer: a fresh wrapper (around a built layer) lists them, one being
    loaded (around an unbuilt layer) does not, and loading fails on the count ("Layer 'quant_stem_conv' expected 4
    variables, but received 6"). Building the layer first makes the two lists equal."""

    def __init__(self, layer, quantize_config, name_prefix: str = "quant_", **kwargs):
        super().__init__(layer, quantize_config, name_prefix=name_prefix, **kwargs)
        self.name_prefix = name_prefix  # only names a wrapper made without a name; kept so the config is complete

    def get_config(self):
        # build() swaps the wrapped layer's activation for a QuantizeAwareActivation around it; the config must name
        # the original, or a wrapper made from it would wrap that activation twice.
        config = {**super().get_config(), "name_prefix": self.name_prefix}
        activation = getattr(self.layer, "activation", None)
        if isinstance(activation, QuantizeAwareActivation):
            config["layer"]["config"]["activation"] = keras.activations.serialize(activation.activation)
        return config

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
            self.layer.built = True
        super().build(input_shape)


@contextlib.contextmanager
def qat_scope() -> Iterator[None]:
    """Within it, Keras deserializes QAT models of this module: `with qat_scope(): keras.models.load_model(path)`
    (TFMOT's classes, the quantizers, configs and InputQuantizer of kws_zoo.compress.quantize_configs, the loadable
    QuantizeWrapperV2 above)."""
    with _tq.quantize_scope(), keras.utils.custom_object_scope(
            {**CUSTOM_OBJECTS, "QuantizeWrapperV2": QuantizeWrapperV2}):
        yield


def strip_qat(qat_model: keras.Model) -> keras.Model:
    """The float model `qat_model` simulates, without its quantizers: the original layers and names, each kernel
    replaced by its fake-quantized value (the b-bit grid of its channel), biases and other weights as trained.
    Activations are float: a converter calibrates them anew (for what that leaves out, see
    tests/compress/test_qat.py on streaming)."""
    config = copy.deepcopy(qat_model.get_config())
    rename: dict[str, str] = {}
    entries, values = [], {}
    for entry in config["layers"]:
        layer = qat_model.get_layer(entry["name"])
        if isinstance(layer, InputQuantizer):
            rename[layer.name] = inbound_refs(entry["inbound_nodes"])[0][0]
            continue
        if isinstance(layer, _tq.QuantizeWrapper):
            inner = layer.layer
            rename[layer.name] = inner.name
            entry = {**entry["config"]["layer"], "name": inner.name, "inbound_nodes": entry["inbound_nodes"]}
            if isinstance(inner, QuantizedNormalization):
                entry = {key: value for key, value in entry.items() if key not in ("module", "registered_name")}
                entry["class_name"] = "Normalization"
            values[inner.name] = _stripped_weights(layer)
        entries.append({**entry, "inbound_nodes": rename_refs(entry["inbound_nodes"], rename)})
    config = {**config, "layers": entries, "output_layers": rename_refs(config["output_layers"], rename),
              "input_layers": rename_refs(config["input_layers"], rename), "name": qat_model.name.removesuffix("_qat")}
    with qat_scope():
        model = keras.Model.from_config(config)
    for name, by_name in values.items():
        layer = model.get_layer(name)
        layer.set_weights([by_name[w.name.split("/")[-1]] for w in layer.weights])
    return model


def _stripped_weights(wrapper) -> dict[str, np.ndarray]:
    """{'kernel:0': value, ...} of the wrapped layer, quantized kernels as the wrapper quantizes them."""
    by_name = {w.name.split("/")[-1]: w for w in [*wrapper.layer.weights, *wrapper.weights]}
    out = {name: w.numpy() for name, w in by_name.items()}
    config = wrapper.quantize_config
    if isinstance(config, WeightedConfig):
        quantizer = WeightQuantizer(config.weight_bits, config.per_axis, config.depthwise)
        for attr in config.weight_attrs:
            out[f"{attr}:0"] = quantizer(by_name[f"{attr}:0"], False, {}).numpy()
    return out


__all__ = ["layer_configs", "qat_scope", "quantize_model", "strip_qat", "QuantizeWrapperV2"]
