"""Long streams for a wake word, scored through the device path.

A stream is CHUNK_MINUTES of background (the corpus's generated noises and the real background recordings) with
utterances of one split's voices placed at random gaps (kws_zoo.evaluate.long_audio.make_stream): mostly negatives
(close phrases and everyday words), and the phrase at one SNR band per chunk. The device path is the streaming
micro frontend (fresh at each chunk, as after power-on) -> the ESPHome-form int8 model on the TFLM interpreter
-> its uint8 probabilities -> kws_zoo.evaluate.wake's detector. The float comparison runs the float Keras
model on the window ending at every step of the same features.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kws_zoo.core.errors import DataError
from kws_zoo.data.audio import SAMPLE_RATE, read_wav
from kws_zoo.data.base import DataConfig
from kws_zoo.data.frontends import FrontendConfig, MicroFrontendStream
from kws_zoo.data.gsc import list_background, scan
from kws_zoo.device.streaming import TflmStreamingModel
from kws_zoo.evaluate.long_audio import make_stream
from kws_zoo.evaluate.wake import StreamScores, to_u8

CHUNK_MINUTES = 10.0
SNR_BANDS = ((15.0, 25.0), (7.5, 15.0), (2.5, 7.5))  # dB, phrase against background; chunks cycle through them
POSITIVE_SHARE = 0.12  # share of utterance slots that are the phrase
MAX_CLIPS = 4000  # utterances kept in memory per kind and split (drawn with the seed)


def split_clips(corpus: str, label: str, split: str, seed: int, max_clips: int = MAX_CLIPS):
    """(positive clips, negative clips) of one split's voices: the phrase's folder vs every other word folder."""
    _, by_split = scan(Path(corpus), DataConfig(kind="gsc", path=corpus))
    files = by_split.get(split, {})
    pos = [p for p, _ in files.get(label, [])]
    neg = [p for word, items in files.items() if word != label for p, _ in items]
    rng = np.random.default_rng(seed)
    pick = lambda paths: [read_wav(paths[i]) for i in sorted(rng.permutation(len(paths))[:max_clips])]  # noqa: E731
    return pick(pos), pick(neg)


def background(corpus: str, real_dirs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(the corpus's generated noises, every WAV under the real background folders that exist)."""
    return [read_wav(p) for p in list_background(Path(corpus))], [read_wav(p) for p in wavs_under(real_dirs)]


def chunks(positives, negatives, noises, hours: float, seed: int):
    """Yields (audio, events [(start_s, end_s)], snr band) chunks adding up to `hours`."""
    if not len(negatives):
        raise DataError("no negative clips for these streams: the corpus has no speaker of this split among its "
                        "negative words; raise adversarial_speakers or general_speakers")
    n = max(1, int(np.ceil(hours * 60 / CHUNK_MINUTES)))
    minutes = hours * 60 / n
    keywords = [(clip, "wake") for clip in positives]
    for i in range(n):
        band = SNR_BANDS[i % len(SNR_BANDS)]
        audio, events = make_stream(keywords, negatives, noises, minutes=minutes, seed=seed * 1000 + i, snr_db=band,
                                    distractor_share=1.0 if not keywords else 1 - POSITIVE_SHARE,
                                    gap_s=(0.3, 2.5))
        yield audio, [(e.start_s, e.end_s) for e in events], band


def tflm_scores(model: TflmStreamingModel, audio: np.ndarray, events) -> StreamScores:
    """The ESPHome-form model's uint8 probability at every step of `audio`, from a fresh frontend and state."""
    feats = MicroFrontendStream().process(audio)
    s = model.frames_per_step
    probs = model.run(feats[: len(feats) // s * s], raw=True).reshape(-1)
    return stream_scores(probs, s, audio, events)


def stream_scores(probs_u8: np.ndarray, frames_per_step: int, audio: np.ndarray, events) -> StreamScores:
    hop = FrontendConfig.micro().hop_ms / 1000.0
    window = FrontendConfig.micro().window_ms / 1000.0
    return StreamScores(np.asarray(probs_u8, np.uint8), frames_per_step * hop, (frames_per_step - 1) * hop + window,
                        list(events), len(audio) / SAMPLE_RATE)


def float_scores(model, window_frames: int, frames_per_step: int, audio: np.ndarray, events,
                 batch: int = 2048) -> StreamScores:
    """The float Keras wake-probability model (one sigmoid output) on the window ending at every step; the
    first windows see zero frames before the stream, as the streaming state starts at zero."""
    feats = MicroFrontendStream().process(audio)
    s = frames_per_step
    feats = np.concatenate([np.zeros((window_frames - 1, feats.shape[1]), np.float32), feats[: len(feats) // s * s]])
    windows = np.lib.stride_tricks.sliding_window_view(feats, (window_frames, feats.shape[1]))[:, 0]
    windows = windows[s - 1::s]
    probs = np.concatenate([np.asarray(model(np.ascontiguousarray(windows[i:i + batch]), training=False)).reshape(-1)
                            for i in range(0, len(windows), batch)])
    return stream_scores(to_u8(probs), s, audio, events)


def run_streams(runner, positives, negatives, noises, hours: float, seed: int, desc: str, progress: bool = True):
    """[StreamScores] of every chunk (runner: audio, events -> StreamScores) and the SNR band of each."""
    out, bands = [], []
    n = max(1, int(np.ceil(hours * 60 / CHUNK_MINUTES)))
    for audio, events, band in tqdm(chunks(positives, negatives, noises, hours, seed), total=n, desc=desc,
                                    unit="chunk", disable=not progress):
        out.append(runner(audio, events))
        bands.append(band)
    return out, bands


def concatenated(clips, noises, seed: int, gap_s=(1.0, 2.5), noise_rms: float = 0.003):
    """Real recordings one after another at their own level, gaps of quiet real background between them:
    (audio, events [(start_s, end_s)] of every clip)."""
    rng = np.random.default_rng(seed)
    pieces, events, pos = [], [], 0
    for i in rng.permutation(len(clips)):
        gap = np.zeros(int(rng.uniform(*gap_s) * SAMPLE_RATE), np.float32)
        pieces += [gap, clips[i]]
        pos += len(gap)
        events.append((pos / SAMPLE_RATE, (pos + len(clips[i])) / SAMPLE_RATE))
        pos += len(clips[i])
    audio = np.concatenate(pieces + [np.zeros(SAMPLE_RATE, np.float32)])
    if noises:
        bed = np.concatenate(noises)
        bed = np.resize(bed, len(audio)) * (noise_rms / (np.sqrt(np.mean(bed ** 2)) + 1e-9))
        audio = audio + bed.astype(np.float32)
    return np.clip(audio, -1, 1), events


def wavs_under(folders, exclude_words=()) -> list[str]:
    """Every WAV under the folders that exist, minus those in a folder named like an excluded word."""
    out = []
    for folder in folders:
        if os.path.isdir(folder):
            out += sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names
                          if f.lower().endswith(".wav") and os.path.basename(d) not in exclude_words)
    return out
