"""Trained non-streaming model -> streaming inference graph that consumes a few new feature frames per step.

`to_streaming(model, mode)` rewrites the functional graph (public get_config / from_config, read by
kws_zoo.models.graph; weights copied by layer name) after swapping custom layers for standard ones
(kws_zoo.layers.plain):
  - a convolution or pooling with a time window (k_eff > 1 or time stride > 1) becomes a Stream holding its
    last k_eff - s input frames (kws_zoo.layers.stream);
  - the pool over the whole time axis becomes a Stream over its own input: a ring buffer of the last
    positions (for an average over all of frequency too, of each position's frequency mean), averaged (or
    maxed) anew each step. A running sum would be cheaper by a few adds, but in
    int8 its rounding errors accumulate over hours; the ring buffer makes every output a function of the
    last window only, so there is nothing to drift;
  - time-local layers (BN, activations, 1x1 convs, adds, ...) are copied; a Reshape that keeps time first gets
    the step's frame count; causal zero padding and front cropping in time disappear (the ring buffers
    supply the past, and every layer's newest frame is aligned with the step's newest input frame);
  - an average pool over frequency only becomes a depthwise conv of equal weights (see _plan_layer).
Anything that reads future frames or mixes time into features ('same' time padding, a Flatten before the
time pool, unknown layers) raises StreamingError naming the layer.

Which outputs are equal (float, up to summation order):
  padding 'valid' (no time padding anywhere): every output position depends only on the input window, so
      once W = window_frames frames have been fed, step output == model(the last W frames), from any state.
  padding 'causal' (every time window zero-padded in the past by exactly its state size): step output ==
      model(window) for the first window from the zero state; later the ring buffers hold the real past
      where the model saw zeros, which is the point of streaming it but no longer a windowed equality.
A step consumes frames_per_step = product of the time strides frames and emits one logits vector.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError, StreamingError
from kws_zoo.layers.plain import to_plain
from kws_zoo.layers.stream import MODES, Stream
from kws_zoo.layers.strided_depthwise import depthwise_conv_layer
from kws_zoo.models.graph import Call, is_functional, walk

L = keras.layers


@dataclasses.dataclass(frozen=True)
class StreamingSpec:
    window_frames: int        # W, input frames of the non-streaming model
    frames_per_step: int      # S, new input frames per step (product of time strides)
    padding: str              # "valid" or "causal" (see the module docstring)
    states: tuple             # ((layer name, state shape without batch), ...) in graph order

    @property
    def state_elements(self) -> int:
        return int(sum(math.prod(shape) for _, shape in self.states))


# Layers that act on each time position on its own, given the checks in _plan_layer.
_TIME_LOCAL = (L.BatchNormalization, L.LayerNormalization, L.Normalization, L.ReLU, L.Activation, L.LeakyReLU,
               L.Softmax, L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.GaussianNoise, L.Add, L.Subtract,
               L.Multiply, L.Maximum, L.Minimum, L.Average, L.Concatenate, L.Dense, L.Rescaling)
_WINDOWED = (L.Conv2D, L.DepthwiseConv2D, L.AveragePooling2D, L.MaxPooling2D)


@dataclasses.dataclass
class _Tensor:
    stride: int                 # input frames per frame of this tensor (cumulative time stride)
    length: int | None          # frames in the non-streaming model; None once time is pooled away
    pad_past: int = 0           # zero frames a ZeroPadding2D put before it (causal padding)


@dataclasses.dataclass
class _Plan:
    kind: str                   # input | copy | stream | reshape | pass | freq_only | mean_conv
    state_frames: int = 0
    config: dict | None = None  # for the streaming layer (copy/stream/reshape/freq_only)
    window: str = ""            # for a time window: "valid", "causal" (zero-padded past) or "pool" (time pool)
    freq_mean: int = 0          # time pool only: average this many frequency bins before the ring buffer


def _shapes(shape) -> list[tuple]:
    return [tuple(s) for s in shape] if isinstance(shape, list) else [tuple(shape)]


def _axes(value, rank: int) -> set[int]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return {int(a) % rank for a in values if a is not None}


def _time_window(layer) -> tuple[int, int, str]:
    """(k_eff, stride, padding) of a conv/pool along time (axis 1)."""
    cfg = layer.get_config()
    if isinstance(layer, (L.AveragePooling2D, L.MaxPooling2D)):
        return int(cfg["pool_size"][0]), int(cfg["strides"][0]), cfg["padding"]
    k, d = int(cfg["kernel_size"][0]), int(cfg["dilation_rate"][0])
    return (k - 1) * d + 1, int(cfg["strides"][0]), cfg["padding"]


def _plan_layer(layer, ins: list[_Tensor], in_shapes: list[tuple], out_shape: tuple) -> tuple[_Plan, _Tensor]:
    name = f"layer {layer.name!r} ({type(layer).__name__})"
    cfg = layer.get_config()
    first = ins[0]
    if len({t.stride for t in ins}) > 1:
        raise StreamingError(f"{name} merges tensors of different time strides {[t.stride for t in ins]}")
    if first.length is None:  # time is pooled away: one vector per step, any layer is fine
        return _Plan("copy", config=cfg), _Tensor(first.stride, None)
    if first.pad_past and not isinstance(layer, _WINDOWED):
        raise StreamingError(f"{name} follows a causal ZeroPadding2D but has no time window to absorb it")
    rank = len(in_shapes[0])
    if isinstance(layer, L.Conv2DTranspose):
        raise StreamingError(f"{name}: transposed convolutions cannot stream")
    if isinstance(layer, L.InputLayer):
        return _Plan("input"), first
    if isinstance(layer, _WINDOWED):
        k, s, padding = _time_window(layer)
        length = first.length + first.pad_past
        pooled_away = isinstance(layer, (L.AveragePooling2D, L.MaxPooling2D)) and k == length and out_shape[1] == 1
        if pooled_away:  # the pool over the whole time axis: a ring buffer of its input, one output per step
            if padding != "valid" or first.pad_past:
                raise StreamingError(f"{name} pads time; the time pool needs padding 'valid'")
            new = {**cfg, "strides": (1, cfg["strides"][1])}
            freq = in_shapes[0][2] if len(in_shapes[0]) == 4 else None
            if isinstance(layer, L.AveragePooling2D) and k > 1 and freq and freq > 1 and cfg["pool_size"][1] == freq:
                # A mean of per-frame frequency means is the mean: buffer those, (k-1) x 1 x C of state
                # instead of (k-1) x F x C (DS-CNN: 2 KB instead of 41 KB).
                new = {**cfg, "pool_size": (k, 1), "strides": (1, 1)}
                return _Plan("stream", k - 1, new, "pool", freq_mean=freq), _Tensor(first.stride, None)
            plan = _Plan("stream", k - 1, new, "pool") if k > 1 else _Plan("copy", config=cfg)
            return plan, _Tensor(first.stride, None)
        if first.pad_past not in (0, k - s):
            raise StreamingError(f"{name} is zero-padded by {first.pad_past} past frames; causal padding must be "
                                 f"exactly its time window minus its stride ({k - s})")
        if k == 1 and s == 1:
            if isinstance(layer, L.AveragePooling2D) and padding == "valid":
                # A mean over frequency as a depthwise conv of 1/n weights: int8 AVERAGE_POOL_2D needs its input's
                # scale, and the converter, unifying it with the ring buffer's, would impose the narrow range of
                # the mean on the pool's wide input (measured: BC-ResNet's top-1 fell to 20%). A conv has its own.
                conv = {"kernel_size": tuple(cfg["pool_size"]), "strides": tuple(cfg["strides"])}
                return _Plan("mean_conv", config=conv), first
            return _Plan("copy", config=cfg), first
        if padding != "valid":
            raise StreamingError(f"{name} has padding {padding!r} with a time window of {k} frames: it reads future "
                                 "frames; build the model with time_padding='valid' (or 'causal')")
        if k < s:
            raise StreamingError(f"{name}: time stride {s} exceeds its time window {k}; frames would be skipped")
        if (length - k) % s:
            raise StreamingError(f"{name}: {length} frames do not tile into windows of {k} at stride {s} (the last "
                                 f"{(length - k) % s} would be ignored); choose another input length")
        out = _Tensor(first.stride * s, (length - k) // s + 1)
        window = "causal" if first.pad_past else "valid"
        return (_Plan("stream", k - s, cfg, window) if k > s else _Plan("copy", config=cfg, window=window)), out
    if isinstance(layer, L.ZeroPadding2D):
        (before, after), freq = cfg["padding"]
        if after:
            raise StreamingError(f"{name} pads {after} future frames")
        plan = _Plan("freq_only", config={**cfg, "padding": ((0, 0), tuple(freq))}) if any(freq) else _Plan("pass")
        return plan, _Tensor(first.stride, first.length, before)
    if isinstance(layer, L.Cropping2D):
        (before, after), freq = cfg["cropping"]
        if after:
            raise StreamingError(f"{name} crops the newest {after} frames (misaligns time)")
        plan = _Plan("freq_only", config={**cfg, "cropping": ((0, 0), tuple(freq))}) if any(freq) else _Plan("pass")
        return plan, _Tensor(first.stride, first.length - before)
    if isinstance(layer, L.Reshape):
        target = tuple(cfg["target_shape"])
        if target[0] != first.length:
            raise StreamingError(f"{name} reshapes {in_shapes[0][1:]} to {target}: time is not kept as the first axis")
        return _Plan("reshape", config={**cfg, "target_shape": (-1, *target[1:])}), first
    if isinstance(layer, L.Flatten):
        raise StreamingError(f"{name} flattens {first.length} frames into features; pool time away first")
    if isinstance(layer, _TIME_LOCAL):
        # Per-axis parameters or statistics along time, or concatenating/normalising along it, are not local.
        if "axis" in cfg and not isinstance(layer, L.Dense) and 1 in _axes(cfg["axis"], rank):
            raise StreamingError(f"{name} acts along the time axis")
        if len({t.length for t in ins}) > 1:
            raise StreamingError(f"{name} merges {[t.length for t in ins]} frames; crop the older frames to align")
        return _Plan("copy", config=cfg), first
    raise StreamingError(f"{name} is not known to act frame by frame; it cannot stream (supported: convs and pools "
                         "with 'valid' time padding, time-local layers, Reshape keeping time first)")


def _calls(model: keras.Model) -> Iterator[Call]:
    """The model's layers in topological order (kws_zoo.models.graph), refusing nested models and shared layers."""
    for call in walk(model):
        times = len(call.entry["inbound_nodes"])
        if isinstance(call.layer, keras.Model):
            raise StreamingError(f"layer {call.layer.name!r}: nested models cannot stream; flatten the model first")
        if times > 1:
            raise StreamingError(f"layer {call.layer.name!r} is called {times} times; shared layers cannot stream")
        yield call


def _plan(model: keras.Model) -> tuple[dict, int]:
    """({layer name: _Plan}, frames per step); raises StreamingError for anything that cannot stream."""
    if not is_functional(model):
        raise StreamingError(f"{getattr(model, 'name', model)}: to_streaming needs a functional keras.Model")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise StreamingError(f"{model.name}: needs one input and one output, got {len(model.inputs)} and "
                             f"{len(model.outputs)}")
    window = model.input_shape[1]
    if window is None:
        raise StreamingError(f"{model.name}: the input needs a static number of frames")
    plans, tensors, pooled_at = {}, {}, []
    for layer, _, refs, _ in _calls(model):
        if isinstance(layer, L.InputLayer):
            ins, in_shapes = [_Tensor(1, window)], _shapes(layer.output_shape)
        else:
            ins, in_shapes = [tensors[r[0]] for r in refs], _shapes(layer.input_shape)
        plans[layer.name], tensors[layer.name] = _plan_layer(layer, ins, in_shapes, layer.output_shape)
        if ins[0].length is not None and tensors[layer.name].length is None:
            pooled_at.append((layer.name, ins[0].stride))
    total = max(t.stride for t in tensors.values())
    out_name = model.get_config()["output_layers"][0][0]
    if tensors[out_name].length is not None:
        raise StreamingError(f"{model.name}: the output still has {tensors[out_name].length} frames; streaming needs "
                             "a model that pools time away (one output per step)")
    for name, stride in pooled_at:  # a step must bring the pool exactly one new position
        if stride != total:
            raise StreamingError(f"layer {name!r} pools time at stride {stride}, but the model's time stride is "
                                 f"{total}; only the last time-strided layer may pool time away")
    causal = sorted(name for name, p in plans.items() if p.window == "causal")
    if causal and any(p.window == "valid" for p in plans.values()):
        raise StreamingError(f"{model.name}: mixes causally zero-padded time windows ({', '.join(causal)}) with "
                             "unpadded ones; neither the windowed nor the first-window equality would hold")
    return plans, total


def streaming_spec(model: keras.Model) -> StreamingSpec:
    """What to_streaming(model) will build, without building it (raises StreamingError when it cannot)."""
    plain = to_plain(model)
    plans, total = _plan(plain)
    return _spec(plain, plans, total)


def _spec(plain, plans, total) -> StreamingSpec:
    padding = "causal" if any(p.window == "causal" for p in plans.values()) else "valid"  # _plan refused a mix
    # The state has the shape of the layer's input frames: its padded frequency, its channels.
    states = tuple((n, (p.state_frames, *_state_frame(plain.get_layer(n), p))) for n, p in plans.items()
                   if p.kind == "stream")
    return StreamingSpec(plain.input_shape[1], total, padding, states)


def _state_frame(layer, plan: _Plan) -> tuple:
    """Shape of one buffered frame: the layer's input frame, its frequency averaged away for freq_mean."""
    frame = _shapes(layer.input_shape)[0][2:]
    return (1, *frame[1:]) if plan.freq_mean else frame


def _mean_conv(name: str, kernel_size: tuple, strides: tuple = (1, 1)) -> L.DepthwiseConv2D:
    """An average pool as a depthwise conv of constant 1/n weights: int8 AVERAGE_POOL_2D would have to share
    its wide input's scale with the narrow mean (see _plan_layer)."""
    return depthwise_conv_layer(kernel_size, strides=strides, padding="valid", use_bias=False, name=name,
                                depthwise_initializer=keras.initializers.Constant(1.0 / math.prod(kernel_size)))


def to_streaming(model: keras.Model, mode: str = "external") -> keras.Model:
    """Streaming inference graph of `model` (functional, features [B, W, ...] -> logits [B, classes]).

    mode 'external': inputs [frames [B, S, ...], *states], outputs [logits, *new states], in the order of
        streaming_spec(model).states; Keras names the state inputs '<layer>_state'.
    mode 'internal': input frames [1, S, ...], output logits; states are variables (reset_states resets).
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    plain = to_plain(model)
    plans, total = _plan(plain)
    tensors, state_inputs, state_outputs, streams = {}, [], [], {}
    for layer, _, refs, kwargs in _calls(plain):
        plan = plans[layer.name]
        if plan.kind == "input":
            shape = _shapes(layer.output_shape)[0]
            tensors[layer.name] = keras.Input(shape=(total, *shape[2:]), batch_size=1 if mode == "internal" else None,
                                              name=layer.name)
            continue
        ins = [tensors[r[0]] for r in refs]
        x = ins if len(ins) > 1 else ins[0]
        if plan.kind == "pass":
            tensors[layer.name] = x
            continue
        new = (_mean_conv(layer.name, **plan.config) if plan.kind == "mean_conv"
               else layer.__class__.from_config(plan.config))
        if plan.freq_mean:
            x = _mean_conv(f"{layer.name}_freq_mean", (1, plan.freq_mean))(x)
        if plan.kind == "stream":
            stream = Stream(new, plan.state_frames, mode, name=layer.name)
            streams[layer.name] = stream
            if mode == "external":
                state = keras.Input(shape=stream.state_shape(x.shape)[1:], name=f"{layer.name}_state")
                y, new_state = stream([x, state])
                state_inputs.append(state)
                state_outputs.append(new_state)
            else:
                y = stream(x)
        else:
            y = new(x, **kwargs)
        tensors[layer.name] = y
    config = plain.get_config()
    inputs = [tensors[config["input_layers"][0][0]], *state_inputs]
    logits = tensors[config["output_layers"][0][0]]
    stream_model = keras.Model(inputs if mode == "external" else inputs[0],
                               [logits, *state_outputs] if mode == "external" else logits,
                               name=f"{model.name}_stream_{mode}")
    for layer in plain.layers:
        if not layer.weights or plans[layer.name].kind == "pass":
            continue
        target = streams[layer.name].layer if layer.name in streams else stream_model.get_layer(layer.name)
        target.set_weights(layer.get_weights())
    return stream_model


def with_frequency_mean_pool(model: keras.Model) -> keras.Model:
    """The same non-streaming function with its frequency means computed as the streaming graph computes
    them (see _plan_layer): frequency-only average pools as depthwise convs, and each whole-map average
    pool split into a frequency-mean depthwise conv and the time pool. Equal in float;
    in int8 it quantizes where the streaming graph does, so it is the whole-window reference to compare
    a streaming int8 model with (and its pool output keeps the narrower range of the mean)."""
    plain = to_plain(model)
    plans, _ = _plan(plain)
    tensors = {}
    for layer, _, refs, kwargs in _calls(plain):
        if isinstance(layer, L.InputLayer):
            tensors[layer.name] = keras.Input(shape=_shapes(layer.output_shape)[0][1:], name=layer.name)
            continue
        ins = [tensors[r[0]] for r in refs]
        x = ins if len(ins) > 1 else ins[0]
        plan = plans[layer.name]
        if plan.freq_mean:
            x = _mean_conv(f"{layer.name}_freq_mean", (1, plan.freq_mean))(x)
            new = L.AveragePooling2D(pool_size=(plan.state_frames + 1, 1), name=layer.name)
        elif plan.kind == "mean_conv":  # a frequency-only mean: the depthwise conv the streaming graph has
            new = _mean_conv(layer.name, **plan.config)
        else:
            new = layer.__class__.from_config(layer.get_config())
        tensors[layer.name] = new(x, **kwargs)
        if layer.weights:
            new.set_weights(layer.get_weights())
    config = plain.get_config()
    return keras.Model(tensors[config["input_layers"][0][0]], tensors[config["output_layers"][0][0]],
                       name=f"{model.name}_freq_mean_pool")


def reset_states(stream_model: keras.Model) -> None:
    """Zeroes every internal state (a fresh stream)."""
    for layer in stream_model.layers:
        if isinstance(layer, Stream):
            layer.reset_state()


def zero_states(stream_model: keras.Model, batch: int = 1) -> list[np.ndarray]:
    """Initial (zero) states of an external-state model, in input order."""
    return [np.zeros((batch, *t.shape[1:]), np.float32) for t in stream_model.inputs[1:]]


def run_stream(stream_model: keras.Model, features: np.ndarray, states: list | None = None) -> np.ndarray:
    """Feeds features [B, T, ...] step by step (T a multiple of the step size) from zero (or given external)
    states; returns logits [B, T / S, classes]. Internal-state models take B = 1 and keep their state."""
    external = len(stream_model.inputs) > 1
    features = np.asarray(features, np.float32)
    step = stream_model.inputs[0].shape[1]
    if features.shape[1] % step:
        raise ValueError(f"{features.shape[1]} frames are not a multiple of the step ({step} frames)")
    call = tf.function(lambda *xs: stream_model(list(xs) if external else xs[0], training=False))
    states = [tf.constant(s) for s in (states or zero_states(stream_model, len(features)))] if external else []
    outputs = []
    for t in range(0, features.shape[1], step):
        out = call(tf.constant(features[:, t:t + step]), *states)
        if external:
            out, *states = out
        outputs.append(out.numpy())
    return np.stack(outputs, axis=1)
