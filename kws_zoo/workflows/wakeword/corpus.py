"""The wake-word corpus: the phrase by every TTS speaker, and three kinds of negatives, in the GSC layout.

  <slug>/            the phrase (every voice and variant of every engine, `takes` each) and the user's recordings;
  <close phrase>/    adversarial phrases (kws_zoo.data.synthetic.phrases), `adversarial_speakers` speakers each;
  <word>/            everyday words and the corpora's words, `general_speakers` speakers each;
  user_negatives/    the user's recordings that must not trigger;
  mined_r<N>/        false triggers found after round N (kws_zoo.workflows.wakeword.mining);
  _background_noise_ generated noises (babble never says the phrase).
Speakers split train/validation/test by GSC's hash of their id, so validation and test voices are never trained
on. Files added here (user and mined clips) take ids that hash to the training split.
"""
from __future__ import annotations

import os
from pathlib import Path

import soundfile as sf

from kws_zoo.core.errors import AudioError, BadFilesError
from kws_zoo.core.files import atomic_write_json
from kws_zoo.data.audio import SAMPLE_RATE, fit_length, read_wav, write_wav
from kws_zoo.data.splits import gsc_split
from kws_zoo.data.synthetic.corpus import all_speakers, make_corpus
from kws_zoo.data.synthetic.phrases import adversarial_phrases, check_fits, general_words, phrase_slug
from kws_zoo.workflows.wakeword.config import WakewordConfig

PLAN = "phrases.json"
USER_NEGATIVES = "user_negatives"


def train_ids(prefix: str, count: int) -> list[str]:
    """`count` file-name speaker keys '<prefix><n>' that GSC's hash puts in the training split."""
    out, n = [], 0
    while len(out) < count:
        key = f"{prefix}{n:05d}"
        if gsc_split(f"{key}_nohash_0.wav") == "train":
            out.append(key)
        n += 1
    return out


def check_user_folder(folder: str | None) -> list[str]:
    """The WAVs of a user folder, all checked before anything is written: 16 kHz, mono or not, readable. Bad files
    raise BadFilesError listing every one (the build's usual report); a missing folder is an AudioError."""
    if not folder:
        return []
    if not os.path.isdir(folder):
        raise AudioError(folder, "no such folder of recordings")
    paths = sorted(str(p) for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise AudioError(folder, "holds no files; give a folder of 16 kHz WAV recordings")
    bad = []
    for path in paths:
        try:
            read_wav(path)
            rate = sf.info(path).samplerate
            if rate != SAMPLE_RATE:
                raise AudioError(path, f"sample rate {rate} Hz; record or convert to {SAMPLE_RATE} Hz")
        except AudioError as err:
            bad.append(err)
    if bad:
        raise BadFilesError(bad)
    return paths


def _copy_user(paths: list[str], folder: Path, prefix: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for key, path in zip(train_ids(prefix, len(paths)), paths):
        target = folder / f"{key}_nohash_0.wav"
        if not target.exists():
            write_wav(target, fit_length(read_wav(path), SAMPLE_RATE))
    return len(paths)


def check_inputs(cfg: WakewordConfig) -> tuple[list[str], list[str]]:
    """The phrase fits the model's window and the user's folders hold only good 16 kHz WAVs (their paths)."""
    check_fits(cfg.phrase)
    return check_user_folder(cfg.positives_dir), check_user_folder(cfg.negatives_dir)


def build_corpus(cfg: WakewordConfig, out: str, *, workers: int = 2, progress: bool = True) -> dict:
    """Writes (or completes) the corpus in `out`; returns the plan: folders by kind and their spoken texts."""
    positives, negatives = check_inputs(cfg)
    slug = phrase_slug(cfg.phrase)
    close = adversarial_phrases(cfg.phrase)
    close_folders = {phrase_slug(text): text for text in close}
    general = tuple(w for w in general_words(cfg.phrase) if w not in close_folders and phrase_slug(w) != slug)
    speakers = cfg.positive_speakers or len(all_speakers(cfg.seed, cfg.engines))
    common = dict(seed=cfg.seed, workers=workers, progress=progress, engines=cfg.engines, babble_words=general)
    make_corpus(out, [slug], speakers=speakers, takes=cfg.takes, texts={slug: cfg.phrase}, **common)
    make_corpus(out, sorted(close_folders), speakers=cfg.adversarial_speakers, texts=close_folders, **common)
    card = make_corpus(out, general, speakers=cfg.general_speakers, **common)
    plan = {"phrase": cfg.phrase, "label": slug, "adversarial": {f: [t, close[t]] for f, t in close_folders.items()},
            "general": list(general), "speakers": speakers,
            "user_positives": _copy_user(positives, Path(out) / slug, "userpos"),
            "user_negatives": _copy_user(negatives, Path(out) / USER_NEGATIVES, "userneg"),
            "card": card}
    atomic_write_json(os.path.join(out, PLAN), plan)
    return plan
