"""What a recipe does to a dataset beyond reading it: the filters (DataConfig.speakers: one half of the speakers;
DataConfig.max_per_label: a seeded sample per label) and the training additions (background_dirs: real noise for
the background pool; unknown_dirs: real non-keyword speech as _unknown_; extra_train: real keyword clips from other
datasets). Only the training split grows, so validation and test still measure the dataset itself."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kws_zoo.core.errors import DataError
from kws_zoo.data.base import REPO_ROOT, UNKNOWN, DataConfig, Example, KwsData
from kws_zoo.data.splits import speaker_half, speaker_of


def _folder(path: str) -> Path:
    """A configured folder; a relative one that does not exist from here is taken from the repository root."""
    folder = Path(path)
    if not folder.is_absolute() and not folder.exists():
        folder = REPO_ROOT / folder
    if not folder.is_dir():
        raise DataError(f"{path}: folder not found")
    return folder


def _wavs_below(folder: Path) -> list[Path]:
    wavs = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and not p.name.startswith("."))
    if not wavs:
        raise DataError(f"{folder}: no WAV files")
    return wavs


def filtered(cfg: DataConfig, data: KwsData) -> KwsData:
    """`data` restricted to cfg.speakers' half and to cfg.max_per_label examples per label and split."""
    splits = data.splits
    if cfg.speakers != "all":
        splits = {s: [e for e in ex if speaker_half(e.speaker) == cfg.speakers] for s, ex in splits.items()}
    if cfg.max_per_label:
        rng = np.random.default_rng(cfg.seed)
        capped = {}
        for split, examples in splits.items():
            keep = []
            for label in range(len(data.labels)):
                mine = [e for e in examples if e.label == label]
                chosen = sorted(rng.choice(len(mine), size=min(cfg.max_per_label, len(mine)), replace=False))
                keep += [mine[i] for i in chosen]
            capped[split] = keep
        splits = capped
    return data if splits is data.splits else dataclasses.replace(data, splits=splits)


def with_extras(cfg: DataConfig, data: KwsData, load) -> KwsData:
    """`data` (filtered) with cfg's extra background noise, _unknown_ examples and keyword clips in its training
    split. `load(cfg)` reads an extra_train dataset (kws_zoo.data.load_dataset)."""
    data = filtered(cfg, data)
    if not cfg.background_dirs and not cfg.unknown_dirs and not cfg.extra_train:
        return data
    background = list(data.background) + [str(p) for d in cfg.background_dirs for p in _wavs_below(_folder(d))]
    train = list(data.splits.get("train", []))
    if cfg.unknown_dirs:
        if UNKNOWN not in data.labels:
            raise DataError(f"unknown_dirs needs a {UNKNOWN} label; this dataset's labels are {list(data.labels)}")
        label = data.labels.index(UNKNOWN)
        train += [Example(str(p), label, speaker_of(p.name))
                  for folder in cfg.unknown_dirs for p in _wavs_below(_folder(folder))]
    for extra_cfg in cfg.extra_train:
        extra = load(extra_cfg)
        missing = [n for n in extra.labels if not n.startswith("_") and n not in data.labels]
        if missing:
            raise DataError(f"extra_train {extra_cfg.display_name}: labels {missing} are not among "
                            f"{list(data.labels)}")
        index = [data.labels.index(n) if not n.startswith("_") else -1 for n in extra.labels]
        train += [dataclasses.replace(e, label=index[e.label]) for ex in extra.splits.values() for e in ex
                  if index[e.label] >= 0]
    return dataclasses.replace(data, splits={**data.splits, "train": train}, background=background)
