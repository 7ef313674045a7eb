"""Rooms and microphones for synthetic speech, offline: a copy of a corpus's training clips as heard from a
simulated talker in a simulated room through a random microphone and channel (issue 12, "better synthetic speech").

TTS voices are recorded in no room at all, with no microphone; real keyword recordings (Speech Commands: laptops
and phones in homes) carry both. The in-graph augmentation (kws_zoo.data.augment) has a hand-made exponential
reverb and a low-pass; here the rooms are pyroomacoustics image-source shoebox rooms (size, RT60 by Sabine's
formula, talker and microphone placed at random, the direct path at the clip's time so the word stays where it
was), and the channel is an audiomentations chain (high-pass and low-pass band limits, a seven-band
parametric EQ, clipping) as a cheap microphone or phone would colour it. Both libraries are MIT-licensed.

Every output clip is a pure function of (seed, source file name, copy index): a rerun writes only what is missing,
with any worker count, and a killed run resumes. Only the source's training split is copied (file names keep
their speaker, so the copy's clips belong to the training speakers wherever they are listed), so the copy can
join a recipe's training through `extra_train` without touching validation or test.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import random
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kws_zoo.core.errors import DataError
from kws_zoo.core.files import atomic_write_json
from kws_zoo.data.audio import SAMPLE_RATE, fit_length, read_wav, write_wav
from kws_zoo.data.base import DataConfig
from kws_zoo.data.synthetic.corpus import stable_seed

CARD = "card.json"
ROOMS_VERSION = 1  # bump when a clip's simulation changes, so old and new clips never mix


@dataclasses.dataclass(frozen=True)
class RoomConfig:
    """Ranges each clip draws from (uniform)."""
    dry_prob: float = 0.2                      # share of clips with no room (channel only)
    length_m: tuple[float, float] = (2.5, 9.0)
    width_m: tuple[float, float] = (2.5, 7.0)
    height_m: tuple[float, float] = (2.3, 3.5)
    rt60_s: tuple[float, float] = (0.15, 0.9)
    distance_m: tuple[float, float] = (0.3, 3.0)  # talker to microphone
    max_order: int = 17                        # image-source reflections; the late tail is the room's decay anyway
    highpass_prob: float = 0.5                 # small microphones lose the low end
    lowpass_prob: float = 0.5                  # phones, codecs and cheap ADCs lose the top
    eq_prob: float = 0.5                       # a microphone's and an enclosure's resonances
    clipping_prob: float = 0.1

    def __post_init__(self):
        for name in ("dry_prob", "highpass_prob", "lowpass_prob", "eq_prob", "clipping_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise DataError(f"rooms: {name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_order < 0 or min(self.distance_m) <= 0:
            raise DataError("rooms: max_order must be >= 0 and distances > 0")


def room_response(rng: np.random.Generator, cfg: RoomConfig) -> np.ndarray:
    """One room impulse response, its direct path at index 0 (so convolving keeps the word where it was)."""
    import pyroomacoustics as pra  # heavy; only this stage needs it

    dims = np.array([rng.uniform(*cfg.length_m), rng.uniform(*cfg.width_m), rng.uniform(*cfg.height_m)])
    rt60 = rng.uniform(*cfg.rt60_s)
    try:
        absorption, order = pra.inverse_sabine(rt60, dims)
    except ValueError:  # this room cannot be that dry: the walls absorb everything they can
        absorption, order = 1.0, 0
    room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption),
                       max_order=min(order, cfg.max_order))
    margin = 0.3
    mic = np.array([rng.uniform(margin, d - margin) for d in dims])
    mic[2] = rng.uniform(0.7, min(1.6, dims[2] - margin))  # a table, a hand, a shelf
    for _ in range(100):  # a talker at the drawn distance that fits in the room
        direction = rng.normal(size=3)
        direction[2] *= 0.3
        source = mic + rng.uniform(*cfg.distance_m) * direction / np.linalg.norm(direction)
        if np.all(source > margin) and np.all(source < dims - margin):
            break
    else:
        source = dims / 2
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    response = np.asarray(room.rir[0][0], np.float64)
    return response[int(np.argmax(np.abs(response))):]


def _channel(cfg: RoomConfig):
    import audiomentations as am

    return am.Compose([
        am.HighPassFilter(min_cutoff_freq=60.0, max_cutoff_freq=400.0, p=cfg.highpass_prob),
        am.LowPassFilter(min_cutoff_freq=3000.0, max_cutoff_freq=7500.0, p=cfg.lowpass_prob),
        am.SevenBandParametricEQ(min_gain_db=-8.0, max_gain_db=8.0, p=cfg.eq_prob),
        am.ClippingDistortion(min_percentile_threshold=5, max_percentile_threshold=30, p=cfg.clipping_prob),
    ])


def simulate(audio: np.ndarray, seed: int, cfg: RoomConfig = RoomConfig()) -> np.ndarray:
    """`audio` (16 kHz, float) through a room and a channel drawn from `seed`, at the input's peak level and
    length."""
    rng = np.random.default_rng(seed)
    out = np.asarray(audio, np.float64)
    if rng.uniform() >= cfg.dry_prob:
        out = np.convolve(out, room_response(rng, cfg))[:len(audio)]
    # audiomentations draws from Python's and NumPy's global generators: seeded per clip for determinism.
    random.seed(seed)
    np.random.seed(seed % 2**32)
    out = _channel(cfg)(samples=out.astype(np.float32), sample_rate=SAMPLE_RATE)
    peak, new_peak = np.max(np.abs(audio)), np.max(np.abs(out))
    return (out * (peak / new_peak) if new_peak > 0 else out).astype(np.float32)


def copy_name(source: Path, copy: int) -> str:
    """<speaker>_nohash_<take>.wav keeps its speaker; copies past the first get takes 1000 * copy + take."""
    speaker, _, take = source.stem.rpartition("_nohash_")
    if not speaker or not take.isdigit():
        raise DataError(f"{source}: not a <speaker>_nohash_<take>.wav file name")
    return f"{speaker}_nohash_{1000 * copy + int(take)}.wav"


def _task(args: tuple[str, str, int, int, RoomConfig]) -> int:
    source, target, seed, copy, cfg = args
    audio = read_wav(source)
    name = f"{Path(source).parent.name}/{Path(source).name}"  # word/file: file names repeat across words
    write_wav(target, fit_length(simulate(audio, stable_seed(seed, name, copy), cfg), len(audio)))
    return 1


def make_room_copy(corpus: str, out_dir: str, *, copies: int = 1, seed: int = 0, workers: int = 2,
                   cfg: RoomConfig = RoomConfig(), progress: bool = True) -> dict:
    """Writes (or completes) out_dir/<word>/<file>.wav: `copies` room-and-channel versions of every training-split
    clip of the GSC-layout `corpus`; returns the card written to out_dir/card.json."""
    from kws_zoo.data import load_dataset

    if copies < 1:
        raise DataError(f"copies must be >= 1, got {copies}")
    data = load_dataset(DataConfig(kind="gsc", path=corpus, protocol="all"))
    train = data.splits.get("train", [])
    if not train:
        raise DataError(f"{corpus}: no training-split clips to copy")
    out = Path(out_dir)
    if out.resolve() == Path(corpus).resolve():
        raise DataError(f"{out_dir}: the copy must not overwrite its source corpus")
    card = {"version": ROOMS_VERSION, "seed": seed, "settings": dataclasses.asdict(cfg)}
    _claim(out, card)
    card["source"] = str(corpus)  # for the reader; a moved checkout still resumes its copy
    jobs = []
    for example in train:
        source = Path(example.path)
        for k in range(copies):
            target = out / source.parent.name / copy_name(source, k)
            if not target.exists():
                jobs.append((str(source), str(target), seed, k, cfg))
    for word in {Path(j[1]).parent for j in jobs}:
        word.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(jobs), unit="file", desc="rooms", disable=not progress, smoothing=0.1) as bar:
        if workers <= 1 or len(jobs) < 2:
            for job in jobs:
                bar.update(_task(job))
        else:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for done in pool.imap_unordered(_task, jobs, chunksize=32):
                    bar.update(done)
    card = {**card, "copies": copies, "clips": len(train) * copies}
    atomic_write_json(out / CARD, card)
    return card


def _claim(out: Path, card: dict) -> None:
    """Refuses an out_dir holding clips made another way (version, seed or settings); drops the partial
    files a killed run left."""
    path = out / CARD
    if path.exists():
        old = json.loads(path.read_text())
        different = sorted(k for k in card if json.dumps(old.get(k)) != json.dumps(card[k]))
        if different:
            raise DataError(f"{out}: holds a room copy made with other {different}; use another --out")
    elif out.exists() and any(out.rglob("*.wav")):
        raise DataError(f"{out}: holds WAV files but no {CARD}: not a room copy; use another --out")
    for stale in out.rglob("*.wav.tmp*"):
        stale.unlink()
