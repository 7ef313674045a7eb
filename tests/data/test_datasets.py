"""Dataset readers on small generated corpora (GSC layout, folder layout) and on the real FSDD."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_zoo.core.errors import ConfigError, DataError
from kws_zoo.data import DataConfig, load_dataset
from kws_zoo.data.base import SILENCE, UNKNOWN, KwsData, default_path
from kws_zoo.data.fsdd import DIGIT_WORDS
from kws_zoo.data.gsc import KEYWORDS_12, WORDS_V2
from kws_zoo.data.splits import folder_split, gsc_split, speaker_of

# Its module-scoped fixtures train or render data: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_datasets")

EXTRA = ("bed", "cat", "dog", "happy")  # non-keywords: the unknown pool
SPLIT_OF_SPEAKER = {**{i: "train" for i in range(6)}, 6: "validation", 7: "validation", 8: "test", 9: "test"}


def write_tone(path: Path, freq: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(1600) / 16000  # 0.1 s
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), 16000, subtype="PCM_16")


def make_gsc(root: Path, words, n_speakers: int = 10, lists: bool = True) -> Path:
    """Speaker i has 1 take if i is even, 2 if odd; speakers 0-5 train, 6-7 validation, 8-9 test."""
    val, test = [], []
    for w, word in enumerate(words):
        for spk in range(n_speakers):
            for take in range(1 + spk % 2):
                rel = f"{word}/spk{spk:02d}ab_nohash_{take}.wav"
                write_tone(root / rel, 200 + 20 * w)
                {"validation": val, "test": test}.get(SPLIT_OF_SPEAKER.get(spk, "train"), []).append(rel)
    if lists:
        (root / "validation_list.txt").write_text("\n".join(val) + "\n")
        (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    write_tone(root / "_background_noise_" / "white.wav")
    write_tone(root / "_background_noise_" / "pink.wav")
    return root


@pytest.fixture(scope="module")
def gsc_root(tmp_path_factory) -> Path:
    return make_gsc(tmp_path_factory.mktemp("gsc"), KEYWORDS_12 + EXTRA)


def gsc(root, **kw) -> KwsData:
    return load_dataset(DataConfig(kind="gsc", path=str(root), **kw))


def test_gsc_12_labels_in_tf_order(gsc_root):
    data = gsc(gsc_root)
    assert data.labels == ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
                           "stop", "go")
    assert data.labels.index(SILENCE) == 0 and data.labels.index(UNKNOWN) == 1
    assert sorted(Path(p).name for p in data.background) == ["pink.wav", "white.wav"]


def test_gsc_split_membership_follows_lists(gsc_root):
    val = set((gsc_root / "validation_list.txt").read_text().split())
    test = set((gsc_root / "testing_list.txt").read_text().split())
    data = gsc(gsc_root, unknown_pct=100)
    for split, examples in data.splits.items():
        for e in examples:
            if not e.path:
                continue
            rel = "/".join(Path(e.path).parts[-2:])
            assert (rel in test, rel in val) == (split == "test", split == "validation"), (split, rel)
    # every keyword file is used exactly once
    keyword_files = [e.path for ex in data.splits.values() for e in ex if e.label >= 2]
    assert len(keyword_files) == len(set(keyword_files)) == 10 * 15


def test_gsc_no_speaker_leakage_and_speaker_names(gsc_root):
    data = gsc(gsc_root)
    assert data.speaker_overlap() == {}
    assert {e.speaker for e in data.splits["test"] if e.path} == {"spk08ab", "spk09ab"}


@pytest.mark.parametrize("unknown_pct,silence_pct,expect_unknown,expect_silence", [
    (10, 10, {"train": 9, "validation": 3, "test": 3}, {"train": 9, "validation": 3, "test": 3}),
    (25, 5, {"train": 23, "validation": 8, "test": 8}, {"train": 5, "validation": 2, "test": 2}),  # half-up
    (100, 0, {"train": 36, "validation": 12, "test": 12}, {"train": 0, "validation": 0, "test": 0}),  # pool cap
    (0, 50, {"train": 0, "validation": 0, "test": 0}, {"train": 45, "validation": 15, "test": 15}),
])
def test_gsc_unknown_and_silence_counts(gsc_root, unknown_pct, silence_pct, expect_unknown, expect_silence):
    # keywords per split: train 10 words x 9 takes = 90, validation 30, test 30; unknown pool 36/12/12
    counts = gsc(gsc_root, unknown_pct=unknown_pct, silence_pct=silence_pct).counts()
    assert {s: c[UNKNOWN] for s, c in counts.items()} == expect_unknown
    assert {s: c[SILENCE] for s, c in counts.items()} == expect_silence
    assert {s: sum(c.values()) - c[UNKNOWN] - c[SILENCE] for s, c in counts.items()} == \
        {"train": 90, "validation": 30, "test": 30}


def test_gsc_unknown_sampling_is_seeded(gsc_root):
    def unknown(seed):
        return [e.path for e in gsc(gsc_root, seed=seed).splits["train"] if e.label == 1]

    assert unknown(0) == unknown(0)
    assert unknown(0) != unknown(1)
    assert all(Path(p).parent.name in EXTRA for p in unknown(0))
    silence = [e for e in gsc(gsc_root).splits["train"] if e.label == 0]
    assert silence and all(e.path == "" and e.speaker == "" for e in silence)


def test_gsc_custom_words(gsc_root):
    data = gsc(gsc_root, words=("yes", "no"), unknown_pct=100, silence_pct=0)
    assert data.labels == (SILENCE, UNKNOWN, "yes", "no")
    unknown_words = {Path(e.path).parent.name for e in data.splits["train"] if e.label == 1}
    assert len(unknown_words) > 3 and unknown_words <= set(KEYWORDS_12[2:] + EXTRA)  # other keywords count
    assert data.counts()["train"] == {SILENCE: 0, UNKNOWN: 18, "yes": 9, "no": 9}  # 100 % of 18 keywords


def test_gsc_35_and_all_protocols(tmp_path, gsc_root):
    root = make_gsc(tmp_path / "v2", WORDS_V2, n_speakers=3)  # speakers 0-2: all train, 1+2+1 takes
    data = gsc(root, protocol="35")
    assert data.labels == WORDS_V2 == tuple(sorted(WORDS_V2)) and len(data.labels) == 35
    assert set(data.counts()["train"].values()) == {4}
    assert data.splits["validation"] == [] and data.splits["test"] == []
    with pytest.raises(DataError, match="backward"):
        gsc(gsc_root, protocol="35")  # the 14-word fixture lacks most v2 words
    assert gsc(gsc_root, protocol="all").labels == tuple(sorted(KEYWORDS_12 + EXTRA))


def test_gsc_v1_vocabulary(tmp_path):
    v1 = tuple(w for w in WORDS_V2 if w not in ("backward", "follow", "forward", "learn", "visual"))
    root = make_gsc(tmp_path / "v1", v1, n_speakers=2)
    assert len(gsc(root, protocol="all").labels) == 30
    data = gsc(root, unknown_pct=100)
    assert data.counts()["train"][UNKNOWN] == 30  # 100 % of 10 keywords x 3 takes, from a pool of 60


def test_gsc_without_lists_hash_splits_by_speaker(tmp_path):
    root = make_gsc(tmp_path / "nolists", KEYWORDS_12, n_speakers=10, lists=False)
    data = gsc(root, validation_pct=30, testing_pct=30)
    assert data.speaker_overlap() == {}
    for split, examples in data.splits.items():
        assert all(folder_split(e.speaker, 30, 30) == split for e in examples if e.path)


# Pinned before the split rules moved into kws_zoo.data.splits: (file, speaker, splits) where the four letters
# (T train, V validation, E test) are the GSC list rule at 10/10 % and 30/30 %, then the folder hash rule at
# 10/10 % and 30/30 %. A changed letter means an existing dataset's split moved.
PINNED_SPLITS = [
    ("yes/0a7c2a8d_nohash_0.wav", "0a7c2a8d", "TETT"),
    ("no/0a7c2a8d_nohash_3.wav", "0a7c2a8d", "TETT"),
    ("up/1b4c9e2f_nohash_1.wav", "1b4c9e2f", "VVTT"),
    ("down/3c5d7e9a_nohash_0.wav", "3c5d7e9a", "TETT"),
    ("left/5e6f7a8b_nohash_2.wav", "5e6f7a8b", "TTTE"),
    ("right/7a8b9c0d_nohash_0.wav", "7a8b9c0d", "TTTE"),
    ("on/9c0d1e2f_nohash_1.wav", "9c0d1e2f", "TTTT"),
    ("off/b2c3d4e5_nohash_0.wav", "b2c3d4e5", "TETE"),
    ("stop/d4e5f6a7_nohash_4.wav", "d4e5f6a7", "TTTT"),
    ("go/f6a7b8c9_nohash_0.wav", "f6a7b8c9", "TVVV"),
    ("alpha/s0_nohash_0.wav", "s0", "TETT"),
    ("alpha/s7_nohash_1.wav", "s7", "TTVV"),
    ("beta/s13_nohash_0.wav", "s13", "TTTV"),
    ("gamma/s19_nohash_1.wav", "s19", "EVEV"),
    ("alpha/loose_alpha.wav", "loose_alpha", "TTEV"),
    ("beta/loose_beta.wav", "loose_beta", "TVEV"),
    ("yes/spk00ab_nohash_0.wav", "spk00ab", "TTTT"),
    ("yes/spk06ab_nohash_1.wav", "spk06ab", "TTTT"),
    ("yes/spk09ab_nohash_0.wav", "spk09ab", "TTTT"),
    ("word/newcomer_nohash_0.wav", "newcomer", "TVEV"),
    ("x/george.wav", "george", "TVVV"),
    ("x/c0ffee00_nohash_12.wav", "c0ffee00", "TTTE"),
]


@pytest.mark.parametrize("name, speaker, letters", PINNED_SPLITS)
def test_split_rules_never_move_a_file(name, speaker, letters):
    split = {"T": "train", "V": "validation", "E": "test"}
    assert speaker_of(name) == speaker
    assert [gsc_split(name), gsc_split(name, 30, 30)] == [split[c] for c in letters[:2]]
    assert [folder_split(speaker, 10, 10), folder_split(speaker, 30, 30)] == [split[c] for c in letters[2:]]


def test_gsc_errors_name_the_root(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        gsc(tmp_path / "nowhere")
    write_tone(tmp_path / "empty_root" / "_background_noise_" / "n.wav")
    (tmp_path / "empty_root" / "yes").mkdir()  # a folder without WAVs is not a word
    with pytest.raises(DataError, match="no word folders"):
        gsc(tmp_path / "empty_root")


def test_folder_reader(tmp_path):
    root = tmp_path / "folder"
    for label in ("alpha", "beta", "gamma"):
        for spk in range(20):
            for take in range(2):
                write_tone(root / label / f"s{spk}_nohash_{take}.wav")
        write_tone(root / label / f"loose_{label}.wav")  # no _nohash_: its own speaker
    cfg = DataConfig(kind="folder", path=str(root), validation_pct=20, testing_pct=20)
    data = load_dataset(cfg)
    assert data.labels == ("alpha", "beta", "gamma") and data.background == []
    assert sum(len(v) for v in data.splits.values()) == 3 * 41
    assert data.speaker_overlap() == {}
    assert all(len(v) > 0 for v in data.splits.values())
    before = {e.path: s for s, ex in data.splits.items() for e in ex}
    write_tone(root / "alpha" / "newcomer_nohash_0.wav")  # adding files never moves existing ones
    after = {e.path: s for s, ex in load_dataset(cfg).splits.items() for e in ex}
    assert {p: after[p] for p in before} == before and len(after) == len(before) + 1
    with pytest.raises(ConfigError, match="path"):
        load_dataset(DataConfig(kind="folder"))
    kw = load_dataset(DataConfig(kind="folder", path=str(root), words=("beta",), unknown_pct=50, silence_pct=0))
    assert kw.labels == (SILENCE, UNKNOWN, "beta")
    counts = kw.counts()
    assert all(c[UNKNOWN] == int(np.floor(c["beta"] / 2 + 0.5)) for c in counts.values())


FSDD = default_path("fsdd")


@pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason="FSDD not available")
def test_fsdd_real():
    data = load_dataset(DataConfig(kind="fsdd"))
    assert data.labels == DIGIT_WORDS == ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                          "nine")
    sizes = {s: len(v) for s, v in data.splits.items()}
    assert sizes == {"train": 1600, "validation": 200, "test": 200}
    counts = data.counts()
    assert set(counts["test"].values()) == {20}  # 4 speakers x 5 takes per digit
    assert {e.speaker for e in data.splits["test"]} == {"george", "jackson", "lucas", "nicolas"}
    for split, examples in data.splits.items():
        for e in examples:
            digit, speaker, take = Path(e.path).stem.split("_")
            assert e.label == int(digit) and e.speaker == speaker
            assert split == ("test" if int(take) < 5 else "validation" if int(take) < 10 else "train")
    no_val = load_dataset(DataConfig(kind="fsdd", validation_pct=0))
    assert {s: len(v) for s, v in no_val.splits.items()} == {"train": 1800, "validation": 0, "test": 200}


def test_data_config_round_trip_and_validation():
    cfg = DataConfig(kind="folder", path="/x", words=("on", "off"), silence_pct=5.0, seed=3)
    assert DataConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert DataConfig(words=["a", "b"]).words == ("a", "b")
    with pytest.raises(ValueError, match="unknown DataConfig keys"):
        DataConfig.from_dict({"kind": "gsc", "silence_percent": 3})
    for bad in (dict(kind="librispeech"), dict(protocol="20"), dict(unknown_pct=-1),
                dict(validation_pct=60, testing_pct=40), dict(words=("yes", "yes")), dict(words=("_unknown_",))):
        with pytest.raises(ConfigError):
            DataConfig(**bad)


def test_relabel_and_summary(gsc_root):
    data = gsc(gsc_root, words=("yes", "no"))
    moved = data.relabel((SILENCE, UNKNOWN, "no", "yes", "maybe"))
    by_path = {e.path: moved.labels[e.label] for e in moved.splits["train"] if e.path}
    assert all(by_path[e.path] == data.labels[e.label] for e in data.splits["train"] if e.path)
    with pytest.raises(DataError, match="_silence_"):
        data.relabel(("yes", "no"))
    text = data.summary()
    assert "yes" in text and "validation" in text and "background clips: 2" in text


def test_training_extras_add_noise_and_unknown_words_to_the_training_split_only(gsc_root, tmp_path):
    noise, words = tmp_path / "noise", tmp_path / "unknown_words"
    write_tone(noise / "room.wav")
    for word in ("bed", "happy"):
        for take in range(3):
            write_tone(words / word / f"spk9{take}_nohash_0.wav")
    plain = gsc(gsc_root)
    extra = gsc(gsc_root, background_dirs=[str(noise)], unknown_dirs=[str(words)])
    assert extra.background == plain.background + [str(noise / "room.wav")]
    unknown = extra.labels.index(UNKNOWN)
    added = [e for e in extra.splits["train"] if e.path.startswith(str(words))]
    n_unknown = plain.counts()["train"][UNKNOWN]
    assert len(added) == min(6, max(1, n_unknown // 2)) and {e.label for e in added} == {unknown}
    assert extra.counts()["train"] == plain.counts()["train"]  # real unknowns take half the class, not more
    assert extra.splits["test"] == plain.splits["test"] and extra.splits["validation"] == plain.splits["validation"]
    with pytest.raises(DataError, match="missing: folder not found"):
        gsc(gsc_root, background_dirs=[str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no WAV files"):
        gsc(gsc_root, unknown_dirs=[str(tmp_path / "empty")])
    with pytest.raises(DataError, match="needs a _unknown_ label"):
        gsc(gsc_root, protocol="all", unknown_dirs=[str(words)])
