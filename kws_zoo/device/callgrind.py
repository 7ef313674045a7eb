"""Instructions per TFLM invoke, counted by valgrind's callgrind.

Wall time on a shared x86 host says little about an MCU; the instruction count inside
MicroInterpreter::Invoke is deterministic and tracks kernel work (reference kernels, x86-64
instructions, so compare models with it rather than reading it as Cortex-M cycles).
Collection is toggled on only inside Invoke, so Python start-up, numpy and the model set-up
cost nothing in the count (they still run slowly under valgrind: expect ~10-60 s per call).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

from kws_zoo.core.errors import ConfigError, ToolMissing
from kws_zoo.core.files import atomic_write_bytes, atomic_write_text

# Runs under valgrind: imports only numpy and the TFLM extension (no TensorFlow) to keep the
# un-collected start-up short.
_SCRIPT = """
import sys
import numpy as np
from tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
interp = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[3]))
d = interp.get_input_details(0)
rng = np.random.default_rng(0)
info = np.iinfo(d["dtype"]) if np.issubdtype(d["dtype"], np.integer) else None
for _ in range(int(sys.argv[2])):
    if info is None:
        x = rng.standard_normal(d["shape"]).astype(d["dtype"])
    else:
        x = rng.integers(info.min, info.max + 1, size=d["shape"]).astype(d["dtype"])
    interp.set_input(x, 0)
    interp.invoke()
"""
_TOTALS = re.compile(r"^(?:totals|summary):\s*(\d+)", re.MULTILINE)


def instructions_per_invoke(model_bytes: bytes, invokes: int = 5, arena_size: int | None = None,
                            timeout_s: float = 600.0) -> float:
    """Mean x86 instructions executed inside MicroInterpreter::Invoke over `invokes` runs on
    seeded random inputs. arena_size=None uses 4x the model size plus 64 KB (the count does
    not depend on the arena size, it only has to be large enough)."""
    if shutil.which("valgrind") is None:
        raise ToolMissing("valgrind not found on PATH: install it with `apt-get install valgrind`")
    if invokes < 1:
        raise ConfigError("invokes must be >= 1")
    arena = arena_size or 4 * len(model_bytes) + 64 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        model_path, script_path = os.path.join(tmp, "m.tflite"), os.path.join(tmp, "run.py")
        atomic_write_bytes(model_path, model_bytes)
        atomic_write_text(script_path, _SCRIPT)
        return command_instructions_per_invoke(
            [sys.executable, script_path, model_path, str(invokes), str(arena)], invokes, timeout_s)


def command_instructions_per_invoke(command: list[str], invokes: int, timeout_s: float = 600.0) -> float:
    """Mean instructions inside MicroInterpreter::Invoke of any program that invokes `invokes` times (the pip
    interpreter above, or the C++ example of tflm/ built on the host)."""
    if shutil.which("valgrind") is None:
        raise ToolMissing("valgrind not found on PATH: install it with `apt-get install valgrind`")
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
               "--toggle-collect=*MicroInterpreter::Invoke*", f"--callgrind-out-file={out_path}", *command]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0 or not os.path.exists(out_path):
            raise RuntimeError(f"callgrind run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        with open(out_path) as f:
            found = _TOTALS.search(f.read())
    if not found or int(found.group(1)) == 0:
        raise RuntimeError("callgrind collected no instructions; is MicroInterpreter::Invoke "
                           "still an exported symbol of the program?")
    return int(found.group(1)) / invokes
