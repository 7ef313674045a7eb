"""Google Speech Commands reader (v1: 30 words, v2: 35 words), also used for the synthetic corpus.

Layout: root/<word>/<speaker>_nohash_<n>.wav, root/_background_noise_/*.wav, and root/validation_list.txt,
root/testing_list.txt naming '<word>/<file>' one per line; training is every file in neither list.
The lists are speaker-disjoint by construction. If a root has no lists at all, files are split by a
stable hash of the speaker with cfg.validation_pct / cfg.testing_pct instead.
"""
from __future__ import annotations

import os
from pathlib import Path

from kws_zoo.data.base import DataConfig, KwsData, assemble, hash_split, plain, speaker_of

BACKGROUND_DIR = "_background_noise_"
KEYWORDS_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
WORDS_V2 = ("backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four",
            "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right",
            "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero")


def list_words(root: Path) -> list[str]:
    """Word folders: directories not starting with '_' or '.' that hold at least one .wav."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Speech Commands root not found (set the dataset path, or create the "
                                "built-in synthetic corpus with `kws-zoo make-data`)")
    words = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name[0] not in "_."
                   and any(n.lower().endswith(".wav") for n in os.listdir(d)))
    if not words:
        raise ValueError(f"{root}: no word folders (<word>/*.wav) found; is this a Speech Commands root?")
    return words


def _read_list(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def scan(root: Path, cfg: DataConfig) -> tuple[list[str], dict[str, dict[str, list[tuple[str, str]]]]]:
    """(word folders, by_split) with by_split[split][word] = sorted [(absolute path, speaker)]."""
    val_list, test_list = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    have_lists = (root / "validation_list.txt").exists() or (root / "testing_list.txt").exists()
    by_split: dict[str, dict[str, list[tuple[str, str]]]] = {"train": {}, "validation": {}, "test": {}}
    words = list_words(root)
    for word in words:
        for name in sorted(n for n in os.listdir(root / word) if n.lower().endswith(".wav")):
            rel, speaker = f"{word}/{name}", speaker_of(name)
            if have_lists:
                split = "test" if rel in test_list else "validation" if rel in val_list else "train"
            else:
                split = hash_split(speaker, cfg.validation_pct, cfg.testing_pct)
            by_split[split].setdefault(word, []).append((str(root / word / name), speaker))
    return words, by_split


def load_gsc(cfg: DataConfig) -> KwsData:
    root = cfg.resolved_path()
    found, by_split = scan(root, cfg)
    if cfg.words is not None or cfg.protocol == "12":
        words = cfg.words if cfg.words is not None else KEYWORDS_12
        require_words(root, words, found)
        labels, splits = assemble(by_split, tuple(words), cfg)
    elif cfg.protocol == "35":
        require_words(root, WORDS_V2, found)
        labels, splits = plain(by_split, WORDS_V2)
    else:  # "all": whatever word folders exist (v1 gives 30, a synthetic corpus its own vocabulary)
        labels, splits = plain(by_split, tuple(found))
    bg_dir = root / BACKGROUND_DIR
    background = sorted(str(p) for p in bg_dir.glob("*.wav")) if bg_dir.is_dir() else []
    return KwsData(labels, splits, background)


def require_words(root: Path, words, found: list[str]) -> None:
    missing = [w for w in words if w not in found]
    if missing:
        raise ValueError(f"{root}: no folder for words {missing} (found: {found})")
