"""Synthetic corpus: GSC layout, speaker-disjoint splits, determinism, resume, card, failure messages.

Two tiny corpora (3 words x 9 speakers x 2 takes) are built once per module: one through
`make_corpus` with 2 workers, one through the CLI entry point with 1 worker.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_zoo import cli
from kws_zoo.core.errors import ConfigError, DataError, EngineError, EngineMissing
from kws_zoo.data.splits import gsc_split, speaker_of
from kws_zoo.data.synthetic import corpus as synthetic
from kws_zoo.data.synthetic import tts as tts_engines
from kws_zoo.data.synthetic.corpus import GSC_V2_WORDS, make_corpus
from kws_zoo.data.synthetic.noise import FILLER_WORDS

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_synthetic")

WORDS = ("yes", "no", "visual")
SEED, SPEAKERS, TAKES = 3, 9, 2  # seed 3 puts these 9 speakers in all three splits
NAME_RE = re.compile(r"^[0-9a-f]{8}_nohash_[0-9]+\.wav$")
GENERATED = ("card.json", "card.md", "validation_list.txt", "testing_list.txt", ".kws_zoo_synthetic.json")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic") / "corpus"
    card = make_corpus(out, WORDS, speakers=SPEAKERS, takes=TAKES, seed=SEED, workers=2, progress=False)
    return out, card


@pytest.fixture(scope="module")
def corpus_cli(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic_cli") / "corpus"
    argv = ["make-data", "--out", str(out), "--words", ",".join(WORDS), "--speakers", str(SPEAKERS),
            "--takes", str(TAKES), "--seed", str(SEED), "--workers", "1", "--no-progress"]
    cli.main(argv)
    return out


def _clips(root: Path) -> list[str]:
    return sorted(f"{p.parent.name}/{p.name}" for p in root.glob("*/*.wav") if not p.parent.name.startswith("_"))


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_gsc_layout_and_audio_format(corpus):
    out, _ = corpus
    clips = _clips(out)
    assert len(clips) == len(WORDS) * SPEAKERS * TAKES
    assert {c.split("/")[0] for c in clips} == set(WORDS)
    for rel in clips:
        assert NAME_RE.match(rel.split("/")[1]), rel
        info = sf.info(str(out / rel))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16"), rel
    assert len({speaker_of(c) for c in clips}) == SPEAKERS
    for name in GENERATED:
        assert (out / name).is_file(), name


def test_clips_are_centred_words_at_varied_levels(corpus):
    out, _ = corpus
    peaks = []
    for rel in _clips(out):
        audio, _ = sf.read(str(out / rel), dtype="float32")
        peak = float(np.max(np.abs(audio)))
        peaks.append(20 * np.log10(peak))
        energy = audio.astype(np.float64) ** 2
        centre = float(np.sum(energy * np.arange(len(audio))) / np.sum(energy)) / 16000
        assert abs(centre - 0.5) < 0.25, (rel, centre)
        assert np.abs(audio[:80]).max() < 0.1 * peak and np.abs(audio[-80:]).max() < 0.1 * peak, rel  # not cut
    assert -20.2 <= min(peaks) and max(peaks) <= -0.9
    assert max(peaks) - min(peaks) > 5  # gain really varies


def test_lists_follow_gsc_hash_and_speakers_stay_in_one_split(corpus):
    out, _ = corpus
    listed = {name: (out / name).read_text().split() for name in ("validation_list.txt", "testing_list.txt")}
    split_of = {rel: "train" for rel in _clips(out)}
    for name, split in (("validation_list.txt", "validation"), ("testing_list.txt", "test")):
        for rel in listed[name]:
            assert rel in split_of, f"{name} lists a missing file {rel}"
            split_of[rel] = split
    splits_of_speaker = defaultdict(set)
    for rel, split in split_of.items():
        assert gsc_split(rel) == split, rel
        splits_of_speaker[speaker_of(rel)].add(split)
    assert all(len(s) == 1 for s in splits_of_speaker.values()), splits_of_speaker
    assert set(Counter(s for (s,) in splits_of_speaker.values())) == {"train", "validation", "test"}


def test_gsc_split_is_gscs_rule():
    # GSC: sha1 of the name before `_nohash_`, mod 2**27, scaled by 100 / (2**27 - 1)
    for name in ("0a7c2a8d_nohash_0.wav", "yes/ffd2ba2f_nohash_4.wav", "c1d39ce8_nohash_1.wav", "x.wav"):
        key = re.sub(r"_nohash_.*$", "", name.split("/")[-1])
        pct = int(hashlib.sha1(key.encode()).hexdigest(), 16) % 2 ** 27 * (100.0 / (2 ** 27 - 1))
        assert gsc_split(name) == ("validation" if pct < 10 else "test" if pct < 20 else "train"), name
        assert gsc_split(name, 0, 0) == "train" and gsc_split(name, 100, 0) == "validation"
    assert gsc_split("a/0a7c2a8d_nohash_0.wav") == gsc_split("b/0a7c2a8d_nohash_9.wav")
    counts = Counter(gsc_split(f"{i:08x}_nohash_0.wav") for i in range(5000))
    assert 400 < counts["validation"] < 600 and 400 < counts["test"] < 600


def test_card_matches_files_on_disk(corpus):
    out, card = corpus
    assert json.loads((out / "card.json").read_text()) == card
    clips = _clips(out)
    assert card["num_clips"] == len(clips) and card["seed"] == SEED and card["words"] == sorted(WORDS)
    per_word = {w: Counter(gsc_split(c) for c in clips if c.startswith(f"{w}/")) for w in WORDS}
    assert {w: dict(c) for w, c in card["counts_per_word"].items()} == \
        {w: {s: per_word[w][s] for s in ("train", "validation", "test")} for w in WORDS}
    assert sum(card["counts_per_split"].values()) == len(clips)
    engine_of = {s["id"]: s["engine"] for s in card["speakers"]}
    assert card["counts_per_engine"] == dict(Counter(engine_of[speaker_of(c)] for c in clips))
    assert set(card["counts_per_engine"]) == {"espeak", "flite", "festival"}
    assert card["num_speakers"] == SPEAKERS == len(card["speakers"])
    for name, split in (("validation_list.txt", "validation"), ("testing_list.txt", "test")):
        assert len((out / name).read_text().split()) == card["counts_per_split"][split]
    assert str(card["num_clips"]) in (out / "card.md").read_text()


def test_background_noise_files(corpus):
    out, card = corpus
    names = {p.name for p in (out / "_background_noise_").glob("*.wav")}
    assert {"white_noise.wav", "pink_noise.wav", "brown_noise.wav", "mains_hum_50hz.wav", "mains_hum_60hz.wav",
            "babble.wav", "running_machine.wav"} <= names
    assert set(card["background_noise"]) == names
    for name in names:
        audio, rate = sf.read(str(out / "_background_noise_" / name), dtype="float32")
        assert rate == 16000 and audio.ndim == 1 and abs(len(audio) / rate - 60) < 0.01, name
        assert 0.03 < np.sqrt(np.mean(audio ** 2)) < 0.2, name
    assert not set(FILLER_WORDS) & set(GSC_V2_WORDS)  # babble must not be keywords only


def test_same_seed_gives_identical_bytes_for_any_worker_count(corpus, corpus_cli):
    a, b = _tree_bytes(corpus[0]), _tree_bytes(corpus_cli)
    assert sorted(a) == sorted(b)
    differing = [name for name in a if a[name] != b[name]]
    assert not differing, differing


def test_seed_changes_speakers():
    ids = {seed: [s.id for s in synthetic.select_speakers(seed, tts_engines.ENGINES, 20)] for seed in (0, 1)}
    assert not set(ids[0]) & set(ids[1])
    assert [s.id for s in synthetic.select_speakers(0, tts_engines.ENGINES, 10)] == ids[0][:10]  # prefixes grow


def test_resume_regenerates_only_missing_files(corpus, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(corpus[0], out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    victims = [out / _clips(out)[5], out / "_background_noise_" / "pink_noise.wav"]
    originals = [v.read_bytes() for v in victims]
    for victim in victims:
        victim.unlink()
    (out / "yes" / "deadbeef_nohash_0.wav.tmp123").write_bytes(b"half a file")  # a killed writer's leftover
    make_corpus(out, WORDS, speakers=SPEAKERS, takes=TAKES, seed=SEED, workers=2, progress=False)
    for victim, original in zip(victims, originals):
        assert victim.read_bytes() == original
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    assert set(after) == set(before)
    changed = {p for p in before if p not in victims and after[p] != before[p]}
    assert not changed, changed
    assert not list(out.glob("*/*.tmp*"))


def test_other_seed_in_same_directory_is_refused(corpus):
    with pytest.raises(DataError, match="seed"):
        make_corpus(corpus[0], WORDS, speakers=SPEAKERS, seed=SEED + 1, progress=False)


def test_takes_have_distinct_jitter():
    speaker = synthetic.select_speakers(0, ("flite",), 1)[0]
    params = [synthetic.clip_params(0, speaker, "yes", take) for take in range(6)]
    rates = [p["rate"] for p in params]
    assert len(set(rates)) == 6
    assert all(abs(r / speaker.rate - 1) <= synthetic.RATE_JITTER + 1e-9 for r in rates)


def test_silent_render_fails_with_a_clear_message(monkeypatch):
    speaker = synthetic.select_speakers(0, ("espeak",), 1)[0]
    monkeypatch.setattr(synthetic, "tts_render_many",
                        lambda e, v, items, formant=1.0: [np.zeros(8000, np.float32)] * len(items))
    with pytest.raises(EngineError, match=r"no audible speech for 'yes'"):
        synthetic.render_clips(0, speaker, [("yes", 0)])


def test_missing_binary_names_the_apt_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    for engine, package in (("espeak", "espeak-ng"), ("flite", "flite"), ("festival", "festival")):
        with pytest.raises(EngineMissing, match=f"apt-get install {package}"):
            tts_engines.check_engine(engine)


def test_tts_render_public_api():
    slow = tts_engines.tts_render("espeak", "en-us+adam", "seven", rate=0.8, pitch=1.2)
    fast = tts_engines.tts_render("espeak", "en-us+adam", "seven", rate=1.25, pitch=1.2)
    assert slow.dtype == np.float32 and slow.ndim == 1 and np.max(np.abs(slow)) > 0.05
    assert len(fast) < 0.85 * len(slow)
    for engine in ("flite", "festival"):
        audio = tts_engines.tts_render(engine, tts_engines.voices(engine)[0], "seven")
        assert 0.2 < len(audio) / 16000 < 2 and np.max(np.abs(audio)) > 0.05
    with pytest.raises(ConfigError, match="unknown TTS engine"):
        tts_engines.tts_render("sam", "x", "yes")
