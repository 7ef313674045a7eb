"""The one atomic writer: a killed process leaves the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os


def atomic_write_bytes(path, data: bytes) -> None:
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def atomic_save_keras(model, path) -> None:
    """model.save to `path` (a .keras file) through a temporary file beside it."""
    path = os.fspath(path)
    tmp = path[: -len(".keras")] + f".partial{os.getpid()}.keras"
    model.save(tmp)
    os.replace(tmp, path)
