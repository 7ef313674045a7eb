"""Waveform and feature augmentation as TensorFlow ops, one example at a time.

Every op takes an explicit `seed` (an int [2] tensor) and uses only stateless random ops, so the same
(seed, epoch, example index) gives bit-identical output in any process: a killed training run resumes
exactly. Each op draws its sub-seeds with `stateless_fold_in(seed, k)` for a fixed k, so adding or
disabling one op never changes the random numbers another op sees.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from kws_zoo.core.compat import tf
from kws_zoo.core.config import from_dict, to_dict
from kws_zoo.core.errors import ConfigError
from kws_zoo.data.audio import SAMPLE_RATE

fold_in = tf.random.experimental.stateless_fold_in


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Defaults suit 1 s clips. A probability of 0 (or a count of 0) disables an op."""
    time_shift_ms: float = 100.0  # uniform shift in [-x, +x], zero filled
    background_prob: float = 0.8
    background_snr_db: tuple[float, float] = (0.0, 20.0)  # SNR against the clip's own power
    gain_db: tuple[float, float] = (-12.0, 6.0)  # always applied; (0, 0) disables
    speed_prob: float = 0.5  # resampling by a factor changes tempo and pitch (vocal-tract-like)
    speed_range: tuple[float, float] = (0.85, 1.15)
    reverb_prob: float = 0.3
    reverb_rt60_s: tuple[float, float] = (0.1, 0.5)  # the impulse response is rt60_max long
    reverb_drr_db: tuple[float, float] = (0.0, 10.0)  # direct-to-reverberant energy ratio
    # Real test audio is often narrowband (FSDD is 8 kHz: nothing above 4 kHz) while TTS is full band.
    lowpass_prob: float = 0.3
    lowpass_hz: tuple[float, float] = (3400.0, 8000.0)
    time_masks: int = 2  # SpecAugment: masks per example, each 0..max wide, filled with the mean
    time_mask_frames: int = 10
    freq_masks: int = 2
    freq_mask_bins: int = 5
    silence_dbfs: tuple[float, float] = (-60.0, -20.0)  # RMS level of the noise in silence examples
    # mixup (Zhang et al. 2018) of features and labels within a batch, weight ~ Beta(alpha, alpha); 0 disables.
    mixup_alpha: float = 0.0

    def __post_init__(self):
        for name in ("background_prob", "speed_prob", "reverb_prob", "lowpass_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (tuple, list)):
                value = tuple(float(v) for v in value)
                object.__setattr__(self, f.name, value)
                if len(value) != 2 or value[0] > value[1]:
                    raise ConfigError(f"{f.name} must be a (low, high) pair with low <= high, got {value}")
        if self.speed_range[0] <= 0 or self.reverb_rt60_s[0] <= 0 or self.lowpass_hz[0] <= 0:
            raise ConfigError("speed_range, reverb_rt60_s and lowpass_hz must be positive")
        if self.mixup_alpha < 0:
            raise ConfigError(f"mixup_alpha must be >= 0, got {self.mixup_alpha}")
        if min(self.time_shift_ms, self.time_masks, self.time_mask_frames, self.freq_masks, self.freq_mask_bins) < 0:
            raise ConfigError("shift, mask counts and mask widths must be >= 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AugmentConfig":
        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def _uniform(seed, low: float, high: float) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed, minval=low, maxval=high)


def _randint(seed, low, high) -> tf.Tensor:
    """Uniform int32 in [low, high] inclusive."""
    return tf.random.stateless_uniform([], seed, minval=low, maxval=high + 1, dtype=tf.int32)


def _maybe(seed, prob: float, op, x: tf.Tensor) -> tf.Tensor:
    """op() with probability `prob`, else x; a cond (not a where) so skipped ops cost nothing."""
    if prob <= 0:
        return x
    if prob >= 1:
        return op()
    return tf.cond(tf.random.stateless_uniform([], seed) < prob, op, lambda: x)


def _rms(x: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_mean(tf.square(x)))


def time_shift(x: tf.Tensor, seed, max_samples: int) -> tf.Tensor:
    """out[t] = x[t - s] for a random s in [-max, max]; samples shifted in are zeros."""
    if max_samples <= 0:
        return x
    s = _randint(seed, -max_samples, max_samples)
    padded = tf.pad(x, [[max_samples, max_samples]])
    return tf.slice(padded, [max_samples - s], tf.shape(x))


def random_gain(x: tf.Tensor, seed, gain_db: tuple[float, float]) -> tf.Tensor:
    return x * tf.pow(10.0, _uniform(seed, *gain_db) / 20.0)


def background_crop(seed, background: tf.Tensor, length: int) -> tf.Tensor:
    """A random `length`-sample crop of a random row of background[rows, cols] (cols >= length)."""
    # Static shape: tf.shape() of a tf.Variable reads (copies) the whole variable, once per example.
    rows, cols = background.shape
    row = _randint(fold_in(seed, 0), 0, rows - 1)
    start = _randint(fold_in(seed, 1), 0, cols - length)
    return tf.slice(tf.gather(background, row), [start], [length])


def mix_background(x: tf.Tensor, seed, background: tf.Tensor, prob: float,
                   snr_db: tuple[float, float]) -> tf.Tensor:
    """Adds a background crop scaled to a random SNR relative to the clip (so quiet clips get quiet noise)."""
    def mix():
        noise = background_crop(fold_in(seed, 0), background, x.shape[0])
        snr = _uniform(fold_in(seed, 1), *snr_db)
        return x + noise * _rms(x) / (_rms(noise) * tf.pow(10.0, snr / 20.0) + 1e-9)

    return _maybe(fold_in(seed, 2), prob, mix, x)


def fill_silence(x: tf.Tensor, seed, background: tf.Tensor, dbfs: tuple[float, float]) -> tf.Tensor:
    """An all-zero clip (a silence example) becomes a background crop at a random RMS level in dBFS."""
    def noise():
        crop = background_crop(fold_in(seed, 0), background, x.shape[0])
        return crop * tf.pow(10.0, _uniform(fold_in(seed, 1), *dbfs) / 20.0) / (_rms(crop) + 1e-9)

    return tf.cond(tf.reduce_max(tf.abs(x)) > 0, lambda: x, noise)


def speed_perturb(x: tf.Tensor, seed, prob: float, factor_range: tuple[float, float]) -> tf.Tensor:
    """Resamples by a random factor about the clip centre (factor > 1 is faster and higher), linear
    interpolation, zeros outside the source; the length is unchanged."""
    def resample():
        n = x.shape[0]
        centre = (n - 1) / 2.0
        pos = centre + (tf.range(n, dtype=tf.float32) - centre) * _uniform(fold_in(seed, 0), *factor_range)
        lo = tf.floor(pos)
        frac = pos - lo
        lo = tf.cast(lo, tf.int32)
        out = tf.gather(x, tf.clip_by_value(lo, 0, n - 1)) * (1.0 - frac) \
            + tf.gather(x, tf.clip_by_value(lo + 1, 0, n - 1)) * frac
        return tf.where((pos >= 0) & (pos <= n - 1), out, 0.0)

    return _maybe(fold_in(seed, 1), prob, resample, x)


def _fft_size(n: int) -> int:
    """Smallest m * 2^k >= n for m in 1, 3, 5: FFTs of such sizes are several times faster than the
    next power of two when that is far above n (measured: 24576 vs 32768 points)."""
    return min(m << max(0, (-(-n // m) - 1).bit_length()) for m in (1, 3, 5))


def reverb(x: tf.Tensor, seed, prob: float, rt60_s: tuple[float, float], drr_db: tuple[float, float],
           sample_rate: int = SAMPLE_RATE) -> tf.Tensor:
    """Convolves with a synthetic room response: a unit direct path plus exponentially decaying Gaussian
    noise (60 dB down after rt60), scaled to a random direct-to-reverberant ratio; keeps the clip's RMS."""
    def convolve():
        n, ir_len = x.shape[0], max(2, int(rt60_s[1] * sample_rate))
        t = tf.range(ir_len, dtype=tf.float32) / sample_rate
        rt60 = _uniform(fold_in(seed, 0), *rt60_s)
        tail = tf.random.stateless_normal([ir_len], fold_in(seed, 1)) * tf.exp(-6.9078 * t / rt60)
        tail = tail * tf.cast(tf.range(ir_len) > 0, tf.float32)
        drr = _uniform(fold_in(seed, 2), *drr_db)
        tail = tail / tf.sqrt(tf.reduce_sum(tf.square(tail)) * tf.pow(10.0, drr / 10.0))
        ir = tail + tf.one_hot(0, ir_len)
        fft_len = _fft_size(n + ir_len - 1)  # linear, not circular, convolution
        out = tf.signal.irfft(tf.signal.rfft(x, [fft_len]) * tf.signal.rfft(ir, [fft_len]), [fft_len])[:n]
        return out * _rms(x) / (_rms(out) + 1e-9)

    return _maybe(fold_in(seed, 3), prob, convolve, x)


def lowpass(x: tf.Tensor, seed, prob: float, cutoff_hz: tuple[float, float], sample_rate: int = SAMPLE_RATE,
            transition_hz: float = 250.0) -> tf.Tensor:
    """Zeroes the spectrum above a random cutoff with a raised-cosine edge (a sharp edge would ring);
    the edge's equivalent filter is ~2/transition_hz long, and zero padding by twice that keeps it from
    wrapping around the clip."""
    def filt():
        n = x.shape[0]
        fft_len = _fft_size(n + int(4 * sample_rate / transition_hz))
        cutoff = _uniform(fold_in(seed, 0), *cutoff_hz)
        freqs = tf.linspace(0.0, sample_rate / 2.0, fft_len // 2 + 1)
        ramp = tf.clip_by_value((cutoff + transition_hz / 2 - freqs) / transition_hz, 0.0, 1.0)
        gain = tf.cast(0.5 - 0.5 * tf.cos(math.pi * ramp), tf.complex64)
        return tf.signal.irfft(tf.signal.rfft(x, [fft_len]) * gain, [fft_len])[:n]

    return _maybe(fold_in(seed, 1), prob, filt, x)


def spec_mask(frames: int, bins: int, seed, time_masks: int, time_width: int, freq_masks: int,
              freq_width: int) -> tf.Tensor:
    """bool [frames, bins], True where SpecAugment masks: bands of random width 0..max at random places."""
    def bands(dim: int, count: int, width: int, band_seed) -> tf.Tensor:
        if count == 0 or width == 0:
            return tf.zeros([dim], tf.bool)
        width = min(width, dim)
        w = tf.random.stateless_uniform([count], fold_in(band_seed, 0), 0, width + 1, dtype=tf.int32)
        u = tf.random.stateless_uniform([count], fold_in(band_seed, 1))
        start = tf.cast(tf.floor(u * tf.cast(dim - w + 1, tf.float32)), tf.int32)
        idx = tf.range(dim)[:, None]
        return tf.reduce_any((idx >= start) & (idx < start + w), axis=1)

    in_time = bands(frames, time_masks, time_width, fold_in(seed, 0))
    in_freq = bands(bins, freq_masks, freq_width, fold_in(seed, 1))
    return in_time[:, None] | in_freq[None, :]


def spec_augment(features: tf.Tensor, seed, cfg: AugmentConfig) -> tf.Tensor:
    """Masks features[frames, bins] with the example's mean (a zero would be a loud value in log-mel)."""
    frames, bins = features.shape
    mask = spec_mask(frames, bins, seed, cfg.time_masks, cfg.time_mask_frames, cfg.freq_masks, cfg.freq_mask_bins)
    return tf.where(mask, tf.reduce_mean(features), features)


def augment_waveform(x: tf.Tensor, seed, cfg: AugmentConfig, background: tf.Tensor | None = None,
                     sample_rate: int = SAMPLE_RATE) -> tf.Tensor:
    """All waveform ops on one clip [samples]. The low-pass comes after the noise because narrowband
    recordings have no noise above the cutoff either; the gain comes last."""
    x = speed_perturb(x, fold_in(seed, 1), cfg.speed_prob, cfg.speed_range)
    x = time_shift(x, fold_in(seed, 2), int(round(cfg.time_shift_ms * sample_rate / 1000)))
    x = reverb(x, fold_in(seed, 3), cfg.reverb_prob, cfg.reverb_rt60_s, cfg.reverb_drr_db, sample_rate)
    if background is not None:
        x = mix_background(x, fold_in(seed, 4), background, cfg.background_prob, cfg.background_snr_db)
    x = lowpass(x, fold_in(seed, 5), cfg.lowpass_prob, cfg.lowpass_hz, sample_rate)
    return random_gain(x, fold_in(seed, 6), cfg.gain_db)


def mixup(features: tf.Tensor, labels: tf.Tensor, seed, alpha: float, num_classes: int):
    """(features, soft labels [B, num_classes]) of one batch: each example mixed with the example at the mirrored
    position of the batch, its weight lam ~ Beta(alpha, alpha) (stateless, from two Gamma draws), lam >= 0.5 so the
    example keeps the larger share."""
    batch = tf.shape(features)[0]
    a = tf.random.stateless_gamma([batch], fold_in(seed, 0), alpha)
    b = tf.random.stateless_gamma([batch], fold_in(seed, 1), alpha)
    lam = a / tf.maximum(a + b, 1e-12)
    lam = tf.maximum(lam, 1.0 - lam)
    onehot = tf.one_hot(labels, num_classes)
    partner = tf.reverse(tf.range(batch), [0])
    shape = tf.concat([[batch], tf.ones([tf.rank(features) - 1], tf.int32)], 0)
    mixed = tf.reshape(lam, shape) * features + tf.reshape(1.0 - lam, shape) * tf.gather(features, partner)
    soft = lam[:, None] * onehot + (1.0 - lam[:, None]) * tf.gather(onehot, partner)
    return mixed, soft
