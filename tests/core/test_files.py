"""kws_zoo.core.files: a write either lands whole or leaves the old file, and never leaves a temporary behind."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from kws_zoo.core import files


def test_writes_replace_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    files.atomic_write_text(path, "old")
    files.atomic_write_json(path, {"x": np.arange(3)})  # arrays are written as lists
    assert json.loads(path.read_text()) == {"x": [0, 1, 2]}
    assert os.listdir(tmp_path) == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "model.bin"
    files.atomic_write_bytes(path, b"finished work")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(b"half of the new")
            raise KeyboardInterrupt  # a killed run
    assert path.read_bytes() == b"finished work"
    assert os.listdir(tmp_path) == ["model.bin"]


def test_unwritable_values_fail_before_touching_the_file(tmp_path):
    path = tmp_path / "card.json"
    files.atomic_write_json(path, {"ok": 1})
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        files.atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1} and os.listdir(tmp_path) == ["card.json"]


def test_keep_suffix_lets_format_picking_writers_see_the_extension(tmp_path):
    path = tmp_path / "clip.wav"
    with files.atomic_path(path, keep_suffix=True) as tmp:
        assert tmp.endswith(".wav") and tmp != str(path)
        sf.write(tmp, np.zeros(160, np.float32), 16000)
    assert sf.info(str(path)).frames == 160 and os.listdir(tmp_path) == ["clip.wav"]
