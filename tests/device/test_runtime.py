"""Firmware side: TFLM vs LiteRT parity, arena measurement, C array, op resolver, callgrind."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError, DeviceError
from kws_zoo.device import flatbuffer
from kws_zoo.device.c_array import compile_check, write_c_array
from kws_zoo.device.callgrind import instructions_per_invoke
from kws_zoo.device.flatbuffer import quant_params
from kws_zoo.device.op_resolver import tflm_method, write_op_resolver
from kws_zoo.device.quant import dequantize, quantize
from kws_zoo.device.runtime import MIN_AUTO_ARENA, LiteRtModel, TflmModel, capture_c_stderr
from kws_zoo.device.verify import verify_on_tflm
from kws_zoo.export import tflite as export

from helpers import tiny_cnn

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_tflm")

L = keras.layers
OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN"]


def _textures(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """4 classes a conv + global pooling can tell apart: flat, time stripes, bin stripes, checks."""
    labels = rng.integers(0, 4, n)
    t, f = np.meshgrid(np.arange(49), np.arange(10), indexing="ij")
    patterns = np.stack([np.zeros((49, 10)), (t % 2) * 2.0 - 1, (f % 2) * 2.0 - 1,
                         ((t + f) % 2) * 2.0 - 1])
    x = patterns[labels] + rng.normal(scale=0.5, size=(n, 49, 10))
    return x[..., None].astype(np.float32), labels


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _textures(480, rng)
    model = tiny_cnn()
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:320], y[:320], epochs=6, batch_size=32, verbose=0)
    x_test, y_test = x[320:], y[320:]
    keras_acc = float(np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test))
    model_bytes = export.to_tflite_int8(model, x[:320], num_samples=200)
    return model_bytes, x_test, y_test, keras_acc


@pytest.fixture(scope="module")
def tflm_model(trained) -> TflmModel:
    return TflmModel(trained[0])


def test_tflm_matches_litert_reference_kernels(trained, tflm_model):
    _, x, _, _ = trained
    xq, _ = tflm_model.prepare_input(x)
    ref = LiteRtModel(trained[0], resolver="reference").predict(xq).astype(int)
    got = tflm_model.predict(xq)
    assert got.dtype == np.int8 and got.shape == (len(x), 4)
    # Conv/depthwise/mean are bit-exact; per-channel FULLY_CONNECTED rounds a tie differently
    # now and then (seen: 5 of 640 logits off by one).
    diff = np.abs(got.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.05


def test_tflm_within_3_lsb_of_litert_default(trained, tflm_model):
    _, x, _, _ = trained
    xq, _ = tflm_model.prepare_input(x)
    a = tflm_model.predict(xq).astype(int)
    b = LiteRtModel(trained[0]).predict(xq).astype(int)
    assert np.abs(a - b).max() <= 3
    # Top-1 may only flip where TFLM's own top-2 margin is within the tolerance.
    top2 = np.sort(a, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 6
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(a.argmax(1)[clear], b.argmax(1)[clear])


def test_float_input_is_quantized_and_output_dequantized(trained, tflm_model):
    _, x, _, _ = trained
    in_s, in_zp, out_s, out_zp = quant_params(trained[0])
    y_float = tflm_model.predict(x[:8, ..., 0])  # channel axis may be omitted
    y_int8 = tflm_model.predict(quantize(x[:8], in_s, in_zp))
    assert y_float.dtype == np.float32
    np.testing.assert_array_equal(y_float, dequantize(y_int8, out_s, out_zp))
    with pytest.raises(TypeError):
        tflm_model.predict(x[:2].astype(np.int16))


def test_verify_on_tflm_reports_deployment_accuracy(trained):
    model_bytes, x, y, keras_acc = trained
    rep = verify_on_tflm(model_bytes, x, y)
    assert rep["n"] == len(y)
    assert keras_acc > 0.9, "fixture model did not learn; the comparison below would be vacuous"
    assert abs(rep["tflm_accuracy"] - keras_acc) <= 0.05
    assert abs(rep["tflm_accuracy"] - rep["litert_accuracy"]) <= 0.02
    assert rep["top1_agreement"] >= 0.97 and rep["max_lsb_diff"] <= 3
    assert rep["arena_bytes"] > 0 and rep["tflm_invoke_ms"] > 0 and rep["litert_invoke_ms"] > 0


def test_arena_bytes_is_the_real_minimum(trained, tflm_model):
    used = tflm_model.arena_bytes
    assert 1000 < used < 64 * 1024
    assert tflm_model.arena_size == used  # auto mode rebuilt the interpreter at the measured size
    assert TflmModel(trained[0], arena_size=1 << 20).arena_bytes == used
    with pytest.raises(DeviceError, match="missing"):
        TflmModel(trained[0], arena_size=used - 16)


def test_unsupported_op_fails_without_arena_search():
    inp = keras.Input((8,))
    fb = export.to_tflite_float(keras.Model(inp, L.Dense(4, activation="gelu")(inp)))
    assert "GELU" in flatbuffer.tflite_ops(fb)
    with pytest.raises(DeviceError, match="GELU") as err:
        TflmModel(fb)
    assert f"arena {MIN_AUTO_ARENA} bytes" in str(err.value)  # first attempt, not a doubled one


def test_capture_c_stderr_reads_fd2_and_restores_it():
    before = os.fstat(2)
    with capture_c_stderr() as log:
        os.write(2, b"written below Python\n")
    assert log == ["written below Python\n"]
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)


def _build_and_run(tmp_path, sources: list[str], main_text: str, includes: list[str]) -> None:
    main = tmp_path / "main_test.cc"
    main.write_text(main_text)
    exe = tmp_path / "a.out"
    cmd = ["g++", "-std=c++17", "-Wall", "-Werror", *map(str, sources), str(main), "-o", str(exe),
           *(f"-I{d}" for d in includes)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_c_array_roundtrips_compiles_and_is_aligned(trained, tmp_path):
    model_bytes = trained[0]
    cc, h = write_c_array(model_bytes, tmp_path, "kws_model", arena_bytes=4321)
    text = open(cc).read()
    assert "alignas(16) const unsigned char kws_model[]" in text
    assert bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", text)) == model_bytes
    assert f"kws_model_len = {len(model_bytes)};" in text
    compile_check(cc)
    _build_and_run(tmp_path, [cc], f"""
#include <cstdint>
#include <cstring>
#include "kws_model.h"
int main() {{
  if (kws_model_len != {len(model_bytes)}u || kws_model_arena_bytes != 4321u) return 1;
  if (reinterpret_cast<std::uintptr_t>(kws_model) % 16 != 0) return 2;
  return std::memcmp(kws_model + 4, "TFL3", 4) == 0 ? 0 : 3;
}}
""", [str(tmp_path)])
    with pytest.raises(ConfigError):
        write_c_array(model_bytes, tmp_path, "not-an-identifier")


def test_compile_check_reports_compiler_errors(tmp_path):
    bad = tmp_path / "bad.cc"
    bad.write_text("int main() { return undeclared_name; }\n")
    with pytest.raises(RuntimeError, match="undeclared_name"):
        compile_check(bad)


# Real TFLM method names, typed in independently of kws_zoo.device.op_resolver's mapping.
_STUB_METHODS = ["AddAdd", "AddAveragePool2D", "AddConv2D", "AddDepthwiseConv2D", "AddDequantize",
                 "AddFullyConnected", "AddMean", "AddMul", "AddQuantize", "AddRelu", "AddReshape",
                 "AddSoftmax", "AddSub"]


def _write_resolver_stub(root) -> None:
    """tensorflow/lite/micro/micro_mutable_op_resolver.h with just enough API to count calls."""
    d = root / "tensorflow" / "lite" / "micro"
    d.mkdir(parents=True)
    methods = "".join(f"  TfLiteStatus {m}() {{ return Register(); }}\n" for m in _STUB_METHODS)
    (d / "micro_mutable_op_resolver.h").write_text(f"""#pragma once
enum TfLiteStatus {{ kTfLiteOk = 0, kTfLiteError = 1 }};
namespace tflite {{
template <unsigned int tOpCount>
class MicroMutableOpResolver {{
 public:
{methods}  unsigned int registered = 0;
 private:
  TfLiteStatus Register() {{ return ++registered <= tOpCount ? kTfLiteOk : kTfLiteError; }}
}};
}}  // namespace tflite
""")


def test_op_resolver_registers_exactly_the_model_ops(trained, tmp_path):
    path = write_op_resolver(trained[0], tmp_path / "gen", "kws_model")
    text = open(path).read()
    assert sorted(re.findall(r"resolver\.(Add\w+)\(\)", text)) == [
        "AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddMean"]
    assert "kws_model_op_count = 4;" in text
    _write_resolver_stub(tmp_path / "stub")
    _build_and_run(tmp_path, [], """
#include "kws_model_op_resolver.h"
int main() {
  kws_model_op_resolver_t resolver;
  if (kws_model_register_ops(resolver) != kTfLiteOk) return 1;
  return resolver.registered == kws_model_op_count ? 0 : 2;
}
""", [str(tmp_path / "gen"), str(tmp_path / "stub")])


def test_tflm_method_names():
    assert tflm_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert tflm_method("AVERAGE_POOL_2D") == "AddAveragePool2D"
    assert tflm_method("L2_POOL_2D") == "AddL2Pool2D"
    assert tflm_method("BATCH_TO_SPACE_ND") == "AddBatchToSpaceNd"
    assert tflm_method("RELU6") == "AddRelu6"
    assert tflm_method("SELECT_V2") == "AddSelectV2"
    assert tflm_method("PADV2") == "AddPadV2"
    assert tflm_method("CUMSUM") == "AddCumSum"
    assert tflm_method("BATCH_MATMUL") == "AddBatchMatMul"
    assert tflm_method("UNIDIRECTIONAL_SEQUENCE_LSTM") == "AddUnidirectionalSequenceLSTM"
    for bad in ("GELU", "CUSTOM:MyOp"):
        with pytest.raises(DeviceError):
            tflm_method(bad)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_callgrind_counts_instructions_per_invoke(trained):
    per_invoke = instructions_per_invoke(trained[0], invokes=2)
    # Reference kernels spend at least one instruction per MAC (conv 8*10*4*125, dw 8*9*125,
    # fc 32), and this model is far below 10 M instructions.
    assert 8 * 40 * 125 + 8 * 9 * 125 + 32 < per_invoke < 10_000_000
