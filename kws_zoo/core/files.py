"""The one atomic writer: a killed process leaves the old file or the new one, never half of one.

Every writer goes through `atomic_path`: it writes a temporary file beside the target (the same file system, so
os.replace is atomic) and moves it over the target only once the writing succeeded.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

import soundfile as sf


@contextlib.contextmanager
def atomic_path(path, *, keep_suffix: bool = False) -> Iterator[str]:
    """A temporary path beside `path` to write to; it replaces `path` when the block succeeds and is removed when
    it fails. keep_suffix puts the extension last ('x.partial123.png'), for writers that pick the format by it."""
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.partial{os.getpid()}{ext}" if keep_suffix else f"{path}.tmp{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def atomic_write_wav(path, audio, sample_rate: int, subtype: str = "PCM_16") -> None:
    """A WAV file of `audio` (float samples in [-1, 1]; 16-bit PCM by default)."""
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, sample_rate, subtype=subtype, format="WAV")


def atomic_save_keras(model, path) -> None:
    """model.save to `path`, a .keras file (Keras picks the format by the suffix, so the temporary name keeps it)."""
    with atomic_path(path, keep_suffix=True) as tmp:
        model.save(tmp)
