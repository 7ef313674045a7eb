"""Google Speech Commands' split rule: a file's split is a stable hash of its speaker id.

GSC files are named `<speaker>_nohash_<n>.wav`; hashing only the part before `_nohash_` keeps every
speaker in exactly one split, and the split never moves when files are added. The constants match the
rule in the GSC README so that readers reproduce the official validation/testing lists.
"""
from __future__ import annotations

import hashlib
import os

# GSC hashes into 2**27 - 1 buckets (it was chosen to exceed any per-word file count).
_BUCKETS = 2 ** 27 - 1
SPLITS = ("train", "validation", "test")


def speaker_of(filename: str) -> str:
    """'yes/0a1b2c3d_nohash_1.wav' -> '0a1b2c3d' (the whole stem if there is no `_nohash_`)."""
    stem = os.path.basename(filename)
    cut = stem.find("_nohash_")
    return stem[:cut] if cut >= 0 else os.path.splitext(stem)[0]


def split_percentage(filename: str) -> float:
    """The speaker's position in [0, 100] that decides its split."""
    # GSC keeps the whole base name (extension included) when there is no `_nohash_`; so do we.
    base = os.path.basename(filename)
    cut = base.find("_nohash_")
    key = base[:cut] if cut >= 0 else base
    digest = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    return (digest % (_BUCKETS + 1)) * (100.0 / _BUCKETS)


def which_set(filename: str, validation_pct: float = 10, testing_pct: float = 10) -> str:
    """Returns 'train', 'validation' or 'test' (the names used by `KwsData.splits`).

    Same thresholds as GSC's `which_set` ('training'/'testing' there are 'train'/'test' here).
    """
    pct = split_percentage(filename)
    if pct < validation_pct:
        return "validation"
    if pct < validation_pct + testing_pct:
        return "test"
    return "train"
