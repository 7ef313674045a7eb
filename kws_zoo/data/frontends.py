"""Feature front ends: waveform -> features, as TensorFlow ops so they run inside tf.data or a graph.

`log_mel` and `mfcc` use tf.signal for the STFT and librosa's HTK mel filterbank as a constant, so the
features equal librosa's to float precision (tests/test_frontends.py states the tolerance). `micro` is the
TFLite Micro frontend (pymicro-features, the same C code that runs on the device) for device parity;
`raw` passes the waveform through for models with their own learned front end (SincConv).
`speech_embedding` (kws_zoo.data.speech_embedding) runs two ONNX graphs outside TensorFlow: the teacher's
features, computed once per clip (features_for), never inside a training graph.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pymicro_features

from kws_zoo.core.compat import tf
from kws_zoo.core.errors import ConfigError, StreamingError
from kws_zoo.data import speech_embedding
from kws_zoo.data.audio import SAMPLE_RATE

KINDS = ("log_mel", "mfcc", "micro", "raw", "speech_embedding")
# The TFLM micro frontend is compiled with fixed settings; its config is recorded, not chosen.
MICRO_SETTINGS = dict(window_ms=30.0, hop_ms=10.0, num_mels=40, fmin=125.0, fmax=7500.0)


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    kind: str = "log_mel"
    sample_rate: int = SAMPLE_RATE
    window_ms: float = 30.0
    hop_ms: float = 10.0
    num_mels: int = 40
    fmin: float = 20.0
    fmax: float = 7600.0
    num_mfcc: int = 10
    # log(mel_power + floor): a floor well above numerical zero makes the features ignore very quiet
    # detail that differs between TTS and microphones (measured: it helps synthetic-to-real transfer).
    log_floor: float = 1e-4
    # Micro frontend only: seconds of the clip itself (cycled) run through the frontend before the clip, so its
    # noise reduction and gain control have settled as they have in a stream. A fresh frontend starts with no noise
    # estimate and full gain: measured on TTS clips in noise, its features differ from a settled one's by 4.3 on
    # average (features average 3.3), by 0.5 after a 1 s warm-up. 0: a fresh frontend per clip.
    warmup_s: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"frontend kind {self.kind!r} is not one of {KINDS}")
        if min(self.sample_rate, self.window_ms, self.hop_ms, self.num_mels, self.num_mfcc, self.log_floor) <= 0:
            raise ConfigError("sample_rate, window_ms, hop_ms, num_mels, num_mfcc and log_floor must be > 0, got "
                             f"{self.sample_rate}, {self.window_ms}, {self.hop_ms}, {self.num_mels}, "
                             f"{self.num_mfcc}, {self.log_floor}")
        if self.warmup_s < 0 or (self.warmup_s and self.kind != "micro"):
            raise ConfigError(f"warmup_s is for the micro frontend and must be >= 0, got {self.warmup_s} "
                              f"for {self.kind!r}")
        if self.kind == "micro":
            for key, value in MICRO_SETTINGS.items():
                if getattr(self, key) != value:
                    raise ConfigError(f"the micro frontend is fixed at {key}={value}; got {getattr(self, key)}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ConfigError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin} fmax={self.fmax}")
        if self.kind == "mfcc" and not 0 < self.num_mfcc <= self.num_mels:
            raise ConfigError(f"num_mfcc must be in 1..num_mels, got {self.num_mfcc}")

    @classmethod
    def micro(cls) -> "FrontendConfig":
        return cls(kind="micro", **MICRO_SETTINGS)

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def fft_length(self) -> int:
        return 1 << (self.window_samples - 1).bit_length()

    @property
    def band_limit_hz(self) -> float | None:
        """The highest frequency the features use (the top mel filter's upper edge), or None when every frequency
        counts (raw, micro: computed outside this module, speech_embedding)."""
        return self.fmax if self.kind in ("log_mel", "mfcc") else None

    def output_shape(self, clip_samples: int) -> tuple[int, ...]:
        """Shape of one clip's features: (frames, bins), or (samples,) for raw."""
        if self.kind == "raw":
            return (clip_samples,)
        if self.kind == "speech_embedding":
            return (speech_embedding.num_vectors(clip_samples), speech_embedding.DIM)
        frames = 1 + (clip_samples - self.window_samples) // self.hop_samples
        bins = self.num_mfcc if self.kind == "mfcc" else self.num_mels
        return (frames, bins)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@functools.lru_cache(maxsize=8)
def mel_matrix(cfg: FrontendConfig) -> np.ndarray:
    """[fft_bins, num_mels] HTK-scale triangles without area normalisation (librosa's, transposed)."""
    import librosa  # heavy (numba, seconds to import) and needed only by the log_mel and mfcc frontends

    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.fft_length, n_mels=cfg.num_mels, fmin=cfg.fmin,
                               fmax=cfg.fmax, htk=True, norm=None).T.astype(np.float32)


def mel_power(waveforms: tf.Tensor, cfg: FrontendConfig) -> tf.Tensor:
    """[B, samples] -> mel power spectrogram [B, frames, mels] (no centring: frame t starts at t*hop).

    tf.signal.stft's result, computed with fewer passes over the frames (the frontend is a fifth of the training
    input's time): frames are cut fft_length long and multiplied by the Hann window followed by zeros, which is
    windowing and zero-padding them at once; the power is re^2 + im^2 of the spectrum seen as floats, multiplied by
    the filterbank with each row twice (|z|^2 took a square root and a square)."""
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    samples = waveforms.shape[-1]
    frames = 1 + (samples - cfg.window_samples) // cfg.hop_samples
    short = (frames - 1) * cfg.hop_samples + cfg.fft_length - samples
    if short > 0:
        waveforms = tf.pad(waveforms, [[0, 0]] * (waveforms.shape.rank - 1) + [[0, short]])
    framed = tf.signal.frame(waveforms, cfg.fft_length, cfg.hop_samples)  # `frames` of them
    window = tf.pad(tf.signal.hann_window(cfg.window_samples), [[0, cfg.fft_length - cfg.window_samples]])
    spectrum = tf.bitcast(tf.signal.rfft(framed * window), tf.float32)  # [..., bins, 2]: re, im
    # Bins above the top filter have no weight (half of them when fmax is 4 kHz): leave them out of the power.
    weights = mel_matrix(cfg)
    used = int(np.flatnonzero(weights.any(axis=1)).max()) + 1
    power_parts = tf.math.square(spectrum[..., :used, :])
    power_parts = tf.reshape(power_parts, tf.concat([tf.shape(power_parts)[:-2], [2 * used]], 0))
    return tf.tensordot(power_parts, tf.constant(np.repeat(weights[:used], 2, axis=0)), axes=1)


def log_mel(waveforms: tf.Tensor, cfg: FrontendConfig) -> tf.Tensor:
    return tf.math.log(mel_power(waveforms, cfg) + cfg.log_floor)


def mfcc(waveforms: tf.Tensor, cfg: FrontendConfig) -> tf.Tensor:
    # The orthonormal DCT-II's first num_mfcc coefficients as one small matmul (tf.signal.dct computes all of them
    # through an FFT: a third of the frontend's time).
    return tf.tensordot(log_mel(waveforms, cfg), tf.constant(dct_matrix(cfg)), axes=1)


@functools.lru_cache(maxsize=8)
def dct_matrix(cfg: FrontendConfig) -> np.ndarray:
    """[num_mels, num_mfcc]: log-mel frames times this are their orthonormal DCT-II's first num_mfcc coefficients."""
    import scipy.fft  # with librosa, needed only by the mfcc frontend

    return scipy.fft.dct(np.eye(cfg.num_mels), type=2, norm="ortho")[:, :cfg.num_mfcc].astype(np.float32)


def make_frontend(cfg: FrontendConfig):
    """Returns f(waveforms[B, samples] float32) -> features[B, frames, bins] float32 (tf ops)."""
    if cfg.kind == "log_mel":
        return functools.partial(log_mel, cfg=cfg)
    if cfg.kind == "mfcc":
        return functools.partial(mfcc, cfg=cfg)
    if cfg.kind == "raw":
        return tf.identity
    if cfg.kind == "speech_embedding":
        raise ConfigError("the speech_embedding frontend runs outside TensorFlow: train on it with `kws-zoo teacher`")
    return functools.partial(_micro_batch, warmup_s=cfg.warmup_s)


def micro_features(audio: np.ndarray, warmup_s: float = 0.0) -> np.ndarray:
    """TFLM micro frontend over one float waveform in [-1, 1] -> [frames, 40] float32.

    The frontend is stateful (noise reduction, PCAN gain control adapt over time), so a clip is
    processed from a fresh state, 10 ms at a time, exactly as a device would from power-on; with warmup_s, after
    that much of the clip (cycled) has been through it, as in a stream (FrontendConfig.warmup_s).
    """
    if warmup_s <= 0:
        return MicroFrontendStream().process(audio)
    audio = np.asarray(audio, np.float32)
    hop = int(MICRO_SETTINGS["hop_ms"] * SAMPLE_RATE / 1000)
    pre = np.resize(audio, int(warmup_s * SAMPLE_RATE) // hop * hop)  # whole hops: frames stay on the clip's grid
    return MicroFrontendStream().process(np.concatenate([pre, audio]))[len(pre) // hop:]


class MicroFrontendStream:
    """The TFLM micro frontend as a device runs it: audio in chunks of any size, a 40-bin frame out every
    10 ms hop, state (noise estimate, PCAN gain) carried across chunks. Over one clip from a fresh state it
    gives exactly micro_features(clip): train on kind 'micro' (FrontendConfig.micro()) and deploy this."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._frontend = pymicro_features.MicroFrontend()
        self._pending = b""

    def process(self, audio: np.ndarray) -> np.ndarray:
        """float audio in [-1, 1] -> the frames it completes, [n, 40] float32 (n may be 0)."""
        self._pending += (np.clip(np.asarray(audio, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
        frames, pos, step = [], 0, 2 * 160  # the C frontend takes at most 160 samples per call
        while pos + step <= len(self._pending):
            out = self._frontend.process_samples(self._pending[pos:pos + step])
            pos += 2 * out.samples_read
            if out.features:
                frames.append(out.features)
        self._pending = self._pending[pos:]
        return np.asarray(frames, dtype=np.float32).reshape(-1, MICRO_SETTINGS["num_mels"])


def _micro_batch(waveforms: tf.Tensor, warmup_s: float = 0.0) -> tf.Tensor:
    def run(batch):
        return np.stack([micro_features(w, warmup_s) for w in batch])

    out = tf.numpy_function(run, [waveforms], tf.float32, stateful=False)
    frames = FrontendConfig.micro().output_shape(waveforms.shape[-1])[0] if waveforms.shape[-1] else None
    return tf.ensure_shape(out, [None, frames, MICRO_SETTINGS["num_mels"]])


def stream_features(audio: np.ndarray, frontend) -> np.ndarray:
    """Features [frames, bins] of a whole stream, as a device would compute them frame by frame: the micro
    frontend through its streaming form; tf.signal frontends have no state, so one call is the same."""
    if frontend.kind == "micro":
        return MicroFrontendStream().process(audio)
    if frontend.kind == "raw":
        raise StreamingError("raw-waveform models have no feature frames to stream")
    return np.asarray(make_frontend(frontend)(np.asarray(audio, np.float32)[None]))[0]
