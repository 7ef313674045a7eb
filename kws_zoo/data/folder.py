"""Folder-per-label reader: root/<label>/*.wav, optionally root/_background_noise_/*.wav.

Splits come from a stable hash of the speaker (kws_zoo.data.splits.folder_split: the part before '_nohash_' if
the name has one, else the file name without its extension), so adding files never moves existing ones between
splits and one speaker's takes stay together. Labels are the folder names, sorted; with cfg.words the GSC
keyword protocol applies (those words + _silence_ + _unknown_ drawn from the other folders).
"""
from __future__ import annotations

from kws_zoo.core.errors import ConfigError
from kws_zoo.data.base import DataConfig, KwsData, assemble, plain
from kws_zoo.data.gsc import list_background, require_words, scan


def load_folder(cfg: DataConfig) -> KwsData:
    if cfg.path is None:
        raise ConfigError("a folder dataset needs DataConfig.path")
    root = cfg.resolved_path()
    labels, by_split = scan(root, cfg, use_lists=False)
    if cfg.words is not None:
        require_words(root, cfg.words, labels)
        names, splits = assemble(by_split, cfg.words, cfg)
    else:
        names, splits = plain(by_split, tuple(labels))
    return KwsData(names, splits, list_background(root))
