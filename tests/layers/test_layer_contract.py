"""Every custom layer of kws_zoo/layers/ keeps the contract of helpers.run_layer_test: config round trip, .keras
save/load, plain form equal in inference, int8 on TFLM near float. A point that does not apply is named with its
reason in CASES; a layer registered under "kws_zoo" without a case fails test_every_registered_layer_has_a_case."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any

import numpy as np
import pytest

import kws_zoo
from kws_zoo.compress.pruning import PruneLowMagnitude
from kws_zoo.compress.qat import QuantizeWrapperV2, qat_scope
from kws_zoo.compress.quantize_configs import InputQuantizer, QuantizedNormalization, make_config, rule_for
from kws_zoo.core.compat import keras
from kws_zoo.layers.rep_conv import RepConv2D
from kws_zoo.layers.sinc_conv import SincConv
from kws_zoo.layers.stream import Stream
from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D
from kws_zoo.layers.subspectral_norm import SubSpectralNorm
from kws_zoo.layers.ternary_pointwise import TernaryPointwise

from helpers import LAYER_CONTRACT, run_layer_test

# Stream is not built by hand in the package: kws_zoo.export.streaming.to_streaming wraps layers already made plain
# and exports the streaming graph through kws_zoo.export.streaming_tflite (tested with TflmStreamingModel in the
# stream-export tests). These are its reasons, shared by both modes.
STREAM_NOT_PLAIN = ("Stream has no training form: to_streaming wraps layers that to_plain has already made plain, "
                    "so the plain point has nothing to fold")
STREAM_NOT_INT8 = ("a Stream graph carries state: two inputs and outputs (external) or resource variables "
                   "(internal), which to_tflite_int8 does not take; its int8 export is "
                   "export.streaming_tflite, checked on TflmStreamingModel in the stream-export tests")


@dataclasses.dataclass(frozen=True)
class LayerCase:
    id: str
    cls: type
    init_kwargs: dict[str, Any]
    input_shape: Any  # one shape without the batch axis, or a list of them
    batch: int = 4
    not_applicable: dict[str, str] = dataclasses.field(default_factory=dict)
    input_data: Any = None
    scope: Any = contextlib.nullcontext  # the custom-object scope its saved form loads in


def _audio(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return 0.3 * rng.standard_normal(shape)  # raw audio around the level of speech at 16 kHz


QAT_NOT_PLAIN = ("a QAT wrapper has no training-only parametrisation to swap: kws_zoo.compress.qat.strip_qat turns a "
                 "whole QAT model into its float form (tests/compress/test_qat.py)")
QAT_NOT_INT8 = ("a lone wrapper has no input quantizer, so its int8 export is post-training calibration; whole QAT "
                "models go through to_tflite_int8_qat and are checked on TFLM in tests/compress/test_qat.py")

QAT_INPUT_NOT_INT8 = ("its range is what QAT training has seen (none here: the contract's weights are drawn, not "
                     "trained); QAT models with trained ranges are checked on TFLM in tests/compress/test_qat.py")

CASES = [
    LayerCase("rep_conv_regular_identity", RepConv2D,
              dict(filters=6, kernel_size=3, branch_kernels=((1, 1), (3, 1)), name="rep"), (7, 6, 6)),
    LayerCase("rep_conv_depthwise_strided", RepConv2D,
              dict(filters=None, kernel_size=(3, 3), strides=(1, 2), depthwise=True,
                   branch_kernels=((1, 1), (1, 3)), name="rep"), (7, 8, 4)),
    LayerCase("rep_conv_valid_dilated", RepConv2D,  # the streaming form: time not padded, dilated over time
              dict(filters=5, kernel_size=(3, 3), dilation_rate=(2, 1), padding="valid",
                   branch_kernels=((1, 1), (3, 1)), name="rep"), (9, 6, 5)),
    LayerCase("subspectral_norm", SubSpectralNorm, dict(sub_bands=4, name="ssn"), (5, 8, 3)),
    LayerCase("sinc_conv_valid", SincConv, dict(filters=6, kernel_size=51, strides=8, name="sinc"), (400, 1, 1),
              input_data=_audio),
    LayerCase("sinc_conv_same", SincConv, dict(filters=4, kernel_size=31, strides=10, padding="same", name="sinc"),
              (300, 1, 1), input_data=_audio),
    LayerCase("ternary_pointwise", TernaryPointwise, dict(filters=12, seed=3, sparsity=0.5, name="tern"), (6, 1, 8)),
    LayerCase("ternary_pointwise_scaled", TernaryPointwise,
              dict(filters=10, seed=4, sparsity=0.25, use_scale=True, name="tern"), (6, 1, 8)),
    LayerCase("strided_depthwise", StridedDepthwiseConv2D,
              dict(kernel_size=3, strides=(1, 2), padding="same", name="dw"), (6, 8, 4)),
    LayerCase("stream_external", Stream,
              dict(layer=keras.layers.Conv2D(4, (3, 1), name="conv"), state_frames=2, mode="external", name="s"),
              [(3, 5, 2), (2, 5, 2)],
              not_applicable={"plain": STREAM_NOT_PLAIN, "int8": STREAM_NOT_INT8}),
    LayerCase("stream_internal", Stream,
              dict(layer=keras.layers.DepthwiseConv2D((3, 1), name="dw"), state_frames=2, mode="internal",
                   name="s"),
              (2, 5, 3), batch=1,  # the internal ring buffer holds one stream
              not_applicable={"plain": STREAM_NOT_PLAIN, "int8": STREAM_NOT_INT8}),
    # The pruning wrapper (compress stage): its plain form is the wrapped layer with the mask applied.
    LayerCase("prune_low_magnitude_depthwise_block", PruneLowMagnitude,
              dict(layer=keras.layers.DepthwiseConv2D(3, padding="same", name="dw"), block_size=(1, 4)), (6, 8, 4)),
    # The QAT input quantizer (compress stage): a fake quantizer over the range training has seen.
    LayerCase("input_quantizer", InputQuantizer, dict(name="inq"), (6, 8, 4),
              not_applicable={"int8": QAT_INPUT_NOT_INT8}),
    # The QAT feature normalization: its SUB output quantized over the range training has seen.
    LayerCase("quantized_normalization", QuantizedNormalization,
              dict(axis=-1, mean=[0.5, -1.0, 2.0, 0.0], variance=[1.0, 4.0, 0.25, 2.0], name="qnorm"), (6, 8, 4),
              not_applicable={"int8": QAT_INPUT_NOT_INT8}),
    LayerCase("quantize_wrapper_conv", QuantizeWrapperV2,
              dict(layer=keras.layers.Conv2D(4, 3, padding="same", name="conv"),
                   quantize_config=make_config(rule_for(keras.layers.Conv2D(4, 3)), weight_bits=4, activation_bits=8),
                   name="quant_conv"), (6, 8, 3),
              not_applicable={"plain": QAT_NOT_PLAIN, "int8": QAT_NOT_INT8},
              scope=qat_scope),
]


def _fresh_kwargs(case: LayerCase) -> dict:
    """A wrapped layer instance is owned by the first wrapper: each run gets its own copy from the config."""
    return {k: v.__class__.from_config(v.get_config()) if isinstance(v, keras.layers.Layer) else v
            for k, v in case.init_kwargs.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_custom_layer_contract(case, tmp_path, record_property):
    with case.scope():
        measured = run_layer_test(case.cls, _fresh_kwargs(case), case.input_shape, batch=case.batch,
                                  not_applicable=case.not_applicable, input_data=case.input_data, tmp_dir=tmp_path)
    for key, value in measured.items():
        record_property(key, value)
    assert {p for p in LAYER_CONTRACT if p not in case.not_applicable} <= {k.split("_")[0] for k in measured}


def _import_every_module() -> list:
    """Registration happens at import: every kws_zoo module is imported, wherever a layer might be defined.
    Returns the modules; fails listing every module that does not import."""
    modules, broken = [], []
    for info in pkgutil.walk_packages(kws_zoo.__path__, "kws_zoo."):
        try:
            modules.append(importlib.import_module(info.name))
        except Exception as err:  # noqa: BLE001 (each failure is reported below)
            broken.append(f"{info.name}: {type(err).__name__}: {err}")
    assert not broken, "kws_zoo modules that do not import:\n" + "\n".join(broken)
    return modules


def test_every_registered_layer_has_a_case():
    _import_every_module()
    registered = {name.split(">", 1)[1]: cls for name, cls in keras.saving.get_custom_objects().items()
                  if name.startswith("kws_zoo>") and inspect.isclass(cls) and issubclass(cls, keras.layers.Layer)}
    covered = {case.cls.__name__ for case in CASES}
    missing = sorted(set(registered) - covered)
    assert not missing, f"custom layers registered under 'kws_zoo' with no case in CASES: {missing}"


def test_every_layer_class_of_the_package_is_registered():
    """A custom layer that is not registered cannot come back from a .keras file (nor be in CASES above)."""
    modules = _import_every_module()
    registered = {cls for cls in keras.saving.get_custom_objects().values() if inspect.isclass(cls)}
    unregistered = []
    for module in modules:
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and obj.__module__ == module.__name__ and issubclass(obj, keras.layers.Layer)
                    and not issubclass(obj, keras.Model) and obj not in registered):
                unregistered.append(f"{module.__name__}.{name}")
    assert not unregistered, f"keras layers defined in kws_zoo without register_keras_serializable: {unregistered}"


def test_every_case_states_a_reason_for_each_point_it_leaves_out():
    for case in CASES:
        for point, reason in case.not_applicable.items():
            assert point in LAYER_CONTRACT and len(reason.split()) >= 5, (case.id, point, reason)


class _WrongPlainForm(TernaryPointwise):
    """A test double whose plain form is 1% off: the contract must notice."""

    def plain_layer(self):
        conv, [kernel] = super().plain_layer()
        return conv, [kernel * 1.01]


def test_the_contract_catches_a_plain_form_one_percent_off(tmp_path):
    double = "a test double, deliberately not registered under kws_zoo"
    with pytest.raises(AssertionError, match="plain form"):
        run_layer_test(_WrongPlainForm, dict(filters=6, seed=1, name="tern"), (4, 1, 5), tmp_dir=tmp_path,
                       not_applicable={"config": double, "saving": double, "int8": "the plain point fails first"})
