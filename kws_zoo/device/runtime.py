"""Run a .tflite on the real TFLite Micro interpreter (the deployment reference) or on LiteRT.

Both runners share one predict(): one invoke per example, as firmware does, so batch size can
never hide a kernel that misbehaves with batch 1. Float inputs to an int8 model are quantized
with the model's own input parameters and the outputs dequantized; int8 inputs pass through.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator

import numpy as np
from tqdm import tqdm

from kws_zoo.core.errors import ConfigError, DeviceError
from kws_zoo.device.quant import dequantize, detail_quant, quantize

_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
# Every way TFLM reports a too-small arena (the memory planner's buffer list lives in the arena too).
_OUT_OF_ARENA = re.compile(r"Requested: \d+, available \d+, missing: \d+|Too many buffers|Failed to allocate")
# The first probe is generous on purpose: with too small an arena some TFLM kernels (conv Prepare)
# dereference a failed scratch-buffer request and segfault instead of reporting "missing" bytes.
# The measured size is what gets used and reported afterwards, so a big probe costs nothing.
MIN_AUTO_ARENA = 8 * 1024 * 1024
MAX_AUTO_ARENA = 256 * 1024 * 1024


@contextlib.contextmanager
def capture_c_stderr() -> Iterator[list[str]]:
    """Collects what C/C++ code writes to fd 2 while the block runs (yields a 1-item list
    filled on exit). TFLM reports through MicroPrintf -> fprintf(stderr), which bypasses
    sys.stderr, so only redirecting the file descriptor sees it. Process-global: not thread-safe.
    """
    sys.stderr.flush()
    result: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield result
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            result.append(tmp.read().decode("utf-8", "replace"))


class _Runner:
    """Shared predict() over a single-example `_invoke`; subclasses fill the tensor details."""

    input_shape: tuple[int, ...]
    input_dtype: type
    input_quant: tuple[float, int] | None  # (scale, zero_point) if the input is quantized
    output_quant: tuple[float, int] | None
    _invoke_seconds = 0.0
    _invokes = 0

    @property
    def invoke_time_ms(self) -> float:
        """Mean wall time of one invoke (host CPU, not MCU time), over every invoke so far."""
        return 1000.0 * self._invoke_seconds / self._invokes if self._invokes else float("nan")

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _timed_invoke(self, x: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        y = self._invoke(x)
        self._invoke_seconds += time.perf_counter() - t0
        self._invokes += 1
        return y

    def prepare_input(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        """Batch reshaped to [B, *input_shape[1:]] in the model dtype; True if outputs should be
        dequantized (float given to a quantized model)."""
        x = np.asarray(x)
        size = math.prod(self.input_shape[1:])
        if x.size == 0 or x.size % size:
            raise ValueError(f"input of shape {x.shape} does not split into examples of "
                             f"{self.input_shape[1:]}")
        x = x.reshape((-1,) + tuple(self.input_shape[1:]))
        if self.input_quant is None:
            if not np.issubdtype(x.dtype, np.floating):
                raise TypeError(f"float model got {x.dtype} input")
            return x.astype(self.input_dtype), False
        if np.issubdtype(x.dtype, np.floating):
            return quantize(x, *self.input_quant), True
        if x.dtype != self.input_dtype:
            raise TypeError(f"quantized model wants {np.dtype(self.input_dtype)} or float "
                            f"input, got {x.dtype}")
        return x, False

    def predict(self, x: np.ndarray, progress: bool | None = None) -> np.ndarray:
        """Outputs [B, ...] for a batch x (float or the model's int dtype); float input to a
        quantized model returns dequantized float32. progress=None shows tqdm for B >= 1000."""
        xq, dequant = self.prepare_input(x)
        show = len(xq) >= 1000 if progress is None else progress
        rows = [self._timed_invoke(ex[None])
                for ex in tqdm(xq, disable=not show, desc=type(self).__name__, leave=False)]
        y = np.concatenate(rows, axis=0)
        if dequant and self.output_quant is not None:
            return dequantize(y, *self.output_quant)
        return y


class TflmModel(_Runner):
    """The TFLM Python interpreter: the firmware's C++ interpreter with reference kernels
    (firmware linking optimized kernels such as CMSIS-NN may differ in arena and rounding).

    arena_size=None tries MIN_AUTO_ARENA bytes, doubling up to MAX_AUTO_ARENA until allocation succeeds,
    measures what was really used, then rebuilds the interpreter with exactly that many bytes, so every later
    invoke proves the number is sufficient. Attributes: arena_size (bytes given to TFLM),
    arena_bytes (bytes used, from TFLM's RecordingMicroAllocator), invoke_time_ms.
    """

    def __init__(self, model_bytes: bytes, arena_size: int | None = None):
        self._model = bytes(model_bytes)
        if arena_size is None:
            interp, size = self._auto_arena()
            used = self._measure(interp)
            try:
                interp, size = self._build(used), used
            except DeviceError:  # has not happened so far; keep the working (larger) arena
                pass
        else:
            interp, size = self._build(arena_size), arena_size
        self._interp = interp
        self.arena_size = size
        self.arena_bytes = self._measure(interp)
        din, dout = interp.get_input_details(0), interp.get_output_details(0)
        self.input_shape = tuple(int(d) for d in din["shape"])
        self.input_dtype = din["dtype"]
        self.input_quant, self.output_quant = detail_quant(din), detail_quant(dout)

    def _build(self, arena_size: int):
        from tflite_micro import runtime  # deferred: loads a 1.4 MB native extension

        with capture_c_stderr() as log:
            try:
                return runtime.Interpreter.from_bytes(self._model, arena_size=arena_size)
            except RuntimeError as err:
                failure = err
        raise DeviceError(f"TFLM interpreter creation failed (arena {arena_size} bytes): "
                          f"{failure}\n{log[0].strip()}") from failure

    def _auto_arena(self):
        size = MIN_AUTO_ARENA
        while True:
            try:
                return self._build(size), size
            except DeviceError as err:
                # Only a too-small arena is worth retrying; unsupported ops etc. fail for good.
                if not _OUT_OF_ARENA.search(str(err)) or size >= MAX_AUTO_ARENA:
                    raise
                size *= 2

    @staticmethod
    def _measure(interp) -> int:
        # The Python wrapper does not expose MicroInterpreter::arena_used_bytes(); its recording
        # allocator only prints totals to C stderr, so that text is captured and parsed.
        with capture_c_stderr() as log:
            interp.print_allocations()
        found = _ARENA_TOTAL.search(log[0])
        if not found:
            raise RuntimeError(f"no arena total in TFLM print_allocations output:\n{log[0]}")
        return int(found.group(1))

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self._interp.set_input(x, 0)
        self._interp.invoke()
        return np.array(self._interp.get_output(0), copy=True)


class LiteRtModel(_Runner):
    """LiteRT (desktop TFLite) with the same predict(). resolver='auto' is what users get
    (XNNPACK/optimized kernels, a few LSB from TFLM); 'reference' uses the builtin reference
    kernels: conv, depthwise and mean then match TFLM bit for bit, per-channel
    FULLY_CONNECTED may still differ by 1 LSB on rounding ties."""

    def __init__(self, model_bytes: bytes, resolver: str = "auto", num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType  # deferred: LiteRT is only a comparison

        kinds = {"auto": OpResolverType.AUTO, "reference": OpResolverType.BUILTIN_REF}
        if resolver not in kinds:
            raise ConfigError(f"resolver must be one of {sorted(kinds)}, got {resolver!r}")
        self._interp = Interpreter(model_content=bytes(model_bytes), num_threads=num_threads,
                                   experimental_op_resolver_type=kinds[resolver])
        self._interp.allocate_tensors()
        din, dout = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        self._in, self._out = din["index"], dout["index"]
        self.input_shape = tuple(int(d) for d in din["shape"])
        self.input_dtype = din["dtype"]
        self.input_quant, self.output_quant = detail_quant(din), detail_quant(dout)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out).copy()
