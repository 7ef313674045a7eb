"""Every released model, as the registry states it: the file in the release folder has the registered size and
sha256, its firmware folder holds exactly its .tflite, and TFLM runs it with the stated arena and refuses 1 KB
less. The figures `kws-zoo pretrained list` prints are the model card's."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from kws_zoo import hub
from kws_zoo.core.errors import DeviceError
from kws_zoo.device.firmware import read_model_data
from kws_zoo.device.runtime import TflmModel
from kws_zoo.hub.listing import pretrained_table
from kws_zoo.hub.registry import RELEASE_FOLDER, registry
from kws_zoo.models.registry import get_entry

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENTRIES = sorted(registry().values(), key=lambda e: e.name)


def test_the_zoo_releases_one_model_per_family():
    families = {get_entry(e.architecture).family for e in ENTRIES}
    assert {"ds_cnn"} <= families, families


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(hub.ENV_CACHE, str(tmp_path_factory.mktemp("cache")))
        mp.delenv(hub.ENV_MIRROR, raising=False)
        yield {e.name: hub.download(e.name, progress=False) for e in ENTRIES}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_release_file_matches_the_registry(entry):
    path = os.path.join(REPO, RELEASE_FOLDER, entry.file)
    data = open(path, "rb").read()
    assert len(data) == entry.size and hashlib.sha256(data).hexdigest() == entry.sha256
    assert entry.urls and all(u.endswith("/" + entry.file) for u in entry.urls)
    assert entry.license and entry.recipe and "synthetic_test" in entry.metrics


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_firmware_folders_hold_the_model_and_its_real_arena(entry, unpacked):
    folder = unpacked[entry.name]
    card = json.load(open(os.path.join(folder, "export", "model_card.json")))
    assert (card["params"], card["flash_bytes"], list(entry.labels)) == (entry.params, entry.flash_bytes,
                                                                         card["labels"])
    kinds = [("firmware", "export/model_int8.tflite")]
    if "stream_internal" in entry.forms:
        kinds.append(("firmware_stream", "stream/model_stream_internal_int8.tflite"))
    for kind, model_file in kinds:
        model_bytes = open(os.path.join(folder, model_file), "rb").read()
        assert read_model_data(os.path.join(folder, kind, "model_data.cc")) == model_bytes, kind
        header = open(os.path.join(folder, kind, "model_data.h")).read()
        stated = int(header.split("kArenaBytesMeasured = ")[1].split(";")[0])
        model = TflmModel(model_bytes, arena_size=stated)
        if kind == "firmware":
            assert stated == entry.arena_bytes
        else:
            assert stated == entry.stream_arena_bytes
            model.predict(np.zeros((1, *model.input_shape[1:]), np.int8))
        with pytest.raises(DeviceError, match=f"arena {stated - 1024} bytes"):
            TflmModel(model_bytes, arena_size=stated - 1024)


def test_listing_prints_every_model_with_its_figures():
    table = pretrained_table(ENTRIES)
    for e in ENTRIES:
        row = next(line for line in table.splitlines() if line.startswith(e.name + " "))
        assert f"{e.metrics['synthetic_test']:.1%}" in row and f"{e.params:,}" in row
        arena = e.stream_arena_bytes or e.arena_bytes
        assert f"{e.flash_bytes / 1024:.1f} KB" in row and f"{arena / 1024:.1f} KB" in row


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_load_pretrained_gives_the_model_the_int8_was_made_from(entry, unpacked, monkeypatch):
    monkeypatch.setenv(hub.ENV_CACHE, os.path.dirname(os.path.dirname(unpacked[entry.name])))
    model = hub.load_pretrained(entry.name, progress=False)
    int8 = TflmModel(open(os.path.join(unpacked[entry.name], "export", "model_int8.tflite"), "rb").read())
    assert tuple(model.input_shape[1:]) == tuple(int8.input_shape[1:]) and model.output_shape[-1] == len(entry.labels)
    x = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:])).astype(np.float32)
    assert np.isfinite(model.predict(x, verbose=0)).all()
