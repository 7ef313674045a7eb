"""Free Spoken Digit Dataset reader: recordings/{digit}_{speaker}_{take}.wav, 8 kHz (resampled on read).

Labels are the digit words 'zero'..'nine' (label i is digit i), so a model trained on synthetic spoken
digits can be scored on FSDD by label name (see KwsData.relabel).
Splits are by take, following the dataset's own convention (kws_zoo.data.splits.fsdd_split), so every speaker is
in every split:
  test       = takes 0-4 (fixed; cfg.testing_pct is ignored)
  validation = the next round(validation_pct / 2) takes (0.5 % per take of 50: the default 10 % gives
               takes 5-9; validation_pct=0 gives no validation split)
  train      = every later take.
"""
from __future__ import annotations

import os
import re

from kws_zoo.core.errors import DataError
from kws_zoo.data.base import DataConfig, Example, KwsData
from kws_zoo.data.splits import SPLITS, fsdd_split

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def load_fsdd(cfg: DataConfig) -> KwsData:
    root = cfg.resolved_path()
    rec = root / "recordings" if (root / "recordings").is_dir() else root
    if not rec.is_dir():
        raise DataError(f"{root}: FSDD not found (expected recordings/*.wav; set the dataset path)")
    names = sorted(n for n in os.listdir(rec) if n.lower().endswith(".wav"))
    if not names:
        raise DataError(f"{rec}: no .wav files")
    odd = [n for n in names if not _NAME.match(n)]
    if odd:
        raise DataError(f"{rec}: file names not of the form digit_speaker_take.wav: {odd[:10]}")
    splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
    for name in names:
        digit, speaker, take = _NAME.match(name).groups()
        splits[fsdd_split(int(take), cfg.validation_pct)].append(Example(str(rec / name), int(digit), speaker))
    return KwsData(DIGIT_WORDS, splits, [])
