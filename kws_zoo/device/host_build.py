"""The host build of the firmware side (tflm/CMakeLists.txt): TFLM from a source tree (TFLM_ROOT), the recognizer,
kws_zoo's kernels, and one example application per firmware folder; then running those applications.

The build folder lives in the cache ($KWS_ZOO_CACHE or ~/.cache/kws_zoo, then tflm-host/<key>, the key naming the
TFLM tree and the compiler), so TFLM compiles once per machine and every later build only adds examples; a file lock
keeps two processes (pytest workers) from building in it at once. Without a TFLM tree only the recognizer builds.
Needs cmake and a C++17 compiler (ninja if installed).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from kws_zoo.core.errors import DeviceError, ToolMissing

REPO = Path(__file__).resolve().parents[2]  # the checkout: tflm/ sits beside the package
DEFAULT_TFLM_ROOT = REPO.parent / "shared" / "third_party" / "tflite-micro"
SKIP_REASON = ("no TFLite Micro source tree: set TFLM_ROOT to one (default "
               f"{DEFAULT_TFLM_ROOT}); the C++-with-TFLM tests need it")


def tflm_root() -> Path | None:
    root = Path(os.environ.get("TFLM_ROOT") or DEFAULT_TFLM_ROOT)
    return root if (root / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file() else None


def build_dir(root: Path | None) -> Path:
    compiler = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    key = hashlib.sha256(f"{root}|{compiler}".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("KWS_ZOO_CACHE") or Path.home() / ".cache" / "kws_zoo")
    return cache / "tflm-host" / key


def target(name: str) -> str:
    """The example's executable name for a model name (CMake's MAKE_C_IDENTIFIER)."""
    return "kws_example_" + "".join(c if c.isalnum() else "_" for c in name)


def build(models: dict[str, Path], root: Path | None) -> Path:
    """Configures and builds tflm/ with these firmware folders; returns the build folder."""
    if not (REPO / "tflm" / "CMakeLists.txt").is_file():
        raise DeviceError(f"{REPO / 'tflm'}: no CMakeLists.txt; the host build runs from a kws_zoo checkout")
    out = build_dir(root)
    out.mkdir(parents=True, exist_ok=True)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    spec = ";".join(f"{name}={Path(folder).resolve()}" for name, folder in sorted(models.items()))
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _run(["cmake", "-S", str(REPO / "tflm"), "-B", str(out), *generator, f"-DTFLM_ROOT={root or ''}",
              f"-DKWS_MODELS={spec}"])
        _run(["cmake", "--build", str(out), "-j", str(os.cpu_count() or 2)])
    return out


def example(build_folder: Path, name: str) -> str:
    return str(Path(build_folder) / target(name))


def arena_used(build_folder: Path, name: str) -> int:
    """The arena TFLM's C++ interpreter uses for the model built into example `name` (its --info)."""
    proc = subprocess.run([example(build_folder, name), "--info"], capture_output=True, text=True)
    if proc.returncode:
        raise DeviceError(f"{name}: the example does not run: {proc.stderr.strip()}")
    return int(json.loads(proc.stdout)["arena_used_bytes"])


def _run(cmd: list[str]) -> None:
    if not shutil.which(cmd[0]):
        raise ToolMissing(f"{cmd[0]} is not installed (Debian: apt-get install cmake ninja-build g++)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise DeviceError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
