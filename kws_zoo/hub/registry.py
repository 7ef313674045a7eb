"""The pretrained registry: one record per released model (`arch.tag`, timm's naming), read from pretrained.json.

pretrained.json is written by `kws-zoo pretrained release` (kws_zoo.workflows.release) from a finished run, so
every hash, size and metric in it was computed from the released bytes and the run's model card, never typed.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import os

from kws_zoo.core.errors import ConfigError, ModelError

REGISTRY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained.json")
ENV_REGISTRY = "KWS_ZOO_REGISTRY"  # another registry file (a team's own releases) instead of the zoo's
# Where the project publishes release files; KWS_ZOO_MIRROR puts another base URL first.
RELEASE_BASE_URL = "https://github.com/kws-zoo/kws_zoo/raw/main/releases/pretrained-v1"
RELEASE_FOLDER = os.path.join("releases", "pretrained-v1")  # the same files, in the repository


@dataclasses.dataclass(frozen=True)
class PretrainedEntry:
    name: str  # "<registered architecture>.<tag>"
    architecture: str
    file: str  # the release archive's file name
    sha256: str
    size: int
    urls: tuple[str, ...]
    labels: tuple[str, ...]
    frontend: dict
    clip_ms: int
    license: str
    recipe: str
    forms: tuple[str, ...]  # what the archive holds beside the Keras model: int8, stream_internal, qat, firmware
    params: int
    macs: int
    flash_bytes: int
    arena_bytes: int
    metrics: dict  # accuracy by evaluation set (TFLM int8 unless the key says otherwise)
    description: str = ""
    stream_arena_bytes: int = 0  # the internal-state streaming form's measured arena (streaming models)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "urls": list(self.urls), "labels": list(self.labels),
                "forms": list(self.forms)}

    @classmethod
    def from_dict(cls, values: dict) -> PretrainedEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"entry {values.get('name')!r} has unknown keys {unknown}")
        return cls(**{**values, "urls": tuple(values["urls"]), "labels": tuple(values["labels"]),
                      "forms": tuple(values["forms"])})


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime: float) -> dict[str, PretrainedEntry]:  # mtime: a release re-reads the file
    del mtime
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            entries = [PretrainedEntry.from_dict(r) for r in json.load(f)["models"]]
    except (ValueError, KeyError, TypeError) as err:  # ConfigError is a ValueError
        raise ConfigError(f"{path}: not a pretrained registry ({err})") from None
    return {e.name: e for e in entries}


def registry(path: str | None = None) -> dict[str, PretrainedEntry]:
    """{name: entry} of the registry file: `path`, else $KWS_ZOO_REGISTRY, else the zoo's REGISTRY_FILE."""
    path = path or registry_file()
    return _read(path, os.path.getmtime(path) if os.path.exists(path) else 0.0)


def registry_file() -> str:
    return os.environ.get(ENV_REGISTRY) or REGISTRY_FILE


def list_pretrained(pattern: str = "*") -> list[str]:
    """Sorted names of released models matching a shell-style pattern, e.g. list_pretrained('ds_cnn*')."""
    return sorted(n for n in registry() if fnmatch.fnmatchcase(n, pattern))


def is_pretrained_name(name: str) -> bool:
    return name in registry()


def pretrained_entry(name: str) -> PretrainedEntry:
    entries = registry()
    if name not in entries:
        arch = name.split(".")[0]
        close = [n for n in entries if n.split(".")[0] == arch] or sorted(entries)
        raise ModelError(f"unknown pretrained model {name!r}; released: {', '.join(close) or 'none'}")
    return entries[name]
