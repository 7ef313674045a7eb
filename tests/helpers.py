"""The one home of shared test set-up: audio made on the fly, a tiny recipe, BatchNorm state for numeric checks,
the kws-zoo CLI in a subprocess, and `run_layer_test`, the custom-layer contract stated once.

Tests never depend on generated corpora or shared data: every input is made here, from a seed.

TensorFlow is imported inside the functions that build or run models, not at the top: it takes 5-7 s, and audio,
recipe and CLI tests use this module without it (rule 7 of the house: a function-local import only for a heavy
extra, said where it happens).
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --------------------------------------------------------------------------------------------------------------
# Audio and recipes
# --------------------------------------------------------------------------------------------------------------

# Each "word" is a short chirp in its own band, so a tiny model learns it in a couple of epochs.
TONE_WORDS = {"alpha": (300, 600), "bravo": (900, 1400), "charlie": (1800, 2500), "delta": (3000, 3800)}


def tone_clip(word: str, rng: np.random.Generator, rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    lo, hi = TONE_WORDS[word]
    n = int(rate * seconds)
    length = int(rate * rng.uniform(0.3, 0.6))
    start = rng.integers(0, n - length)
    t = np.arange(length) / rate
    f0 = rng.uniform(lo, hi)
    sweep = np.sin(2 * np.pi * (f0 * t + 0.5 * (hi - lo) * 0.3 * t ** 2)) * np.hanning(length)
    out = 0.01 * rng.standard_normal(n)
    out[start:start + length] += rng.uniform(0.2, 0.6) * sweep
    return out.astype(np.float32)


def make_tone_corpus(root, speakers: int = 40, seed: int = 0) -> str:
    """root/<word>/<speaker>_nohash_<take>.wav plus a background folder: the folder-per-label layout."""
    rng = np.random.default_rng(seed)
    for word in TONE_WORDS:
        os.makedirs(os.path.join(root, word), exist_ok=True)
        for s in range(speakers):
            for take in range(2):
                sf.write(os.path.join(root, word, f"spk{s:03d}_nohash_{take}.wav"), tone_clip(word, rng), 16000,
                         subtype="PCM_16")
    os.makedirs(os.path.join(root, "_background_noise_"), exist_ok=True)
    sf.write(os.path.join(root, "_background_noise_", "white.wav"),
             (0.05 * rng.standard_normal(16000 * 5)).astype(np.float32), 16000, subtype="PCM_16")
    return str(root)


def tiny_recipe_dict(corpus: str, name: str = "tiny", epochs: int = 2) -> dict:
    return {"name": name, "model": "ds_cnn_small",
            "model_overrides": {"filters": 16, "bn_momentum": 0.8, "dropout_first": 0.0, "dropout_last": 0.1},
            "data": {"kind": "folder", "path": corpus, "validation_pct": 20, "testing_pct": 20},
            "frontend": {"kind": "mfcc", "window_ms": 30, "hop_ms": 20, "num_mfcc": 10, "fmax": 4000},
            "augment": {"reverb_prob": 0.0, "background_snr_db": [10, 30], "speed_prob": 0.0},
            "schedule": {"epochs": epochs, "batch_size": 16, "learning_rate": 0.01, "warmup_epochs": 0}}


# --------------------------------------------------------------------------------------------------------------
# The CLI in a subprocess
# --------------------------------------------------------------------------------------------------------------

CLI = [sys.executable, "-c", "import sys; from kws_zoo.cli import main; main(sys.argv[1:])"]


def cli_env(**overrides: str) -> dict[str, str]:
    """This process's environment with this checkout first on PYTHONPATH (the CLI under test is this tree's, installed
    or not), plus `overrides`."""
    path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **overrides}


def run_cli(*args, check: bool = True, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`kws-zoo ARGS...` in a fresh Python process (text output captured). With check, a non-zero exit raises
    AssertionError carrying the command and its stderr. `env` replaces the environment (default: cli_env())."""
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=cli_env() if env is None else env)
    if check and proc.returncode != 0:
        raise AssertionError(f"kws-zoo {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


# --------------------------------------------------------------------------------------------------------------
# Models with realistic state
# --------------------------------------------------------------------------------------------------------------

# An explicit, generous TFLM arena: TflmModel's automatic search tries small arenas first, and at some
# of them TFLM's DEPTHWISE_CONV_2D / STRIDED_SLICE Prepare dereferences a failed allocation (segfault).
ARENA = 1 << 21


def calibrate_bn(model, x: np.ndarray, seed: int = 0) -> None:
    """Sets every BatchNormalization's moving statistics to the batch statistics of its input on x
    (in graph order, so each BN sees already-calibrated predecessors), and draws gamma with random
    signs and a nonzero beta. Activations then have unit scale, as after training, instead of the
    shrinking or exploding ones of an untrained model in inference mode."""
    from kws_zoo.core.compat import keras  # TensorFlow: see the module docstring

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        h = keras.Model(model.inputs, layer.input)(x, training=False).numpy()
        axes = tuple(range(h.ndim - 1))
        c = h.shape[-1]
        gamma = rng.uniform(0.5, 1.5, c) * rng.choice([-1.0, 1.0], c)
        layer.set_weights([gamma.astype(np.float32), rng.normal(0.0, 0.3, c).astype(np.float32),
                           h.mean(axes).astype(np.float32), (h.var(axes) + 1e-6).astype(np.float32)])


def randomize_bn(model, seed: int = 0) -> None:
    """Non-trivial BN statistics and affines everywhere (also inside RepConv2D / SubSpectralNorm), so a
    wrong fold cannot hide behind gamma=1, beta=0, mean=0, var=1."""
    from kws_zoo.core.compat import keras  # TensorFlow: see the module docstring

    rng = np.random.default_rng(seed)
    for m in model.submodules:
        if isinstance(m, keras.layers.BatchNormalization):
            shape = m.gamma.shape
            m.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            m.beta.assign(rng.normal(0, 0.3, shape).astype(np.float32))
            m.moving_mean.assign(rng.normal(0, 0.3, shape).astype(np.float32))
            m.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))


def tiny_cnn():
    """Conv, depthwise, BN, ReLU, pooling, dense on [49, 10, 1] features: the ops of a DS-CNN, 4 classes."""
    from kws_zoo.core.compat import keras  # TensorFlow: see the module docstring

    L = keras.layers
    inp = keras.Input((49, 10, 1))
    x = L.Conv2D(8, (10, 4), strides=(2, 2), padding="same")(inp)
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(4)(x))


def custom_layers(model) -> list[str]:
    """'name:Class' of every layer that is not a standard tf_keras layer. StridedDepthwiseConv2D counts as
    standard: it is keras' DepthwiseConv2D (same config and weights) computed on any CPU's kernels."""
    from kws_zoo.layers.strided_depthwise import StridedDepthwiseConv2D  # TensorFlow: see the module docstring

    return [f"{layer.name}:{type(layer).__name__}" for layer in model.layers
            if not type(layer).__module__.startswith("tf_keras.") and type(layer) is not StridedDepthwiseConv2D]


# --------------------------------------------------------------------------------------------------------------
# The custom-layer contract
# --------------------------------------------------------------------------------------------------------------

# The four points of the contract, in the order they run.
LAYER_CONTRACT = ("config", "saving", "plain", "int8")

# Float points compare with an error relative to the largest output magnitude. Same layer, same weights
# (config clone, .keras reload): the same kernels run on the same numbers (measured: exactly 0 for every case).
SAME_LAYER_RTOL = 1e-6
# Plain form: the folds (RepConv2D branches + BN, SubSpectralNorm's BN) are computed in float64 and cast to float32,
# then run as one convolution instead of several: float32 reassociation only. Measured on the cases of
# tests/test_layer_contract.py with seeds 0-2: at most 3.4e-7 of the output range (RepConv2D, valid and dilated);
# 1e-5 leaves 30x margin and is still 1000x below a wrong fold (a branch or BN left out, a tap off by one: > 1e-2).
PLAIN_RTOL = 1e-5
# int8 on TFLM against the plain float model, in steps (LSB) of the output's int8 scale. Weights are quantized per
# channel, input and output per tensor, each rounding by up to half a step, and TFLM's integer requantization adds
# its own rounding, so one to two output steps is the expected error. Measured on the cases of
# tests/test_layer_contract.py with seeds 0-2 (test inputs inside the calibrated range): 1.03 to 1.85 LSB, the most
# for SincConv (31 or 51 taps summed per output). 4 LSB (about 2x the worst measured; one LSB was
# 0.6-1% of the largest output, so 4 LSB is 2.5-4% of it) still fails a wrong scale, a swapped channel or a clipped range, which are tens of LSB off.
INT8_MAX_LSB = 4.0


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _outputs(model, data) -> list[np.ndarray]:
    """model(data) in inference, every output as an array, after zeroing any streaming state (a Stream in
    'internal' mode keeps its ring buffer between calls; every forward here starts from zeros)."""
    for layer in model.layers:
        if hasattr(layer, "reset_state"):
            layer.reset_state()
    return [np.asarray(y) for y in _as_list(model(data, training=False))]


def _max_err(got: list[np.ndarray], want: list[np.ndarray]) -> tuple[float, float]:
    """(max |got - want|, max |want|) over every output."""
    assert [g.shape for g in got] == [w.shape for w in want], ([g.shape for g in got], [w.shape for w in want])
    err = max(float(np.max(np.abs(g.astype(np.float64) - w))) for g, w in zip(got, want))
    return err, max(float(np.max(np.abs(w))) for w in want)


def _assert_close(got, want, rtol: float, what: str) -> float:
    """Asserts max |got - want| <= rtol * max |want| and returns that relative error."""
    err, scale = _max_err(got, want)
    assert scale > 0.0, f"{what}: the reference output is all zeros; the check would be vacuous"
    assert err <= rtol * scale, f"{what}: max |diff| {err:.3g} is {err / scale:.3g} of the output range (> {rtol})"
    return err / scale


def _without_build_config(value):
    if isinstance(value, dict):
        return {k: _without_build_config(v) for k, v in value.items() if k != "build_config"}
    if isinstance(value, (list, tuple)):
        return [_without_build_config(v) for v in value]
    return value


def _json(config: dict) -> str:
    """A config as a .keras file holds it (tuples become lists), without "build_config": Keras' record of the shape
    a nested layer was built on (a wrapper's inner layer), which a built layer has and its unbuilt clone not."""
    return json.dumps(_without_build_config(config), sort_keys=True, default=str)


def _perturb(model, seed: int) -> None:
    """Trained-looking weights: every trainable weight scaled by U(0.5, 1.5) per element plus N(0, 0.1) (so zero
    biases and centred parameters move too), then non-trivial BatchNorm statistics (randomize_bn), so that no
    point of the contract passes only because a weight is at its initial value."""
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        value = w.numpy()
        w.assign((value * rng.uniform(0.5, 1.5, value.shape) + rng.normal(0.0, 0.1, value.shape)).astype(value.dtype))
    randomize_bn(model, seed)


def run_layer_test(cls: type, init_kwargs: dict[str, Any], input_shape: Sequence[int] | list[Sequence[int]], *,
                   batch: int = 4, seed: int = 0, not_applicable: dict[str, str] | None = None,
                   input_data: Callable[[np.random.Generator, tuple], np.ndarray] | None = None,
                   tmp_dir: str | os.PathLike | None = None, plain_rtol: float = PLAIN_RTOL,
                   int8_max_lsb: float = INT8_MAX_LSB) -> dict[str, float]:
    """The custom-layer contract, stated once. `cls(**init_kwargs)` is called on keras.Input(input_shape) (a list of
    shapes for a layer taking a list of inputs), its weights are set to trained-looking values, and then:

      config  get_config() names every __init__ argument; from_config(get_config()) gives the same config (as JSON,
              as a .keras file stores it); keras' serialize/deserialize finds it registered as "kws_zoo>Class";
              the clone with the weights copied computes the same outputs.
      saving  a model holding the layer, saved as .keras and opened with kws_zoo.models.saving.load_keras, holds
              the same class and computes the same outputs.
      plain   kws_zoo.layers.plain.to_plain (the export form): a layer with plain_layer() is replaced by standard
              Keras layers only, one without keeps its class; outputs in inference equal within plain_rtol of the
              output range.
      int8    to_tflite_int8 of the plain model, calibrated on inputs that include the test inputs, run on TFLM
              (kws_zoo.device.runtime.TflmModel): within int8_max_lsb steps of the output's int8 scale of the
              plain float model.

    A point that does not apply to a layer is named in `not_applicable` with the reason (a non-empty sentence);
    there are no silent skips. input_data(rng, shape) draws inputs (default: standard normal). Returns what was
    measured: {"config_rel_err", "saving_rel_err", "plain_rel_err", "int8_lsb", "int8_rel_err"} for the points run.
    """
    # TensorFlow and the package's model side: see the module docstring.
    from kws_zoo.core.compat import keras
    from kws_zoo.device.runtime import TflmModel
    from kws_zoo.export.tflite import to_tflite_int8
    from kws_zoo.layers.plain import to_plain
    from kws_zoo.models.saving import load_keras

    not_applicable = dict(not_applicable or {})
    unknown = set(not_applicable) - set(LAYER_CONTRACT)
    assert not unknown, f"not_applicable names unknown points {sorted(unknown)}; the points are {LAYER_CONTRACT}"
    for point, reason in not_applicable.items():
        assert isinstance(reason, str) and reason.strip(), f"{cls.__name__}: point {point!r} needs a reason"
    assert set(not_applicable) != set(LAYER_CONTRACT), f"{cls.__name__}: the contract must test at least one point"

    multi = isinstance(input_shape, list)
    shapes = [tuple(s) for s in input_shape] if multi else [tuple(input_shape)]
    rng = np.random.default_rng(seed)
    draw = input_data or (lambda r, shape: r.standard_normal(shape))

    def inputs(n: int) -> list[np.ndarray]:
        return [np.asarray(draw(rng, (n, *s)), np.float32) for s in shapes]

    def feed(arrays: list[np.ndarray]):
        return arrays if multi else arrays[0]

    def model_around(layer):
        tensors = [keras.Input(s) for s in shapes]
        return keras.Model(tensors, layer(feed(tensors)))

    keras.utils.set_random_seed(seed)
    layer = cls(**init_kwargs)
    model = model_around(layer)
    _perturb(model, seed)
    x = inputs(batch)
    y = _outputs(model, feed(x))
    measured: dict[str, float] = {}

    if "config" not in not_applicable:
        config = layer.get_config()
        params = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        missing = [p for p in params if p not in config]
        assert not missing, f"{cls.__name__}.get_config() lacks __init__ arguments {missing}"
        clone = cls.from_config(json.loads(_json(config)))
        assert _json(clone.get_config()) == _json(config), f"{cls.__name__}: from_config(get_config()) differs"
        serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer), default=str))
        assert serialized.get("registered_name") == f"kws_zoo>{cls.__name__}", \
            f"{cls.__name__} is not registered as kws_zoo>{cls.__name__}: {serialized.get('registered_name')!r}"
        revived = keras.saving.deserialize_keras_object(serialized)
        assert type(revived) is cls and _json(revived.get_config()) == _json(config)
        twin = model_around(clone)
        clone.set_weights(layer.get_weights())
        measured["config_rel_err"] = _assert_close(_outputs(twin, feed(x)), y, SAME_LAYER_RTOL,
                                                   f"{cls.__name__} rebuilt from its config")

    if "saving" not in not_applicable:
        with tempfile.TemporaryDirectory(dir=tmp_dir) as folder:
            path = os.path.join(folder, "layer.keras")
            model.save(path)
            loaded = load_keras(path)
        assert type(loaded.get_layer(layer.name)) is cls, \
            f"{cls.__name__} came back from .keras as {type(loaded.get_layer(layer.name)).__name__}"
        measured["saving_rel_err"] = _assert_close(_outputs(loaded, feed(x)), y, SAME_LAYER_RTOL,
                                                   f"{cls.__name__} saved as .keras and loaded with load_keras")

    plain = None
    if "plain" not in not_applicable:
        plain = to_plain(model)
        if hasattr(cls, "plain_layer"):
            custom = custom_layers(plain)
            assert not custom, f"{cls.__name__}: the plain form still holds non-standard layers {custom}"
        else:
            assert cls in {type(l) for l in plain.layers}, f"{cls.__name__} has no plain_layer(): to_plain keeps it"
        measured["plain_rel_err"] = _assert_close(_outputs(plain, feed(x)), y, plain_rtol,
                                                  f"{cls.__name__}'s plain form")

    if "int8" not in not_applicable:
        assert not multi, f"{cls.__name__}: int8 export takes one input; name the point in not_applicable"
        if plain is None:
            plain = to_plain(model)
        want = _outputs(plain, x[0])
        # Calibrated on the test inputs plus as many more: the test measures quantization, not range clipping.
        representative = np.concatenate([x[0], inputs(4 * batch)[0]])
        tflm = TflmModel(to_tflite_int8(plain, representative, num_samples=len(representative)), arena_size=ARENA)
        assert tflm.output_quant is not None, f"{cls.__name__}: the int8 export has a float output"
        got = tflm.predict(x[0], progress=False).reshape(want[0].shape)
        err, scale = _max_err([got], want)
        measured["int8_lsb"] = err / tflm.output_quant[0]
        measured["int8_rel_err"] = err / scale
        assert measured["int8_lsb"] <= int8_max_lsb, \
            (f"{cls.__name__} int8 on TFLM is {measured['int8_lsb']:.2f} output LSB (> {int8_max_lsb}) from float "
             f"({err:.3g}, {err / scale:.3g} of the output range)")
    return measured
