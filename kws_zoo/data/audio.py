"""Reading and validating audio: the only module that opens audio files.

Everything downstream works on float32 mono at SAMPLE_RATE. Every failure raises AudioError whose
message starts with the file name, so a CLI can print one line and a dataset build can list them.
"""
from __future__ import annotations

import io
import os

import numpy as np
import soundfile as sf

from kws_zoo.core.errors import AudioError
from kws_zoo.core.files import atomic_write_wav

SAMPLE_RATE = 16000
_WAV_FORMATS = ("WAV", "WAVEX", "RF64")


def read_wav(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Returns the file as float32 mono in [-1, 1] at `sample_rate` (resampled with soxr if needed)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(path, "file not found")
    if os.path.isdir(path):
        raise AudioError(path, "is a directory, not a WAV file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(12)
    return _decode(path, head, path, sample_rate)


def read_wav_bytes(data: bytes, name: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """read_wav of a WAV file's bytes held in memory (a TFRecord's `wav` feature); errors name it `name`."""
    if not data:
        raise AudioError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), data[:12], name, sample_rate)


def _decode(source, head: bytes, name: str, sample_rate: int) -> np.ndarray:
    if head[:4] not in (b"RIFF", b"RF64", b"RIFX") or head[8:12] != b"WAVE":
        raise AudioError(name, "not a WAV file (no RIFF/WAVE header)")
    try:
        info = sf.info(source)
        if info.format not in _WAV_FORMATS:
            raise AudioError(name, f"not a WAV file (format {info.format})")
        if hasattr(source, "seek"):  # sf.info read the header from the stream
            source.seek(0)
        audio, rate = sf.read(source, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as err:  # libsndfile's messages are good; keep them after the file name
        raise AudioError(name, f"corrupt or truncated WAV ({str(err).strip().splitlines()[-1]})") from None
    if audio.shape[0] == 0:
        raise AudioError(name, "contains zero samples")
    if not np.all(np.isfinite(audio)):
        raise AudioError(name, "contains NaN or infinite samples")
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if rate != sample_rate:
        audio = resample(audio, rate, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    import librosa  # heavy (numba, seconds to import) and needed only for other sample rates

    return librosa.resample(audio, orig_sr=orig_rate, target_sr=target_rate, res_type="soxr_hq").astype(np.float32)


def write_wav(path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Writes 16-bit PCM atomically (a killed writer never leaves a half file behind), clipped to [-1, 1]."""
    atomic_write_wav(path, np.clip(audio, -1.0, 1.0), sample_rate)


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The bytes write_wav puts in a file, made in memory (the Beam corpus stores them in TFRecords; a test checks
    they equal write_wav's file byte for byte)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Pads with zeros (centred) or trims the centre to exactly `length` samples."""
    n = len(audio)
    if n >= length:
        start = (n - length) // 2
        return audio[start:start + length]
    left = (length - n) // 2
    return np.pad(audio, (left, length - n - left))
