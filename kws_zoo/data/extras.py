"""What a recipe does to a dataset beyond reading it: the filters (DataConfig.speakers: one half of the speakers;
DataConfig.max_per_label: a seeded sample per label) and the training additions (background_dirs: real noise for
the background pool; unknown_dirs: real non-keyword speech as _unknown_; extra_train: real keyword clips from other
datasets, or every word of another synthetic corpus with `with_unknown`). Only the training split grows, so
validation and test still measure the dataset itself."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kws_zoo.core.errors import DataError
from kws_zoo.data.base import UNKNOWN, DataConfig, Example, KwsData, repo_path
from kws_zoo.data.splits import speaker_half, speaker_of


def _folder(path: str) -> Path:
    """A configured folder (kws_zoo.data.base.repo_path)."""
    folder = repo_path(path)
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


def _with_real_unknowns(cfg: DataConfig, train: list[Example], label: int) -> list[Example]:
    """`train` with half of its _unknown_ examples (at least one) replaced by real ones from cfg.unknown_dirs,
    drawn with cfg.seed: the class keeps the size the protocol gave it (measured: adding 900 real unknown words on
    top of 411 synthetic ones took real-speech accuracy from 66.8% to 57.1%, keywords going to _unknown_)."""
    real = [Example(str(p), label, speaker_of(p.name)) for d in cfg.unknown_dirs for p in _wavs_below(_folder(d))]
    mine = [i for i, e in enumerate(train) if e.label == label]
    take = min(len(real), max(1, len(mine) // 2))
    rng = np.random.default_rng([cfg.seed, 1])
    dropped = set(rng.choice(mine, size=min(take, len(mine)), replace=False).tolist()) if mine else set()
    chosen = sorted(rng.choice(len(real), size=take, replace=False).tolist())
    return [e for i, e in enumerate(train) if i not in dropped] + [real[i] for i in chosen]


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
        train = _with_real_unknowns(cfg, train, data.labels.index(UNKNOWN))
    for extra_cfg in cfg.extra_train:
        extra = load(extra_cfg)
        missing = [n for n in extra.labels if not n.startswith("_") and n not in data.labels]
        if missing:
            raise DataError(f"extra_train {extra_cfg.display_name}: labels {missing} are not among "
                            f"{list(data.labels)}")
        joins = [n for n in extra.labels if not n.startswith("_") or (extra_cfg.with_unknown and n == UNKNOWN)]
        if UNKNOWN in joins and UNKNOWN not in data.labels:
            raise DataError(f"extra_train {extra_cfg.display_name}: with_unknown needs a {UNKNOWN} label; this "
                            f"dataset's labels are {list(data.labels)}")
        index = [data.labels.index(n) if n in joins else -1 for n in extra.labels]
        train += [dataclasses.replace(e, label=index[e.label]) for ex in extra.splits.values() for e in ex
                  if index[e.label] >= 0] * extra_cfg.repeat
    return dataclasses.replace(data, splits={**data.splits, "train": train}, background=background)
