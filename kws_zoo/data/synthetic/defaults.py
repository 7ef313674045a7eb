"""The synthetic corpus' defaults, importable without numpy or scipy so `kws-zoo make-data --help` can show them."""
from __future__ import annotations

import os
from pathlib import Path

ENGINES = ("espeak", "flite", "festival", "piper")
# What `make-data` uses unless told: the formant synthesizers (piper, neural voices: opt in, docs/results.md)
DEFAULT_ENGINES = ("espeak", "flite", "festival")
DEFAULT_SPEAKERS = 500
WORD_SET_NAMES = ("gsc35", "digits")


def default_corpus_dir() -> Path:
    """$KWS_ZOO_DATA/synthetic; KWS_ZOO_DATA defaults to <repo>/data/generated in a source checkout and
    to ~/.cache/kws_zoo when the package is installed elsewhere."""
    root = os.environ.get("KWS_ZOO_DATA")
    if not root:
        repo = Path(__file__).resolve().parents[3]
        root = repo / "data" / "generated" if (repo / "data").is_dir() else Path.home() / ".cache" / "kws_zoo"
    return Path(root) / "synthetic"
