"""Google Speech Commands reader (v1: 30 words, v2: 35 words), also used for the synthetic corpus.

Layout: root/<word>/<speaker>_nohash_<n>.wav, root/_background_noise_/*.wav, and root/validation_list.txt,
root/testing_list.txt naming '<word>/<file>' one per line; training is every file in neither list.
The lists are speaker-disjoint by construction. A root with no lists at all is split as a folder dataset is
(kws_zoo.data.splits.folder_split: a stable hash of the speaker, cfg.validation_pct / cfg.testing_pct).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from kws_zoo.core.errors import DataError
from kws_zoo.data.base import DataConfig, KwsData, assemble, plain
from kws_zoo.data.splits import SPLITS, folder_split, speaker_of

BACKGROUND_DIR = "_background_noise_"
KEYWORDS_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
WORDS_V2 = ("backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four",
            "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right",
            "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero")


def list_words(root: Path) -> list[str]:
    """Word folders: directories not starting with '_' or '.' that hold at least one .wav."""
    if not root.is_dir():
        raise DataError(f"{root}: Speech Commands root not found (set the dataset path, or create the "
                        "built-in synthetic corpus with `kws-zoo make-data`)")
    words = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name[0] not in "_."
                   and any(n.lower().endswith(".wav") for n in os.listdir(d)))
    if not words:
        raise DataError(f"{root}: no word folders (<word>/*.wav) found; is this a Speech Commands root?")
    return words


def _read_list(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def _list_rule(root: Path) -> Callable[[str], str] | None:
    """The split of '<word>/<file>' by the root's validation and testing lists; None if it has neither."""
    paths = root / "validation_list.txt", root / "testing_list.txt"
    if not any(p.exists() for p in paths):
        return None
    validation, test = (_read_list(p) for p in paths)
    return lambda rel: "test" if rel in test else "validation" if rel in validation else "train"


def scan(root: Path, cfg: DataConfig, use_lists: bool = True
         ) -> tuple[list[str], dict[str, dict[str, list[tuple[str, str]]]]]:
    """(word folders, by_split) with by_split[split][word] = sorted [(absolute path, speaker)]. Files go by the
    root's lists when it has them (and use_lists), else by folder_split of their speaker."""
    words = list_words(root)
    listed = _list_rule(root) if use_lists else None
    by_split: dict[str, dict[str, list[tuple[str, str]]]] = {split: {} for split in SPLITS}
    for word in words:
        for name in sorted(n for n in os.listdir(root / word) if n.lower().endswith(".wav")):
            speaker = speaker_of(name)
            split = listed(f"{word}/{name}") if listed else folder_split(speaker, cfg.validation_pct, cfg.testing_pct)
            by_split[split].setdefault(word, []).append((str(root / word / name), speaker))
    return words, by_split


def list_background(root: Path) -> list[str]:
    """The noise WAVs of root/_background_noise_, sorted (none if the folder is missing)."""
    folder = root / BACKGROUND_DIR
    return sorted(str(p) for p in folder.glob("*.wav")) if folder.is_dir() else []


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
    return KwsData(labels, splits, list_background(root))


def require_words(root: Path, words, found: list[str]) -> None:
    missing = [w for w in words if w not in found]
    if missing:
        raise DataError(f"{root}: no folder for words {missing} (found: {found})")
