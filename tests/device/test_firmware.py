"""The firmware folder: the array is the .tflite byte for byte, the constants are the model's, the arena it states
is the real minimum (TFLM runs with it and refuses 1 KB less), and the sources compile."""
from __future__ import annotations

import re

import numpy as np
import pytest

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import DeviceError
from kws_zoo.device.firmware import arena_to_allocate, read_model_data, write_firmware
from kws_zoo.device.flatbuffer import quant_params
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export import tflite as export

from helpers import tiny_cnn

pytestmark = pytest.mark.xdist_group("test_tflm")

FRONTEND = {"kind": "mfcc", "sample_rate": 16000, "window_ms": 30.0, "hop_ms": 20.0, "num_mels": 40,
            "fmin": 20.0, "fmax": 4000.0, "num_mfcc": 10, "log_floor": 1e-4}
LABELS = ["_silence_", "_unknown_", "yes", "say \"no\""]  # a quote, to check C string escaping


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 49, 10, 1)).astype(np.float32)
    return export.to_tflite_int8(tiny_cnn(), x, num_samples=64)


def _constant(header: str, name: str) -> str:
    found = re.search(rf"constexpr [^;=]*\b{re.escape(name)}\s*=\s*([^;]+);", header)
    assert found, f"{name} missing from model_data.h"
    return found.group(1).strip()


def test_firmware_folder_holds_the_model_and_its_constants(model_bytes, tmp_path):
    arena = TflmModel(model_bytes).arena_bytes
    out = write_firmware(model_bytes, tmp_path, labels=LABELS, frontend=FRONTEND, clip_ms=1000, arena_bytes=arena,
                         model_name="tiny")  # compiles model_data.cc with g++ -Wall -Werror
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "kws_model_op_resolver.h", "model_data.cc",
                                                          "model_data.h"]
    assert read_model_data(tmp_path / "model_data.cc") == model_bytes
    assert "alignas(16) const unsigned char kModelData[]" in (tmp_path / "model_data.cc").read_text()
    header = (tmp_path / "model_data.h").read_text()
    in_scale, in_zp, out_scale, out_zp = quant_params(model_bytes)
    assert float(_constant(header, "kInputScale").rstrip("f")) == np.float32(in_scale)
    assert int(_constant(header, "kInputZeroPoint")) == in_zp
    assert float(_constant(header, "kOutputScale").rstrip("f")) == np.float32(out_scale)
    assert int(_constant(header, "kOutputZeroPoint")) == out_zp
    assert int(_constant(header, "kArenaBytesMeasured")) == arena == out["arena_bytes_measured"]
    assert int(_constant(header, "kArenaBytes")) == arena_to_allocate(arena) >= arena * 1.1
    assert _constant(header, "kInputDims[kInputRank]") == "{1, 49, 10, 1}"
    assert _constant(header, "kFrontendKind[]") == '"mfcc"' and _constant(header, "kHopMs") == "20.0f"
    assert '"say \\"no\\""' in (tmp_path / "model_data.cc").read_text()
    resolver = (tmp_path / "kws_model_op_resolver.h").read_text()
    assert sorted(re.findall(r"resolver\.(Add\w+)\(\)", resolver)) == sorted(
        ["AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddMean"])
    assert f"{arena:,} bytes" in (tmp_path / "README.md").read_text()


def test_stated_arena_is_the_minimum_tflm_accepts(model_bytes):
    arena = TflmModel(model_bytes).arena_bytes
    TflmModel(model_bytes, arena_size=arena).predict(np.zeros((1, 49, 10, 1), np.float32))
    with pytest.raises(DeviceError, match=f"arena {arena - 1024} bytes"):
        TflmModel(model_bytes, arena_size=arena - 1024)


def test_streaming_constants_and_empty_model(model_bytes, tmp_path):
    write_firmware(model_bytes, tmp_path, labels=LABELS, frontend={**FRONTEND, "kind": "micro"}, clip_ms=1000,
                   arena_bytes=4096, model_name="tiny", frames_per_step=3, window_frames=98, check_compile=False)
    header = (tmp_path / "model_data.h").read_text()
    assert _constant(header, "kIsStreaming") == "true" and _constant(header, "kFramesPerStep") == "3"
    assert _constant(header, "kWindowFrames") == "98"
    with pytest.raises(DeviceError, match="empty model"):
        write_firmware(b"", tmp_path, labels=LABELS, frontend=FRONTEND, clip_ms=1000, arena_bytes=1, model_name="x")
