"""Waveform and feature augmentation as TensorFlow ops on whole batches.

Every random choice an example sees is a column of a per-example table of uniform variates, drawn for a whole
epoch in one stateless op keyed by (seed, epoch) and gathered by example index (`draw_uniforms`); the reverb
picks one of a set of rooms drawn per epoch (`room_spectra`: their spectra are computed once per epoch, not once
per clip). So a clip's augmentation depends only on (seed, epoch, example index), in any process, on any worker
and in any batch (up to the float rounding of batched kernels; a killed run rebuilds the same batches and resumes
exactly), while the ops run on whole batches: per-op overhead is paid once per batch, not per clip (docs/scale.md).
Columns have fixed places (SpecAugment's, whose count depends on the config, come last), so enabling or
disabling one op never changes the random numbers another sees.
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


# The uniform variates [0, 1) each example draws, one table column each, in fixed places.
COLUMNS = ("silence_row", "silence_start", "silence_level", "speed_on", "speed", "shift", "reverb_on", "room",
           "noise_on", "noise_row", "noise_start", "snr", "lowpass_on", "cutoff", "gain")
_COLUMN = {name: k for k, name in enumerate(COLUMNS)}


def table_width(cfg: AugmentConfig) -> int:
    """COLUMNS, then a width and a start column per SpecAugment mask (time masks, then frequency masks)."""
    return len(COLUMNS) + 2 * (cfg.time_masks + cfg.freq_masks)


def ir_samples(rt60_s: tuple[float, float], sample_rate: int = SAMPLE_RATE) -> int:
    """Length of the room impulse responses: the longest rt60 (shorter ones have decayed below float precision)."""
    return max(2, int(rt60_s[1] * sample_rate))


def draw_uniforms(seed, examples: int, cfg: AugmentConfig) -> tf.Tensor:
    """The uniform variates [examples, table_width(cfg)] of `examples` examples (row i is example i's), from one
    stateless op: they depend on `seed` (int [2], e.g. (seed, epoch)) alone."""
    return tf.random.stateless_uniform([examples, table_width(cfg)], tf.cast(seed, tf.int64))


def reverb_fft_length(clip_samples: int, rt60_s: tuple[float, float], sample_rate: int = SAMPLE_RATE) -> int:
    """FFT length of the reverb: a linear, not circular, convolution of a clip with an impulse response."""
    return _fft_size(clip_samples + ir_samples(rt60_s, sample_rate) - 1)


def room_spectra(seed, rooms: int, cfg: AugmentConfig, clip_samples: int,
                 sample_rate: int = SAMPLE_RATE) -> tf.Tensor | None:
    """rfft [rooms, reverb_fft_length / 2 + 1] of `rooms` synthetic room impulse responses, from `seed` (int [2])
    alone: a unit direct path plus exponentially decaying Gaussian noise, 60 dB down after a random rt60, scaled to a
    random direct-to-reverberant ratio. None when reverb is off. A clip picks one room uniformly, so its impulse
    response has the distribution a room drawn for it alone would have; the spectra are computed once per set."""
    if cfg.reverb_prob <= 0:
        return None
    ir_len = ir_samples(cfg.reverb_rt60_s, sample_rate)
    seed = tf.cast(seed, tf.int64)
    noise = tf.random.stateless_normal([rooms, ir_len], fold_in(seed, 0))
    u = tf.random.stateless_uniform([rooms, 2], fold_in(seed, 1))
    t = tf.range(ir_len, dtype=tf.float32) / sample_rate
    rt60 = _between(u[:, 0], cfg.reverb_rt60_s)[:, None]
    tail = noise * tf.exp(-6.9078 * t / rt60) * tf.cast(tf.range(ir_len) > 0, tf.float32)
    drr = _between(u[:, 1], cfg.reverb_drr_db)[:, None]
    tail = tail / tf.sqrt(tf.reduce_sum(tf.square(tail), axis=1, keepdims=True) * _from_db(drr, 10.0))
    return _rfft(tail + tf.one_hot(0, ir_len), reverb_fft_length(clip_samples, cfg.reverb_rt60_s, sample_rate))


@dataclasses.dataclass(frozen=True)
class Background:
    """Background rows [rows, cols] (pipeline.background_rows) as a tensor or variable, with its static shape."""
    table: Any
    rows: int
    cols: int

    @classmethod
    def of(cls, rows) -> "Background":
        rows = tf.convert_to_tensor(rows, tf.float32)
        return cls(rows, *rows.shape)

    def crops(self, u_row: tf.Tensor, u_start: tf.Tensor, length: int) -> tf.Tensor:
        """[B, length] crops, each inside one row, chosen by two uniforms [B]."""
        rows = tf.gather(self.table, _index(u_row, self.rows))
        return windows(rows, _index(u_start, self.cols - length + 1), length)


def windows(x: tf.Tensor, start: tf.Tensor, length: int) -> tf.Tensor:
    """[B, length]: x[b, start_b : start_b + length] (zeros where that is outside x). One image-glimpse op: a
    gather of the same samples costs 3-4 times as much (measured on batches of 100 clips)."""
    offsets = tf.stack([tf.zeros_like(start), start], axis=1)
    glimpses = tf.raw_ops.ExtractGlimpseV2(input=x[:, None, :, None], size=[1, length],
                                           offsets=tf.cast(offsets, tf.float32), centered=False, normalized=False,
                                           uniform_noise=False, noise="zero")
    return glimpses[:, 0, :, 0]


def _column(u: tf.Tensor, name: str) -> tf.Tensor:
    return u[:, _COLUMN[name]]


def _between(u: tf.Tensor, low_high: tuple[float, float]) -> tf.Tensor:
    """Uniform in [low, high) from uniforms in [0, 1), as tf.random.stateless_uniform(minval, maxval) maps them."""
    low, high = low_high
    return low + u * (high - low)


def _index(u: tf.Tensor, count, dtype=tf.int32) -> tf.Tensor:
    """Uniform integers in [0, count) from uniforms in [0, 1); count may be a tensor."""
    count = tf.cast(count, dtype)
    return tf.minimum(tf.cast(tf.floor(u * tf.cast(count, tf.float32)), dtype), count - 1)


def _from_db(value_db: tf.Tensor, per_decade: float = 20.0) -> tf.Tensor:
    return tf.pow(10.0, value_db / per_decade)


def _rms(x: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True))


def _sometimes(x: tf.Tensor, u: tf.Tensor, prob: float, column: str, op) -> tf.Tensor:
    """op(rows, their uniforms) in place of the rows of x whose `column` draw is below `prob`; op runs on those rows
    only, so a skipped op costs nothing."""
    if prob <= 0:
        return x
    if prob >= 1:
        return op(x, u)
    return _on_rows(x, u, _column(u, column) < prob, op)


def _on_rows(x: tf.Tensor, u: tf.Tensor, chosen: tf.Tensor, op) -> tf.Tensor:
    # Partition and stitch copy each row once; a gather and scatter of the chosen rows copied the whole batch as well
    # (twice the time, measured on batches of 100 clips).
    part = tf.cast(chosen, tf.int32)
    rows = tf.dynamic_partition(tf.range(tf.shape(x)[0]), part, 2)
    kept, changed = tf.dynamic_partition(x, part, 2)
    return tf.dynamic_stitch(rows, [kept, op(changed, tf.dynamic_partition(u, part, 2)[1])])


def random_gain(x: tf.Tensor, u: tf.Tensor, gain_db: tuple[float, float]) -> tf.Tensor:
    return x * _from_db(_between(_column(u, "gain"), gain_db))[:, None]


def mix_background(x: tf.Tensor, u: tf.Tensor, background: Background, prob: float,
                   snr_db: tuple[float, float]) -> tf.Tensor:
    """Adds, with probability `prob`, a background crop scaled to a random SNR relative to the clip (so quiet clips
    get quiet noise). Most clips get noise, so every row gets a crop and the others a weight of zero (x + 0 is x):
    cheaper than cutting the chosen rows out and back."""
    if prob <= 0:
        return x
    noise = background.crops(_column(u, "noise_row"), _column(u, "noise_start"), x.shape[1])
    snr = _between(_column(u, "snr"), snr_db)[:, None]
    weight = _rms(x) / (_rms(noise) * _from_db(snr) + 1e-9)
    return x + noise * tf.where(_column(u, "noise_on")[:, None] < prob, weight, 0.0)


def fill_silence(x: tf.Tensor, u: tf.Tensor, background: Background, dbfs: tuple[float, float],
                 silent: tf.Tensor | None = None) -> tf.Tensor:
    """Silent clips become background crops at a random RMS level in dBFS. silent: bool [B], which clips are
    silence examples; by default the all-zero ones."""
    def noise(x, u):
        crop = background.crops(_column(u, "silence_row"), _column(u, "silence_start"), x.shape[1])
        return crop * _from_db(_between(_column(u, "silence_level"), dbfs))[:, None] / (_rms(crop) + 1e-9)

    return _on_rows(x, u, tf.reduce_max(tf.abs(x), axis=1) == 0 if silent is None else silent, noise)


def speed_perturb(x: tf.Tensor, u: tf.Tensor, prob: float, factor_range: tuple[float, float]) -> tf.Tensor:
    """Resamples by a random factor about the clip centre (factor > 1 is faster and higher), linear
    interpolation, zeros outside the source; the length is unchanged."""
    def resample(x, u):
        # crop_and_resize samples row b at x1 (n - 1) + t (x2 - x1), t = 0..n-1 (bilinear; zero outside): with
        # x2 - x1 = factor that is centre + (t - centre) factor. Its float rounding moves a sample by ~1e-3 of a
        # sample at most; a gather doing the same is 1.6 times as slow.
        n = x.shape[1]
        factor = _between(_column(u, "speed"), factor_range)
        centre = (n - 1) / 2.0
        x1 = centre * (1.0 - factor) / (n - 1)
        zero = tf.zeros_like(x1)
        boxes = tf.stack([zero, x1, zero, x1 + factor], axis=1)
        out = tf.image.crop_and_resize(x[:, None, :, None], boxes, tf.range(tf.shape(x)[0]), [1, n],
                                       extrapolation_value=0.0)
        return out[:, 0, :, 0]

    return _sometimes(x, u, prob, "speed_on", resample)


def time_shift(x: tf.Tensor, u: tf.Tensor, max_samples: int) -> tf.Tensor:
    """out[b, t] = x[b, t - s] for a random s in [-max, max]; samples shifted in are zeros."""
    if max_samples <= 0:
        return x
    shift = _index(_column(u, "shift"), 2 * max_samples + 1) - max_samples
    return windows(x, -shift, x.shape[1])


def _fft_size(n: int) -> int:
    """Smallest m * 2^k >= n for m in 1, 3, 5: FFTs of such sizes are several times faster than the
    next power of two when that is far above n (measured: 24576 vs 32768 points)."""
    return min(m << max(0, (-(-n // m) - 1).bit_length()) for m in (1, 3, 5))


def _rfft(x: tf.Tensor, length: int) -> tf.Tensor:
    """rfft of rows zero-padded to `length` (padded here: tf.signal.rfft's own padding fails on an empty batch)."""
    return tf.signal.rfft(tf.pad(x, [[0, 0], [0, length - x.shape[1]]]))


def reverb(x: tf.Tensor, u: tf.Tensor, rooms: tf.Tensor | None, prob: float) -> tf.Tensor:
    """Convolves, with probability `prob`, with one of `rooms` (room_spectra) chosen uniformly; keeps each clip's
    RMS."""
    def convolve(x, u):
        fft_len = 2 * (rooms.shape[1] - 1)
        room = tf.gather(rooms, _index(_column(u, "room"), tf.shape(rooms)[0]))
        out = tf.signal.irfft(_rfft(x, fft_len) * room, [fft_len])[:, :x.shape[1]]
        return out * _rms(x) / (_rms(out) + 1e-9)

    return _sometimes(x, u, prob if rooms is not None else 0.0, "reverb_on", convolve)


# A low-pass whose edge begins this far above the highest frequency the features use changes them by float
# rounding only (measured: log-mel and MFCC differ by < 2e-5 with white noise over the whole band; by 4e-4 when the
# edge begins at that frequency, through the STFT window's leakage).
LOWPASS_LEAKAGE_HZ = 250.0


def lowpass(x: tf.Tensor, u: tf.Tensor, prob: float, cutoff_hz: tuple[float, float],
            sample_rate: int = SAMPLE_RATE, transition_hz: float = 250.0,
            band_limit_hz: float | None = None) -> tf.Tensor:
    """Zeroes the spectrum above a random cutoff with a raised-cosine edge (a sharp edge would ring);
    the edge's equivalent filter is ~2/transition_hz long, and zero padding by twice that keeps it from
    wrapping around the clip. band_limit_hz: the highest frequency the features downstream use (a frontend's top
    filter edge); a clip whose edge begins above it (plus LOWPASS_LEAKAGE_HZ) is left unfiltered, as its features
    would be the same."""
    def filt(x, u):
        n = x.shape[1]
        fft_len = _fft_size(n + int(4 * sample_rate / transition_hz))
        cutoff = _between(_column(u, "cutoff"), cutoff_hz)[:, None]
        freqs = tf.linspace(0.0, sample_rate / 2.0, fft_len // 2 + 1)[None]
        ramp = tf.clip_by_value((cutoff + transition_hz / 2 - freqs) / transition_hz, 0.0, 1.0)
        gain = tf.cast(0.5 - 0.5 * tf.cos(math.pi * ramp), tf.complex64)
        return tf.signal.irfft(_rfft(x, fft_len) * gain)[:, :n]

    if band_limit_hz is None:
        return _sometimes(x, u, prob, "lowpass_on", filt)
    edge = band_limit_hz + LOWPASS_LEAKAGE_HZ + transition_hz / 2  # cutoffs at or above it change no feature
    if prob <= 0 or cutoff_hz[0] >= edge:
        return x
    seen = _between(_column(u, "cutoff"), cutoff_hz) < edge
    return _on_rows(x, u, (_column(u, "lowpass_on") < prob) & seen, filt)


def spec_mask(frames: int, bins: int, u: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """bool [B, frames, bins], True where SpecAugment masks: bands of random width 0..max at random places."""
    def bands(dim: int, count: int, width: int, first: int) -> tf.Tensor:
        if count == 0 or width == 0:
            return tf.zeros([tf.shape(u)[0], dim], tf.bool)
        width = min(width, dim)
        w = _index(u[:, first:first + count], width + 1)  # [B, count]
        start = tf.cast(tf.floor(u[:, first + count:first + 2 * count] * tf.cast(dim - w + 1, tf.float32)), tf.int32)
        idx = tf.range(dim)[None, :, None]
        return tf.reduce_any((idx >= start[:, None]) & (idx < (start + w)[:, None]), axis=2)

    first_time, first_freq = len(COLUMNS), len(COLUMNS) + 2 * cfg.time_masks
    in_time = bands(frames, cfg.time_masks, cfg.time_mask_frames, first_time)
    in_freq = bands(bins, cfg.freq_masks, cfg.freq_mask_bins, first_freq)
    return in_time[:, :, None] | in_freq[:, None, :]


def spec_augment(features: tf.Tensor, u: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """Masks features [B, frames, bins] with each example's mean (a zero would be a loud value in log-mel)."""
    _, frames, bins = features.shape
    mask = spec_mask(frames, bins, u, cfg)
    return tf.where(mask, tf.reduce_mean(features, axis=[1, 2], keepdims=True), features)


def augment_batch(x: tf.Tensor, u: tf.Tensor, cfg: AugmentConfig, rooms: tf.Tensor | None,
                  background: Background | None = None, sample_rate: int = SAMPLE_RATE,
                  band_limit_hz: float | None = None) -> tf.Tensor:
    """All waveform ops on clips [B, samples] with their uniforms u [B, table_width(cfg)] and the reverb's
    room_spectra (None without reverb). The low-pass comes after the noise because narrowband recordings have no
    noise above the cutoff either; the gain comes last. band_limit_hz: see lowpass (None: every clip drawn for the
    low-pass is filtered)."""
    x = speed_perturb(x, u, cfg.speed_prob, cfg.speed_range)
    x = time_shift(x, u, int(round(cfg.time_shift_ms * sample_rate / 1000)))
    x = reverb(x, u, rooms, cfg.reverb_prob)
    if background is not None:
        x = mix_background(x, u, background, cfg.background_prob, cfg.background_snr_db)
    x = lowpass(x, u, cfg.lowpass_prob, cfg.lowpass_hz, sample_rate, band_limit_hz=band_limit_hz)
    return random_gain(x, u, cfg.gain_db)


def augment_waveform(x: tf.Tensor, seed, cfg: AugmentConfig, background=None,
                     sample_rate: int = SAMPLE_RATE) -> tf.Tensor:
    """One clip [samples] augmented with draws of its own from `seed` (int [2]): augment_batch on a batch of one.
    background: background rows [rows, cols] or None."""
    seed = tf.cast(seed, tf.int64)
    u = draw_uniforms(fold_in(seed, 0), 1, cfg)
    rooms = room_spectra(fold_in(seed, 1), 1, cfg, x.shape[0], sample_rate)
    background = Background.of(background) if background is not None else None
    return augment_batch(x[None], u, cfg, rooms, background, sample_rate)[0]


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
