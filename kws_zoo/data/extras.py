"""What a recipe adds to a dataset for training (DataConfig.background_dirs, DataConfig.unknown_dirs): real noise
for the background pool, real non-keyword speech for the _unknown_ class. Only the training split grows, so
validation and test still measure the dataset itself."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from kws_zoo.core.errors import DataError
from kws_zoo.data.base import REPO_ROOT, UNKNOWN, DataConfig, Example, KwsData
from kws_zoo.data.splits import speaker_of


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


def with_extras(cfg: DataConfig, data: KwsData) -> KwsData:
    """`data` with cfg's extra background noise and extra _unknown_ training examples (none: `data` itself)."""
    if not cfg.background_dirs and not cfg.unknown_dirs:
        return data
    background = list(data.background) + [str(p) for d in cfg.background_dirs for p in _wavs_below(_folder(d))]
    splits = dict(data.splits)
    if cfg.unknown_dirs:
        if UNKNOWN not in data.labels:
            raise DataError(f"unknown_dirs needs a {UNKNOWN} label; this dataset's labels are {list(data.labels)}")
        label = data.labels.index(UNKNOWN)
        extra = [Example(str(p), label, speaker_of(p.name)) for d in cfg.unknown_dirs for p in _wavs_below(_folder(d))]
        splits["train"] = [*splits.get("train", []), *extra]
    return dataclasses.replace(data, splits=splits, background=background)
