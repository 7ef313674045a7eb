"""A labelled test set: root/<label>/*.wav, every folder a label, every file in the test split.

The layout of the canonical Speech Commands test set (`speech_commands_test_set_v0.02`): the ten words plus
`_silence_/` (real one-second background clips) and `_unknown_/` (other words, named
`<word>_<speaker>_nohash_<n>.wav`) as labels of their own. kws_zoo's model labels use the same names, so
evaluation maps data labels to model labels by name (kws_zoo.evaluate.accuracy). Nothing is sampled, hashed or
drawn: the score is over every file, as the benchmark is reported.
"""
from __future__ import annotations

import os

from kws_zoo.core.errors import DataError
from kws_zoo.data.base import SILENCE, UNKNOWN, DataConfig, Example, KwsData
from kws_zoo.data.gsc import BACKGROUND_DIR, list_background
from kws_zoo.data.splits import SPLITS, speaker_of

RESERVED_LABELS = (SILENCE, UNKNOWN)  # folders that are labels here but not word folders in a corpus


def is_testset_root(path: str) -> bool:
    """Whether `path` looks like a labelled test set: a `_silence_/` or `_unknown_/` folder holding WAVs."""
    return any(_wavs(os.path.join(path, label)) for label in RESERVED_LABELS)


def _wavs(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(".wav") and not n.startswith("."))


def testset_speaker(label: str, name: str) -> str:
    """The speaker of a test-set file: GSC's `<speaker>_nohash_<n>.wav`, and in `_unknown_/` the
    `<word>_` prefix dropped, so one person's keywords and unknown words share a speaker."""
    speaker = speaker_of(name)
    if label == UNKNOWN and "_nohash_" in name and "_" in speaker:
        speaker = speaker.split("_", 1)[1]
    return speaker


def load_testset(cfg: DataConfig) -> KwsData:
    if cfg.path is None:
        raise DataError("a test-set dataset needs DataConfig.path (root/<label>/*.wav)")
    root = cfg.resolved_path()
    if not root.is_dir():
        raise DataError(f"{root}: test set not found")
    folders = {d.name: _wavs(str(d)) for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
    found = sorted(name for name, files in folders.items() if files and name != BACKGROUND_DIR)
    if not found:
        raise DataError(f"{root}: no label folders with WAV files (<label>/*.wav)")
    labels = tuple([r for r in RESERVED_LABELS if r in found] + [n for n in found if n not in RESERVED_LABELS])
    test = [Example(str(root / label / name), i, testset_speaker(label, name))
            for i, label in enumerate(labels) for name in folders[label]]
    return KwsData(labels, {split: (test if split == "test" else []) for split in SPLITS}, list_background(root))
