"""Run a streaming .tflite (kws_zoo.export.streaming_tflite) step by step on the real TFLite Micro interpreter.

External state: the runner owns the int8 state tensors and feeds every output state back as the next
input, as firmware would (a copy of int8 bytes; requantized only if the converter gave an output state other
quantization than its input, which `requantized_states` then lists). Internal state: the interpreter keeps
it in its resource variables, one stream per interpreter.
"""
from __future__ import annotations

import time

import numpy as np

from kws_zoo.core.errors import DeviceError
from kws_zoo.device.flatbuffer import signature_io, variable_bytes
from kws_zoo.device.quant import dequantize, detail_quant, quantize
from kws_zoo.device.runtime import TflmModel


class TflmStreamingModel(TflmModel):
    """TflmModel for a streaming graph: step(frames) -> logits, run(features) -> logits per step.

    Attributes beyond TflmModel's: external (bool), frames_per_step, requantized_states, state_bytes: the
    bytes of state carried from step to step (external: the state input tensors, which live in the arena
    beside the output tensors they are refilled from; internal: the resource variables). Use run/step;
    predict() of a whole-window model does not apply.
    """

    def __init__(self, model_bytes: bytes, arena_size: int | None = None):
        super().__init__(model_bytes, arena_size)
        inputs, outputs = signature_io(self._model)
        if "features" not in inputs or "logits" not in outputs:
            raise DeviceError(f"not a kws_zoo streaming model: inputs {sorted(inputs)}, outputs {sorted(outputs)}")
        interp = self._interp
        self._frames_index, self._logits_index = inputs["features"], outputs["logits"]
        frames = interp.get_input_details(self._frames_index)
        self.frames_shape = tuple(int(d) for d in frames["shape"])
        self.frames_per_step = self.frames_shape[1]
        self.frames_quant = detail_quant(frames)
        self.logits_quant = detail_quant(interp.get_output_details(self._logits_index))
        self._states = []  # (input index, output index, shape, dtype, in quant, out quant, name)
        for name, index in sorted(inputs.items()):
            if name == "features":
                continue
            if name not in outputs:
                raise DeviceError(f"state input {name!r} has no output of the same name")
            din, dout = interp.get_input_details(index), interp.get_output_details(outputs[name])
            self._states.append((index, outputs[name], tuple(int(d) for d in din["shape"]), din["dtype"],
                                 detail_quant(din), detail_quant(dout), name))
        self.external = bool(self._states)
        self.requantized_states = [st[6] for st in self._states if st[4] != st[5]]
        self.state_bytes = (sum(int(np.prod(s[2])) * np.dtype(s[3]).itemsize for s in self._states)
                            if self.external else variable_bytes(self._model))
        self.reset()

    def reset(self) -> None:
        """A fresh stream: zero states (the zero point of each int8 state)."""
        if self.external:
            self._values = [np.full(shape, 0 if q is None else q[1], dtype) for _, _, shape, dtype, q, _, _ in
                            self._states]
        else:
            self._interp.reset()

    def step(self, frames: np.ndarray, raw: bool = False) -> np.ndarray:
        """frames [frames_per_step, bins] float (or int8 already quantized) -> logits [classes] float, or with
        raw the output tensor as the device reads it (e.g. uint8)."""
        x = np.asarray(frames).reshape(self.frames_shape)
        if self.frames_quant is not None and np.issubdtype(x.dtype, np.floating):
            x = quantize(x, *self.frames_quant)
        interp = self._interp
        interp.set_input(x, self._frames_index)
        for value, (index, *_rest) in zip(self._values if self.external else [], self._states):
            interp.set_input(value, index)
        start = time.perf_counter()
        interp.invoke()
        self._invoke_seconds += time.perf_counter() - start
        self._invokes += 1
        if self.external:
            values = []
            for _, out_index, _, _, q_in, q_out, _ in self._states:
                value = np.array(interp.get_output(out_index), copy=True)
                if q_in != q_out:  # the graph changed the state's quantization: requantize as firmware must
                    value = quantize(dequantize(value, *q_out), *q_in)
                values.append(value)
            self._values = values
        logits = np.array(interp.get_output(self._logits_index), copy=True).reshape(-1)
        if raw or self.logits_quant is None:
            return logits
        return dequantize(logits, *self.logits_quant)

    def predict(self, x, progress=None):
        raise TypeError("a streaming model runs step by step: use run(features) or step(frames)")

    def run(self, features: np.ndarray, reset: bool = True, raw: bool = False) -> np.ndarray:
        """features [T, bins] (T a multiple of frames_per_step) -> logits [T / frames_per_step, classes]
        (raw: as step(raw=True))."""
        features = np.asarray(features)
        if len(features) % self.frames_per_step:
            raise ValueError(f"{len(features)} frames are not a multiple of the step ({self.frames_per_step})")
        if reset:
            self.reset()
        s = self.frames_per_step
        return np.stack([self.step(features[t:t + s], raw) for t in range(0, len(features), s)])
