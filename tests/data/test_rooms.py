"""The room-and-microphone copy: training split only, speakers kept, deterministic for any worker count, resumable,
and it refuses to mix with clips made another way."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from kws_zoo import cli
from kws_zoo.core.errors import AudioError, DataError
from kws_zoo.data import DataConfig, load_dataset
from kws_zoo.data.synthetic.rooms import RoomConfig, make_room_copy, room_response, simulate

from helpers import make_tone_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_tone_corpus(tmp_path_factory.mktemp("rooms") / "corpus", speakers=12)


def _wavs(folder) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(d, n), folder): open(os.path.join(d, n), "rb").read()
            for d, _, names in os.walk(folder) for n in names if n.endswith(".wav")}


def test_copies_the_training_split_only_keeping_speakers(corpus, tmp_path):
    train = load_dataset(DataConfig(kind="gsc", path=corpus, protocol="all")).splits["train"]
    card = make_room_copy(corpus, str(tmp_path / "out"), copies=2, workers=1, progress=False)
    written = _wavs(tmp_path / "out")
    assert card["clips"] == len(written) == 2 * len(train)
    speakers = {e.speaker for e in train}
    assert {name.split("/")[-1].split("_nohash_")[0] for name in written} == speakers
    copy = load_dataset(DataConfig(kind="gsc", path=str(tmp_path / "out"), protocol="all"))
    assert sum(len(v) for v in copy.splits.values()) == len(written)
    assert json.loads((tmp_path / "out" / "card.json").read_text())["copies"] == 2


def test_same_bytes_with_two_workers_and_resumes(corpus, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    make_room_copy(corpus, str(one), workers=1, progress=False)
    make_room_copy(corpus, str(two), workers=2, progress=False)
    assert _wavs(one) == _wavs(two)
    victim = sorted(_wavs(two))[3]
    os.remove(two / victim)
    cli.main(["rooms", corpus, "--out", str(two), "--workers", "1", "--no-progress", "--json"])
    assert _wavs(one) == _wavs(two)


def test_each_clip_changes_but_keeps_its_length_peak_and_place():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    clip = (0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-((t - 0.5) / 0.1) ** 2)).astype(np.float32)
    clip += 1e-3 * rng.standard_normal(16000).astype(np.float32)
    out = simulate(clip, seed=5, cfg=RoomConfig(dry_prob=0.0))
    assert out.shape == clip.shape and np.isclose(np.abs(out).max(), np.abs(clip).max(), rtol=1e-5)
    assert not np.allclose(out, clip, atol=1e-3)
    centre = [float((np.arange(16000) * a ** 2).sum() / (a ** 2).sum()) / 16000 for a in (clip, out)]
    assert abs(centre[1] - centre[0]) < 0.1  # the direct path stays at the word's time
    np.testing.assert_array_equal(out, simulate(clip, seed=5, cfg=RoomConfig(dry_prob=0.0)))
    response = room_response(np.random.default_rng(1), RoomConfig())
    assert np.argmax(np.abs(response)) == 0 and len(response) > 1000  # direct path first, then a tail


def test_refuses_other_settings_a_foreign_folder_and_bad_sources(corpus, tmp_path):
    out = tmp_path / "out"
    make_room_copy(corpus, str(out), workers=1, progress=False)
    with pytest.raises(DataError, match="other \\['seed'\\]"):
        make_room_copy(corpus, str(out), seed=1, workers=1, progress=False)
    (tmp_path / "foreign" / "w").mkdir(parents=True)
    (tmp_path / "foreign" / "w" / "a_nohash_0.wav").write_bytes(b"")
    with pytest.raises(DataError, match="no card.json"):
        make_room_copy(corpus, str(tmp_path / "foreign"), workers=1, progress=False)
    with pytest.raises(DataError, match="not found"):
        make_room_copy(str(tmp_path / "missing"), str(tmp_path / "x"), workers=1, progress=False)
    with pytest.raises(DataError, match="overwrite"):
        make_room_copy(corpus, corpus, workers=1, progress=False)
    broken = tmp_path / "broken"
    (broken / "w").mkdir(parents=True)
    for s in range(12):
        (broken / "w" / f"s{s}_nohash_0.wav").write_bytes(b"RIFF....not a wav")
    with pytest.raises(AudioError, match="s\\d+_nohash_0.wav: not a WAV file"):
        make_room_copy(str(broken), str(tmp_path / "y"), workers=1, progress=False)
