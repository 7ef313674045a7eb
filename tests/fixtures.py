"""Small audio fixtures made on the fly (tests never depend on generated corpora or shared data)."""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

# Each "word" is a short chirp in its own band, so a tiny model learns it in a couple of epochs.
TONE_WORDS = {"alpha": (300, 600), "bravo": (900, 1400), "charlie": (1800, 2500), "delta": (3000, 3800)}


def tone_clip(word: str, rng: np.random.Generator, rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    lo, hi = TONE_WORDS[word]
    n = int(rate * seconds)
    length = int(rate * rng.uniform(0.3, 0.6))
    start = rng.integers(0, n - length)
    t = np.arange(length) / rate
    f0 = rng.uniform(lo, hi)
    sweep = np.sin(2 * np.pi * (f0 * t + 0.5 * (hi - lo) * 0.3 * t ** 2)) * np.hanning(length)
    out = 0.01 * rng.standard_normal(n)
    out[start:start + length] += rng.uniform(0.2, 0.6) * sweep
    return out.astype(np.float32)


def make_tone_corpus(root, speakers: int = 40, seed: int = 0) -> str:
    """root/<word>/<speaker>_nohash_<take>.wav plus a background folder: the folder-per-label layout."""
    rng = np.random.default_rng(seed)
    for word in TONE_WORDS:
        os.makedirs(os.path.join(root, word), exist_ok=True)
        for s in range(speakers):
            for take in range(2):
                sf.write(os.path.join(root, word, f"spk{s:03d}_nohash_{take}.wav"), tone_clip(word, rng), 16000,
                         subtype="PCM_16")
    os.makedirs(os.path.join(root, "_background_noise_"), exist_ok=True)
    sf.write(os.path.join(root, "_background_noise_", "white.wav"),
             (0.05 * rng.standard_normal(16000 * 5)).astype(np.float32), 16000, subtype="PCM_16")
    return str(root)


def tiny_recipe_dict(corpus: str, name: str = "tiny", epochs: int = 2) -> dict:
    return {"name": name, "model": "ds_cnn_small", "model_overrides": {"filters": 16, "bn_momentum": 0.8, "dropout_first": 0.0, "dropout_last": 0.1},
            "data": {"kind": "folder", "path": corpus, "validation_pct": 20, "testing_pct": 20},
            "frontend": {"kind": "mfcc", "window_ms": 30, "hop_ms": 20, "num_mfcc": 10, "fmax": 4000},
            "augment": {"reverb_prob": 0.0, "background_snr_db": [10, 30], "speed_prob": 0.0},
            "schedule": {"epochs": epochs, "batch_size": 16, "learning_rate": 0.01, "warmup_epochs": 0}}
