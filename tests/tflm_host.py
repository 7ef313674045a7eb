"""Building tflm/ (CMake) for the tests: TFLM from TFLM_ROOT, the recognizer, one example application per model.

The build folder is kept between test runs in the cache ($KWS_ZOO_CACHE or ~/.cache/kws_zoo/tflm-host/<key>, the
key naming the TFLM tree and the compiler), so TFLM compiles once per machine; a file lock keeps two pytest
workers from building in it at once. Without a TFLM tree only the recognizer builds.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
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


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
