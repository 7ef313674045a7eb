"""Pretrained models: `load_pretrained("ds_cnn.synthetic12")`, `create_model(name, pretrained=True)`, and the
folder behind a name (a run directory: kws_zoo.json, model.keras, export/, firmware/, stream/) for every CLI
command that takes MODEL.

Cache: $KWS_ZOO_CACHE, default ~/.cache/kws_zoo. Sources, in order: $KWS_ZOO_MIRROR (a base URL: http(s) or
file://), the release folder of a kws_zoo checkout when the package runs from one, the project's release URL.
Every file is checked against the registry's sha256 and size before it is used.
"""
from __future__ import annotations

import json
import os

from kws_zoo.compress.qat import qat_scope, strip_qat
from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ModelError
from kws_zoo.hub.download import RetryPolicy, extract_archive, fetch_verified
from kws_zoo.hub.registry import (RELEASE_FOLDER, PretrainedEntry, is_pretrained_name, list_pretrained,
                                  pretrained_entry)
from kws_zoo.models.registry import create_model as _create_architecture
from kws_zoo.models.saving import load_keras
from kws_zoo.rundir import COMPRESS_SUMMARY, COMPRESSED_MODEL, MODEL

ENV_CACHE, ENV_MIRROR = "KWS_ZOO_CACHE", "KWS_ZOO_MIRROR"
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

__all__ = ["PretrainedEntry", "cache_root", "create_model", "download", "is_pretrained_name", "list_pretrained",
           "load_pretrained", "pretrained_entry", "source_urls"]


def cache_root() -> str:
    return os.environ.get(ENV_CACHE) or os.path.join(os.path.expanduser("~"), ".cache", "kws_zoo")


def source_urls(entry: PretrainedEntry) -> list[str]:
    urls = []
    mirror = os.environ.get(ENV_MIRROR)
    if mirror:
        urls.append(f"{mirror.rstrip('/')}/{entry.file}")
    local = os.path.join(_CHECKOUT, RELEASE_FOLDER, entry.file)
    if os.path.isfile(local):
        urls.append("file://" + local)
    return urls + [u for u in entry.urls if u not in urls]


def download(name: str, progress: bool = True, policy: RetryPolicy = RetryPolicy()) -> str:
    """The unpacked folder of a pretrained model (a run directory), downloaded and verified if not cached."""
    entry = pretrained_entry(name)
    folder = os.path.join(cache_root(), "pretrained")
    archive = fetch_verified(source_urls(entry), os.path.join(folder, entry.file), entry.sha256, entry.size,
                             policy, progress)
    return extract_archive(archive, os.path.join(folder, f"{entry.name}-{entry.sha256[:12]}"))


def load_pretrained(name: str, progress: bool = True) -> keras.Model:
    """The trained Keras model of a pretrained name: the training form (fine-tune it, or export it), or for a
    compressed release (QAT, pruning) the float model its int8 was converted from (quantizers removed)."""
    folder = download(name, progress)
    compressed = os.path.join(folder, COMPRESSED_MODEL)
    if not os.path.isfile(compressed):
        return load_keras(os.path.join(folder, MODEL))
    with qat_scope():
        model = load_keras(compressed)
    with open(os.path.join(folder, COMPRESS_SUMMARY)) as f:
        qat = json.load(f)["compress"].get("qat")
    return strip_qat(model) if qat else model


def create_model(name: str, *, pretrained: bool = False, **kwargs) -> keras.Model:
    """kws_zoo.models.create_model, plus pretrained names: `create_model("ds_cnn.synthetic12", pretrained=True)`
    is the released model; without pretrained=True a tagged name builds its architecture untrained."""
    if pretrained:
        if kwargs:
            raise ModelError(f"{name}: a pretrained model is built as released; got overrides {sorted(kwargs)}")
        return load_pretrained(name)
    architecture = pretrained_entry(name).architecture if "." in name else name
    return _create_architecture(architecture, **kwargs)
