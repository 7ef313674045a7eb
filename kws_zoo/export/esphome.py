"""ESPHome's micro_wake_word: the model form its component runs, its v2 manifest, and the checks its loader makes.

What the component (esphome/components/micro_wake_word, streaming_model.cpp) accepts, read from its source:
  - a MicroMutableOpResolver with exactly ESPHOME_OPS registered (any other op fails AllocateTensors);
  - input 0: int8, dims [1, stride, 40]; it writes one 40-bin micro-frontend slice (30 ms window, 10 ms step)
    at a time and invokes once `stride` slices are in; the slices are quantized as
    q = round(v * 256 / 666) - 128 from the frontend's uint16 v, whatever the model's own input parameters say,
    so the model must read the float features v / 25.6 with scale 666 / (256 * 25.6) and zero point -128;
  - output 0: uint8, dims [1, 1]: the wake word's probability * 256;
  - state in resource variables, at most MAX_RESOURCE_VARIABLES (MicroResourceVariables::Create(.., 20));
  - a tensor arena of the manifest's `tensor_arena_size` bytes.
Decision: the mean of the last `sliding_window_size` outputs above `probability_cutoff` (kws_zoo.evaluate.wake).

A kws_zoo wake-word model is trained with two classes (_unknown_, the phrase); softmax over two logits is the
sigmoid of their difference, so `with_wake_probability` replaces the two-unit classifier by one unit with the
weight and bias differences and a sigmoid: the same probability, exactly, as one output.
"""
from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import numpy as np

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ExportError
from kws_zoo.device.flatbuffer import read_tflite, tflite_ops

ESPHOME_OPS = frozenset({
    "CALL_ONCE", "VAR_HANDLE", "RESHAPE", "READ_VARIABLE", "STRIDED_SLICE", "CONCATENATION", "ASSIGN_VARIABLE",
    "CONV_2D", "MUL", "ADD", "MEAN", "FULLY_CONNECTED", "LOGISTIC", "QUANTIZE", "DEPTHWISE_CONV_2D",
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "PACK", "SPLIT_V"})
FEATURE_BINS = 40
FEATURE_STEP_MS = 10
MAX_RESOURCE_VARIABLES = 20
INPUT_SCALE = 666.0 / (256.0 * 25.6)  # what ESPHome's feature quantization implies for float features v / 25.6
INPUT_ZERO_POINT = -128
INPUT_SCALE_TOLERANCE = 0.01  # relative
MANIFEST_VERSION = 2
MINIMUM_ESPHOME_VERSION = "2024.7.0"  # the first release that reads v2 manifests (feature_step_size, arena)
ARENA_MARGIN = 1.1
_INT8, _UINT8 = 9, 3  # TensorType values in the TFLite schema


def with_wake_probability(model: keras.Model, wake_index: int = 1) -> keras.Model:
    """`model` (features -> two logits) with its last Dense layer turned into Dense(1, sigmoid) giving
    softmax(logits)[wake_index] exactly: sigmoid(z_wake - z_other)."""
    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense) or last.units != 2 or last.get_config()["activation"] != "linear":
        raise ExportError(f"{model.name}: a wake-word model ends in a linear Dense of 2 units (its last layer "
                          f"is {type(last).__name__} {getattr(last, 'units', '')}); train it with "
                          "data.one_negative_class")
    config = model.get_config()
    for layer in config["layers"]:
        if layer["config"]["name"] == last.name:
            layer["config"].update(units=1, activation="sigmoid")
    binary = keras.Model.from_config(config)
    for layer in model.layers[:-1]:
        binary.get_layer(layer.name).set_weights(layer.get_weights())
    kernel, bias = last.get_weights()
    other = 1 - wake_index
    binary.get_layer(last.name).set_weights([kernel[:, wake_index:wake_index + 1] - kernel[:, other:other + 1],
                                             bias[wake_index:wake_index + 1] - bias[other:other + 1]])
    return binary


def anchor_input_range(streams: np.ndarray) -> np.ndarray:
    """Calibration streams [N, T, 40] with two frames set to 0 and to 255 * INPUT_SCALE at the end of the first
    stream, so the converter's input range is exactly ESPHome's (scale INPUT_SCALE, zero point -128)."""
    streams = np.array(streams, np.float32, copy=True)
    streams[0, -2] = 0.0
    streams[0, -1] = 255.0 * INPUT_SCALE
    return np.clip(streams, 0.0, 255.0 * INPUT_SCALE)


def _tensor(sub, index: int) -> dict:
    t = sub.Tensors(index)
    q = t.Quantization()
    scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else None
    zero = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else None
    return {"shape": [int(d) for d in t.ShapeAsNumpy()], "type": t.Type(), "scale": scale, "zero_point": zero}


def model_problems(model_bytes: bytes) -> list[str]:
    """Every way `model_bytes` does not fit ESPHome's micro_wake_word loader (empty when it fits)."""
    problems = []
    extra = sorted(set(tflite_ops(model_bytes)) - ESPHOME_OPS)
    if extra:
        problems.append(f"ops {extra} are not in ESPHome's op resolver ({', '.join(sorted(ESPHOME_OPS))})")
    model = read_tflite(model_bytes)
    sub = model.Subgraphs(0)
    if sub.InputsLength() != 1 or sub.OutputsLength() != 1:
        problems.append(f"{sub.InputsLength()} inputs and {sub.OutputsLength()} outputs; ESPHome feeds one input "
                        "and reads one output (internal-state streaming form)")
        return problems
    x, y = _tensor(sub, sub.Inputs(0)), _tensor(sub, sub.Outputs(0))
    if len(x["shape"]) != 3 or x["shape"][0] != 1 or x["shape"][2] != FEATURE_BINS:
        problems.append(f"input shape {x['shape']}; ESPHome needs [1, stride, {FEATURE_BINS}]")
    if x["type"] != _INT8:
        problems.append("input is not int8")
    elif (x["scale"] is None or abs(x["scale"] / INPUT_SCALE - 1) > INPUT_SCALE_TOLERANCE
          or x["zero_point"] != INPUT_ZERO_POINT):
        problems.append(f"input quantization (scale {x['scale']}, zero point {x['zero_point']}) is not ESPHome's "
                        f"feature scaling (scale {INPUT_SCALE:.6f}, zero point {INPUT_ZERO_POINT})")
    if y["shape"] != [1, 1]:
        problems.append(f"output shape {y['shape']}; ESPHome reads one probability, [1, 1]")
    if y["type"] != _UINT8:
        problems.append("output is not uint8 (ESPHome reads output->data.uint8[0])")
    variables = resource_variables(model_bytes)
    if variables > MAX_RESOURCE_VARIABLES:
        problems.append(f"{variables} resource variables; ESPHome makes room for {MAX_RESOURCE_VARIABLES}")
    return problems


def resource_variables(model_bytes: bytes) -> int:
    """Distinct resource variables, as TFLM counts them (a variable has a VAR_HANDLE in the init subgraph and
    another in the main one, so VAR_HANDLE ops count each twice)."""
    from tflite_micro import runtime  # deferred: a native extension

    return int(runtime.count_resource_variables(bytearray(model_bytes)))


def check_model(model_bytes: bytes, name: str = "model") -> None:
    problems = model_problems(model_bytes)
    if problems:
        raise ExportError(f"{name} does not fit ESPHome's micro_wake_word: " + "; ".join(problems))


def make_manifest(*, wake_word: str, model_file: str, cutoff: float, window: int, arena_bytes: int,
                  author: str = "kws_zoo", website: str = "https://github.com/kws-zoo/kws_zoo",
                  languages=("en",)) -> dict:
    """The v2 manifest; tensor_arena_size is the measured arena plus ARENA_MARGIN, rounded up to 1 KB."""
    arena = int(np.ceil(arena_bytes * ARENA_MARGIN / 1024.0)) * 1024
    return {"type": "micro", "wake_word": wake_word, "author": author, "website": website, "model": model_file,
            "trained_languages": list(languages), "version": MANIFEST_VERSION,
            "micro": {"probability_cutoff": round(float(cutoff), 4), "sliding_window_size": int(window),
                      "feature_step_size": FEATURE_STEP_MS, "tensor_arena_size": arena,
                      "minimum_esphome_version": MINIMUM_ESPHOME_VERSION}}


def manifest_problems(manifest: dict, *, arena_bytes: int | None = None) -> list[str]:
    """Every field of `manifest` that ESPHome's v2 schema (or the measured arena) refuses."""
    problems = []
    for key, kind in (("type", str), ("wake_word", str), ("author", str), ("website", str), ("model", str),
                      ("version", int), ("micro", dict)):
        if not isinstance(manifest.get(key), kind):
            problems.append(f"'{key}' is missing or not a {kind.__name__}")
    if problems:
        return problems
    if manifest["type"] != "micro":
        problems.append(f"'type' is {manifest['type']!r}, not 'micro'")
    if manifest["version"] != MANIFEST_VERSION:
        problems.append(f"'version' is {manifest['version']}, not {MANIFEST_VERSION}")
    if not manifest["wake_word"].strip():
        problems.append("'wake_word' is empty")
    url = urlparse(manifest["website"])
    if url.scheme not in ("http", "https") or not url.netloc:
        problems.append(f"'website' {manifest['website']!r} is not an http(s) URL")
    langs = manifest.get("trained_languages", [])
    if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
        problems.append("'trained_languages' is not a list of strings")
    micro = manifest["micro"]
    cutoff = micro.get("probability_cutoff")
    if not isinstance(cutoff, (int, float)) or not 0 < cutoff <= 1:
        problems.append(f"micro.probability_cutoff {cutoff!r} is not in (0, 1]")
    for key in ("sliding_window_size", "feature_step_size", "tensor_arena_size"):
        value = micro.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"micro.{key} {value!r} is not a positive integer")
    step = micro.get("feature_step_size")
    if isinstance(step, int) and step >= 1 and step != FEATURE_STEP_MS:
        problems.append(f"micro.feature_step_size {micro['feature_step_size']} ms is not the micro frontend's "
                        f"{FEATURE_STEP_MS} ms step the model was trained on")
    version = micro.get("minimum_esphome_version")
    if not isinstance(version, str) or not re.fullmatch(r"\d{4}\.\d{1,2}(\.\d+)?", version):
        problems.append(f"micro.minimum_esphome_version {version!r} is not a version like '2024.7.0'")
    arena = micro.get("tensor_arena_size")
    if arena_bytes is not None and isinstance(arena, int) and arena < arena_bytes:
        problems.append(f"micro.tensor_arena_size {arena} is below the measured arena {arena_bytes} bytes")
    return problems


def check_manifest(manifest: dict, *, arena_bytes: int | None = None, name: str = "manifest") -> None:
    problems = manifest_problems(manifest, arena_bytes=arena_bytes)
    if problems:
        raise ExportError(f"{name} is not a valid ESPHome micro_wake_word v2 manifest: " + "; ".join(problems))


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2) + "\n"
