"""Folder-per-label reader: root/<label>/*.wav, optionally root/_background_noise_/*.wav.

Splits come from a stable hash of the speaker (the part before '_nohash_' if the name has one, else the
whole file name), so adding files never moves existing ones between splits and one speaker's takes
stay together. Labels are the folder names, sorted; with cfg.words the GSC keyword protocol applies
(those words + _silence_ + _unknown_ drawn from the other folders).
"""
from __future__ import annotations

import os

from kws_zoo.data.base import DataConfig, KwsData, assemble, hash_split, plain, speaker_of
from kws_zoo.data.gsc import BACKGROUND_DIR, require_words, list_words


def load_folder(cfg: DataConfig) -> KwsData:
    if cfg.path is None:
        raise ValueError("a folder dataset needs DataConfig.path")
    root = cfg.resolved_path()
    labels = list_words(root)
    by_split: dict[str, dict[str, list[tuple[str, str]]]] = {"train": {}, "validation": {}, "test": {}}
    for label in labels:
        for name in sorted(n for n in os.listdir(root / label) if n.lower().endswith(".wav")):
            speaker = speaker_of(name)
            split = hash_split(speaker, cfg.validation_pct, cfg.testing_pct)
            by_split[split].setdefault(label, []).append((str(root / label / name), speaker))
    if cfg.words is not None:
        require_words(root, cfg.words, labels)
        names, splits = assemble(by_split, cfg.words, cfg)
    else:
        names, splits = plain(by_split, tuple(labels))
    bg_dir = root / BACKGROUND_DIR
    background = sorted(str(p) for p in bg_dir.glob("*.wav")) if bg_dir.is_dir() else []
    return KwsData(names, splits, background)
