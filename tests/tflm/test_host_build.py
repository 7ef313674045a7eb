"""The firmware side built and run on the host against real TFLite Micro (tflm/CMakeLists.txt):

- the C++ recognizer's unit tests pass, and it takes the same decisions as the Python detector on the same
  posteriors;
- for every pretrained model, the example application built with each of its firmware folders gives the int8
  outputs of the Python TFLM interpreter, bit for bit, on the same inputs (the ternary custom-op folder: those of the
  int8-constant model), and refuses an arena 1 KB below the stated one;
- the C micro frontend inside the example gives pymicro-features' features on the same audio;
- on a long WAV, the application's detections equal `kws-zoo stream --runtime tflm`'s.
TFLM compiles once per machine into a cache folder (tests/tflm_host.py); without a TFLM tree (TFLM_ROOT) the
tests that need it skip, saying so.
"""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from kws_zoo import hub
from kws_zoo.core.compat import keras
from kws_zoo.device.firmware import write_firmware
from kws_zoo.export.ternary import to_tflite_int8_ternary
from kws_zoo.export.ternary_op import layer_specs, to_ternary_op
from kws_zoo.models import create_model
from kws_zoo.data.audio import read_wav
from kws_zoo.data.frontends import micro_features
from kws_zoo.device.flatbuffer import op_name, read_tflite
from kws_zoo.device.runtime import TflmModel
from kws_zoo.device.streaming import TflmStreamingModel
from kws_zoo.evaluate.detector import Detector, DetectorConfig
from kws_zoo.core.files import atomic_write_wav

from kws_zoo.device import host_build as tflm_host
from helpers import calibrate_bn, run_cli

pytestmark = pytest.mark.xdist_group("tflm_host")

FIRMWARE_FOLDERS = ("firmware", "firmware_stream", "firmware_ternary_op")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """{name: unpacked folder} of every released model, downloaded (verified) from the checkout's release folder."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(hub.ENV_CACHE, str(cache))
        folders = {name: hub.download(name, progress=False) for name in hub.list_pretrained()}
    assert folders, "no pretrained model is released: nothing to check the firmware build on"
    return folders


@pytest.fixture(scope="module")
def firmware(pretrained):
    """{example name: (pretrained name, firmware folder)} for every firmware folder of every released model."""
    return {f"{name}.{kind}": (name, os.path.join(folder, kind))
            for name, folder in pretrained.items() for kind in FIRMWARE_FOLDERS
            if os.path.isdir(os.path.join(folder, kind))}


@pytest.fixture(scope="module")
def ternary(tmp_path_factory):
    """An untrained ternary MatchboxNet (BatchNorm calibrated, random gamma signs) in both int8 forms: ternary
    convs as CONV_2D with -1/0/+1 constants, and as KWS_TERNARY_1X1; their firmware folders and test inputs."""
    keras.utils.set_random_seed(0)
    model = create_model("matchboxnet_3x1x64_ternary", input_shape=(98, 64), num_classes=12)
    x = np.random.default_rng(0).normal(size=(64, 98, 64)).astype(np.float32)
    calibrate_bn(model, x)
    exact = to_tflite_int8_ternary(model, x, num_samples=64)
    custom = to_ternary_op(exact, layer_specs(model))
    folder = tmp_path_factory.mktemp("ternary")
    arena = TflmModel(exact).arena_bytes
    settings = dict(labels=[f"c{i}" for i in range(12)], frontend={"kind": "mfcc", "sample_rate": 16000,
                    "window_ms": 25.0, "hop_ms": 10.0, "num_mels": 64, "num_mfcc": 64, "fmin": 20.0, "fmax": 4000.0},
                    clip_ms=1000, model_name="untrained ternary MatchboxNet")
    write_firmware(exact, folder / "constant", arena_bytes=arena, **settings)
    write_firmware(custom, folder / "op", arena_bytes=arena + 64 * 1024, **settings)
    inputs = np.random.default_rng(1).integers(-128, 128, (6, 98, 64), dtype=np.int8)
    return {"exact": exact, "custom": custom, "folder": folder, "inputs": inputs, "specs": layer_specs(model)}


@pytest.fixture(scope="module")
def build(firmware, ternary):
    root = tflm_host.tflm_root()
    examples = {n: f for n, (_, f) in firmware.items()}
    examples.update({"ternary.constant": ternary["folder"] / "constant", "ternary.op": ternary["folder"] / "op"})
    return root, tflm_host.build(examples if root else {}, root)


def _needs_tflm(build):
    if build[0] is None:
        pytest.skip(tflm_host.SKIP_REASON)


def _example(build, name) -> str:
    return tflm_host.example(build[1], name)


def test_recognizer_unit_tests_pass(build):
    proc = subprocess.run([str(build[1] / "recognizer_test")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout


def _posterior_stream(rng, steps: int, classes: int) -> np.ndarray:
    """Noise with keyword bursts of 5-40 steps: what a streaming model's softmax looks like."""
    logits = rng.normal(0, 1.0, (steps, classes))
    logits[:, :2] += 2.0  # silence and unknown dominate
    for start in rng.integers(0, steps - 40, steps // 30):
        logits[start:start + rng.integers(5, 40), rng.integers(2, classes)] += rng.uniform(2, 8)
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


@pytest.mark.parametrize("threshold, smoothing_ms, refractory_ms, step_ms, start_ms", [
    (0.8, 200.0, 1000.0, 30.0, 20.0), (0.5, 0.0, 0.0, 10.0, 0.0), (0.6, 95.0, 333.0, 20.0, 10.0),
    (0.85, 600.0, 500.0, 40.0, 980.0)])
def test_recognizer_decides_as_the_python_detector(build, tmp_path, threshold, smoothing_ms, refractory_ms,
                                                   step_ms, start_ms):
    labels = ["_silence_", "_unknown_", "yes", "no", "up", "down"]
    posteriors = _posterior_stream(np.random.default_rng(int(threshold * 100)), 3000, len(labels))
    config = DetectorConfig(threshold, smoothing_ms, refractory_ms)
    want = Detector(labels, step_ms, config, start_ms=start_ms).run(posteriors)
    path = tmp_path / "posteriors.f64"
    posteriors.astype("<f8").tofile(path)
    proc = subprocess.run([str(build[1] / "recognizer_replay"), str(path), repr(step_ms), repr(start_ms),
                           repr(threshold), repr(smoothing_ms), repr(refractory_ms), *labels],
                          capture_output=True, text=True, check=True)
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(want) > 5, "the stream fired too rarely to compare anything"
    assert [(d["time_s"], d["label"]) for d in got] == [(d.time_s, d.label) for d in want]
    np.testing.assert_allclose([d["score"] for d in got], [d.score for d in want], rtol=0, atol=1e-12)


def test_every_pretrained_model_runs_bit_exact_in_the_example(build, firmware, tmp_path):
    _needs_tflm(build)
    for example, (name, folder) in firmware.items():
        model_bytes = open(os.path.join(os.path.dirname(folder), *_model_file(folder)), "rb").read()
        streaming = folder.endswith("firmware_stream")
        runtime = TflmStreamingModel(model_bytes) if streaming else TflmModel(model_bytes)
        shape = runtime.frames_shape if streaming else tuple(TflmModel(model_bytes).input_shape)
        x = np.random.default_rng(len(example)).integers(-128, 128, (40, *shape[1:]), dtype=np.int8)
        x[0] = 0
        want = (np.stack([runtime.step(step) for step in x]) if streaming else runtime.predict(x))
        (tmp_path / "in.i8").write_bytes(x.tobytes())
        subprocess.run([_example(build, example), "--features", str(tmp_path / "in.i8"), "--out",
                        str(tmp_path / "out.i8")], check=True, capture_output=True)
        got = np.frombuffer((tmp_path / "out.i8").read_bytes(), np.int8).reshape(len(x), -1)
        if streaming:  # the streaming runtime hands back dequantized logits: dequantize the C++ ones the same way
            scale, zero = runtime.logits_quant
            got = ((got.astype(np.int32) - zero) * np.float32(scale)).astype(np.float32)
        np.testing.assert_array_equal(got, np.asarray(want).reshape(len(x), -1), err_msg=f"{example} ({name})")


def test_example_runs_with_the_stated_arena_and_refuses_1_kb_less(build, firmware):
    _needs_tflm(build)
    for example, (_, folder) in firmware.items():
        header = open(os.path.join(folder, "model_data.h")).read()
        stated = int(header.split("kArenaBytesMeasured = ")[1].split(";")[0])
        ok = subprocess.run([_example(build, example), "--info", "--arena", str(stated)], capture_output=True,
                            text=True)
        assert ok.returncode == 0, f"{example}: {ok.stderr}"
        assert json.loads(ok.stdout)["arena_used_bytes"] <= stated
        short = subprocess.run([_example(build, example), "--info", "--arena", str(stated - 1024)],
                               capture_output=True, text=True)
        assert short.returncode == 3, f"{example} ran with 1 KB less than the stated arena"
        assert f"AllocateTensors failed with an arena of {stated - 1024} bytes" in short.stderr


def _model_file(folder: str) -> tuple[str, str]:
    """The .tflite the pip interpreter checks a firmware folder against: for the ternary custom op (which the pip
    interpreter cannot run) the int8-constant form it must equal bit for bit."""
    if folder.endswith("stream"):
        return "stream", "model_stream_internal_int8.tflite"
    return "export", "model_int8.tflite"


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory) -> str:
    """About 16 s of eleven spoken digits (espeak-ng, two voices, pauses) over low noise, 16 kHz 16-bit PCM."""
    folder = tmp_path_factory.mktemp("long_wav")
    parts = []
    for voice, text in (("en-us", "one. seven. three. zero. nine. two. five"), ("en+f3", "four. eight. six. one")):
        path = folder / f"{voice}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "120", "-g", "40", "-w", str(path), text], check=True)
        parts += [read_wav(str(path), 16000), np.zeros(8000, np.float32)]
    audio = np.concatenate(parts)
    audio = audio + np.random.default_rng(0).normal(0, 0.003, len(audio)).astype(np.float32)
    out = str(folder / "digits.wav")
    atomic_write_wav(out, np.clip(audio, -1, 1), 16000)
    return out


def test_c_micro_frontend_equals_pymicro_features(build, firmware, long_wav, tmp_path):
    _needs_tflm(build)
    example = next(iter(firmware))
    subprocess.run([_example(build, example), "--wav", long_wav, "--dump-features", str(tmp_path / "f.f32")],
                   check=True, capture_output=True)
    got = np.fromfile(tmp_path / "f.f32", np.float32).reshape(-1, 40)
    want = micro_features(read_wav(long_wav, 16000))
    assert got.shape == want.shape and len(got) > 1000
    np.testing.assert_array_equal(got, want)


def test_long_wav_detections_equal_kws_zoo_stream_on_tflm(build, pretrained, firmware, long_wav):
    _needs_tflm(build)
    streams = [(example, name) for example, (name, folder) in firmware.items()
               if folder.endswith("firmware_stream") and hub.pretrained_entry(name).frontend["kind"] == "micro"]
    assert streams, "no released streaming model on the micro frontend: nothing to run a WAV through"
    settings = ["--threshold", "0.6", "--smoothing-ms", "150", "--refractory-ms", "800"]
    for example, name in streams:
        model = os.path.join(pretrained[name], "stream", "model_stream_internal_int8.tflite")
        python = run_cli("stream", model, long_wav, "--runtime", "tflm", "--json", *settings)
        cpp = subprocess.run([_example(build, example), "--wav", long_wav, *settings], capture_output=True,
                             text=True, check=True)
        want = [json.loads(line) for line in python.stdout.splitlines()]
        got = [json.loads(line) for line in cpp.stdout.splitlines()]
        assert len(want) >= 3, f"{name} detected {len(want)} of 11 spoken digits: too few to compare"
        assert [(round(d["time_s"], 3), d["label"], round(d["score"], 4)) for d in got] == \
            [(d["time_s"], d["label"], d["score"]) for d in want]


def _run_features(build, name, inputs, tmp_path) -> np.ndarray:
    (tmp_path / "in.i8").write_bytes(inputs.tobytes())
    subprocess.run([_example(build, name), "--features", str(tmp_path / "in.i8"), "--out", str(tmp_path / "out.i8")],
                   check=True, capture_output=True)
    return np.frombuffer((tmp_path / "out.i8").read_bytes(), np.int8).reshape(len(inputs), -1)


def test_generator_port_regenerates_the_python_matrices(build):
    for spec in _ternary_specs():
        out = subprocess.run([str(build[1] / "ternary_matrix"), str(spec.key), *map(str, spec.matrix.shape),
                              str(spec.zeros)], capture_output=True, text=True, check=True).stdout
        np.testing.assert_array_equal(np.array([line.split() for line in out.splitlines()], int), spec.matrix)


def _ternary_specs():
    from kws_zoo.export.ternary_op import TernarySpec
    from kws_zoo.layers.ternary_pointwise import matrix_key, ternary_matrix

    return [TernarySpec(matrix_key(*a), ternary_matrix(*a)) for a in
            [(0, 64, 64, 0.5), (3, 128, 64, 0.75), (7, 5, 3, 0.0), (1, 64, 128, 0.9), (11, 1, 1, 0.0)]]


def test_ternary_op_is_bit_exact_with_the_constant_form_and_stores_no_matrix(build, ternary, tmp_path):
    _needs_tflm(build)
    want = TflmModel(ternary["exact"]).predict(ternary["inputs"])  # the pip interpreter, constant form
    constant = _run_features(build, "ternary.constant", ternary["inputs"], tmp_path)
    custom = _run_features(build, "ternary.op", ternary["inputs"], tmp_path)
    np.testing.assert_array_equal(constant, np.asarray(want).reshape(constant.shape))
    np.testing.assert_array_equal(custom, constant)
    assert len(set(map(tuple, custom))) > 1, "every input gave the same output: the comparison would be vacuous"
    matrices = sum(s.matrix.size for s in ternary["specs"])
    assert len(ternary["exact"]) - len(ternary["custom"]) >= 0.9 * matrices  # the int8 matrices are gone
    model = read_tflite(ternary["custom"])
    sub = model.Subgraphs(0)
    ops = [op_name(model, sub.Operators(i).OpcodeIndex()) for i in range(sub.OperatorsLength())]
    assert ops.count("CUSTOM:KWS_TERNARY_1X1") == len(ternary["specs"]) and "CONV_2D" in ops
