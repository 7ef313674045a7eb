"""Hard-negative mining: the current model over long negative audio of training voices; what it fires on becomes
training data labelled _unknown_ for the next round (a model learns most from the negatives it gets wrong).

The detector here is permissive (MINING_CUTOFF, one-invoke window) so near misses are mined too, not only
what would fire at the deployed cut-off. Each trigger gives the one-second window that ended at it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kws_zoo.data.audio import SAMPLE_RATE, write_wav
from kws_zoo.evaluate.wake import detect
from kws_zoo.workflows.wakeword.corpus import train_ids

MINING_CUTOFF = 128  # uint8: probability 0.5
MINING_WINDOW = 1
MAX_PER_ROUND = 3000


def triggers(scores, cutoff: int = MINING_CUTOFF, window: int = MINING_WINDOW, stride: int = 3) -> np.ndarray:
    """End times (s) of the detections of a negative stream's StreamScores."""
    return scores.times(detect(scores.probs_u8, cutoff, window, stride))


def mined_clips(audio: np.ndarray, times_s, clip_s: float = 1.0) -> list[np.ndarray]:
    """The `clip_s` of audio ending at each trigger time (skipping triggers in the stream's first second)."""
    n = int(clip_s * SAMPLE_RATE)
    ends = [int(round(t * SAMPLE_RATE)) for t in times_s]
    return [audio[e - n:e].astype(np.float32) for e in ends if n <= e <= len(audio)]


def write_mined(clips: list[np.ndarray], folder: str | Path, round_no: int) -> int:
    """Writes the clips as training-split files of `folder` (a word folder of the corpus); returns the count."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clips = clips[:MAX_PER_ROUND]
    for key, clip in zip(train_ids(f"mined{round_no}x", len(clips)), clips):
        write_wav(folder / f"{key}_nohash_0.wav", clip)
    return len(clips)
