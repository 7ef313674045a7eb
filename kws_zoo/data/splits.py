"""Every rule that puts a file in a split, one per dataset kind. All are pure functions of the file name, so a
split never moves when files are added and every machine agrees.

  gsc_split     Google Speech Commands' own rule (the one that wrote its validation/testing lists); the
                synthetic corpus uses it to write its lists.
  folder_split  folder-per-label datasets, and GSC-layout roots that have no lists.
  fsdd_split    the Free Spoken Digit Dataset, by take number.

The hash rules key on the speaker (speaker_of), so one speaker's takes always share a split.
"""
from __future__ import annotations

import hashlib
import math
import os

SPLITS = ("train", "validation", "test")
# GSC hashes into 2**27 - 1 buckets (it was chosen to exceed any per-word file count).
_GSC_BUCKETS = 2 ** 27 - 1
FSDD_TEST_TAKES = 5  # takes 0-4 of every digit and speaker are FSDD's test set
FSDD_TAKES_PER_DIGIT = 50


def speaker_of(filename: str) -> str:
    """'yes/0a1b2c3d_nohash_1.wav' -> '0a1b2c3d' (GSC's `<speaker>_nohash_<n>.wav`); other names are their own
    speaker: the file name without its extension."""
    base = os.path.basename(filename)
    cut = base.find("_nohash_")
    return base[:cut] if cut >= 0 else os.path.splitext(base)[0]


def round_half_up(x: float) -> int:
    """How split sizes round (Python's round() is half-to-even)."""
    return math.floor(x + 0.5)


def _split_at(pct: float, validation_pct: float, testing_pct: float) -> str:
    if pct < validation_pct:
        return "validation"
    return "test" if pct < validation_pct + testing_pct else "train"


def gsc_split(filename: str, validation_pct: float = 10, testing_pct: float = 10) -> str:
    """'train', 'validation' or 'test' by GSC's `which_set` ('training'/'testing' there): sha1 of the name before
    `_nohash_`, mod 2**27, scaled to [0, 100]. Reproduces the official lists."""
    base = os.path.basename(filename)
    cut = base.find("_nohash_")
    key = base[:cut] if cut >= 0 else base  # GSC keeps the extension when there is no `_nohash_`; so do we
    digest = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    return _split_at((digest % (_GSC_BUCKETS + 1)) * (100.0 / _GSC_BUCKETS), validation_pct, testing_pct)


def folder_split(speaker: str, validation_pct: float, testing_pct: float) -> str:
    """The split of a speaker of a folder dataset: the first 32 bits of sha1(speaker) mod 10000, as a
    percentage with two decimals."""
    pct = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest()[:8], 16) % 10000 / 100.0
    return _split_at(pct, validation_pct, testing_pct)


def fsdd_split(take: int, validation_pct: float) -> str:
    """FSDD by its own convention, so every speaker is in every split: takes 0-4 test, the next
    round(validation_pct / 2) takes (0.5 % per take of 50) validation, every later take train."""
    last_validation = FSDD_TEST_TAKES + round_half_up(validation_pct * FSDD_TAKES_PER_DIGIT / 100)
    if take < FSDD_TEST_TAKES:
        return "test"
    return "validation" if take < last_validation else "train"


SPEAKER_HALVES = ("all", "half_a", "half_b")


def speaker_half(speaker: str) -> str:
    """'half_a' or 'half_b': a stable, salted hash of the speaker, so a labelled test set splits into two
    speaker-disjoint halves (one to learn a few real clips from, the other to test on)."""
    return SPEAKER_HALVES[1 + hashlib.sha1(f"kws_zoo-half:{speaker}".encode()).digest()[0] % 2]
