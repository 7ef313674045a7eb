"""The batched augmentation ops (kws_zoo.data.augment): each does what it says, is seeded per example, and the
distributions of what it draws are the configured ones (the statistics test: the batched ops draw different numbers
than the per-clip ops they replaced, never different distributions)."""
import numpy as np
import pytest
from scipy import stats

from kws_zoo.core.compat import tf
from kws_zoo.data import augment as aug
from kws_zoo.data.augment import AugmentConfig, Background
from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.data.pipeline import make_dataset

SR = 16000
CFG = AugmentConfig()
X = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)
     + 0.05 * np.random.default_rng(7).standard_normal(SR)).astype(np.float32)
BG = Background.of(0.1 * np.random.default_rng(8).standard_normal((2, 2 * SR)).astype(np.float32))
ROOMS = aug.room_spectra([0, 1], 4, CFG, SR)


def draws(seed, rows, cfg=CFG):
    return aug.draw_uniforms(tf.constant([seed, 0], tf.int64), rows, cfg)


OPS = {
    "time_shift": lambda x, u: aug.time_shift(x, u, 1600),
    "gain": lambda x, u: aug.random_gain(x, u, (-12.0, 6.0)),
    "background": lambda x, u: aug.mix_background(x, u, BG, 1.0, (0.0, 20.0)),
    "speed": lambda x, u: aug.speed_perturb(x, u, 1.0, (0.85, 1.15)),
    "reverb": lambda x, u: aug.reverb(x, u, ROOMS, 1.0),
    "lowpass": lambda x, u: aug.lowpass(x, u, 1.0, (3400.0, 7000.0)),
    "all": lambda x, u: aug.augment_batch(x, u, CFG, ROOMS, BG),
}


@pytest.mark.parametrize("name", list(OPS))
def test_each_augmentation_changes_data_stays_finite_and_is_seeded(name):
    x = tf.constant(np.stack([X] * 3))
    a = OPS[name](x, draws(1, 3)).numpy()
    b = OPS[name](x, draws(1, 3)).numpy()
    c = OPS[name](x, draws(2, 3)).numpy()
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert not any(np.allclose(row, X, atol=1e-3) for row in a)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[1])  # each row its own draws


def test_probability_zero_is_identity():
    x, u = tf.constant(np.stack([X] * 2)), draws(4, 2)
    for out in (aug.mix_background(x, u, BG, 0.0, (0, 20)), aug.speed_perturb(x, u, 0.0, (0.9, 1.1)),
                aug.reverb(x, u, ROOMS, 0.0), aug.lowpass(x, u, 0.0, (3400, 8000)),
                aug.time_shift(x, u, 0)):
        assert np.array_equal(out.numpy(), x.numpy())


def power_above(x, hz):
    spec = np.abs(np.fft.rfft(x)) ** 2
    return spec[int(hz * len(x) / SR):].sum() / spec.sum()


def test_augmentations_do_what_they_say():
    u = draws(9, 1)
    white = 0.1 * np.random.default_rng(3).standard_normal((1, SR)).astype(np.float32)
    low = aug.lowpass(tf.constant(white), u, 1.0, (4000.0, 4000.0)).numpy()[0]
    assert power_above(white[0], 4200) > 0.4 and power_above(low, 4200) < 1e-4
    tone = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)).astype(np.float32)[None]
    fast = aug.speed_perturb(tf.constant(tone), u, 1.0, (1.1, 1.1)).numpy()[0]
    assert abs(np.argmax(np.abs(np.fft.rfft(fast[3000:13000]))) * SR / 10000 - 1100) < 5
    noisy = aug.mix_background(tf.constant(X[None]), u, BG, 1.0, (10.0, 10.0)).numpy()[0]
    assert abs(10 * np.log10(np.mean(X ** 2) / np.mean((noisy - X) ** 2)) - 10) < 0.01
    room = aug.room_spectra([0, 2], 1, AugmentConfig(reverb_rt60_s=(0.3, 0.3), reverb_drr_db=(0.0, 0.0)), SR)
    wet = aug.reverb(tf.constant(X[None]), u, room, 1.0).numpy()[0]
    assert np.isclose(np.sqrt(np.mean(wet ** 2)), np.sqrt(np.mean(X ** 2)), rtol=1e-3)  # level kept


@pytest.mark.parametrize("kind", ["mfcc", "log_mel"])
def test_lowpass_skips_only_what_the_features_do_not_see(kind):
    """With the frontend's band limit, clips whose low-pass would change nothing the frontend uses are left as they
    are (so their features are those of the filtered clip up to float rounding); the others are filtered alike."""
    from kws_zoo.data.frontends import make_frontend

    frontend_cfg = FrontendConfig(kind=kind, fmax=4000.0)
    white = tf.constant(0.1 * np.random.default_rng(5).standard_normal((64, SR)).astype(np.float32))
    u = draws(11, 64)
    cutoffs = (3400.0, 8000.0)
    full = aug.lowpass(white, u, 1.0, cutoffs).numpy()
    limited = aug.lowpass(white, u, 1.0, cutoffs, band_limit_hz=frontend_cfg.band_limit_hz).numpy()
    cutoff = cutoffs[0] + u.numpy()[:, aug.COLUMNS.index("cutoff")] * (cutoffs[1] - cutoffs[0])
    skipped = cutoff >= 4000.0 + aug.LOWPASS_LEAKAGE_HZ + 125.0
    assert 10 < skipped.sum() < 60
    assert np.array_equal(limited[skipped], white.numpy()[skipped])
    assert np.array_equal(limited[~skipped], full[~skipped])
    frontend = make_frontend(frontend_cfg)
    np.testing.assert_allclose(frontend(limited).numpy(), frontend(full).numpy(), atol=1e-4)
    assert FrontendConfig(kind="raw").band_limit_hz is None


def test_fill_silence_only_touches_silent_clips():
    x = tf.constant(np.stack([np.zeros(SR, np.float32), X]))
    filled = aug.fill_silence(x, draws(2, 2), BG, (-40.0, -40.0)).numpy()
    assert np.isclose(20 * np.log10(np.sqrt(np.mean(filled[0] ** 2))), -40.0, atol=0.01)
    assert np.array_equal(filled[1], X)


def test_a_clip_is_augmented_alike_in_any_batch():
    """Example i's augmentation depends on (seed, epoch, i) only: the same clip whether batched with 8 others or 3 (so
    a resumed run, or a worker feeding part of each global batch, sees the same clips). Batched kernels may round
    differently by batch size (measured here: 1.5e-7 on the clips); a different draw would change them by ~0.1."""
    rng = np.random.default_rng(5)
    waves = (0.1 * rng.standard_normal((9, SR))).astype(np.float32)
    waves[4] = 0  # a silence example
    background = (0.05 * rng.standard_normal((3, 2 * SR))).astype(np.float32)

    def clips(batch_size):
        ds = make_dataset(waves, np.zeros(9, np.int32), frontend_cfg=FrontendConfig(kind="raw"),
                          batch_size=batch_size, training=False, augment=CFG, background=background, seed=2, epoch=3)
        return np.concatenate([x.numpy() for x, _ in ds])

    np.testing.assert_allclose(clips(3), clips(9), rtol=0, atol=2e-6)


# The statistics test: many examples through each op alone, the parameter each example got read back from its
# output, its distribution compared with the configured one (Kolmogorov-Smirnov), each op's rate with its
# probability (binomial, 5 sigma).
ROWS, N = 1500, 4000  # short clips: the ops do not depend on the length


def _alone(**on) -> AugmentConfig:
    off = dict(speed_prob=0.0, reverb_prob=0.0, background_prob=0.0, lowpass_prob=0.0, time_shift_ms=0.0,
               gain_db=(0.0, 0.0), time_masks=0, freq_masks=0)
    return AugmentConfig(**{**off, **on})


def _uniform_fits(values, low, high) -> bool:
    return stats.kstest(values, stats.uniform(low, high - low).cdf).pvalue > 1e-3


def _rate_fits(hits: int, prob: float, total: int = ROWS) -> bool:
    return abs(hits - prob * total) <= 5 * np.sqrt(total * prob * (1 - prob))


def _run(cfg: AugmentConfig, x: np.ndarray, background=None) -> np.ndarray:
    u = draws(11, len(x), cfg)
    rooms = aug.room_spectra([11, 1], 128, cfg, x.shape[1])
    return aug.augment_batch(tf.constant(x), u, cfg, rooms, background).numpy()


def test_statistics_gain_shift_and_speed():
    ramp = np.tile(np.arange(1, N + 1, dtype=np.float32), (ROWS, 1))
    gain = _run(_alone(gain_db=(-12.0, 6.0)), ramp)
    assert _uniform_fits(20 * np.log10(gain[:, 0]), -12.0, 6.0)

    shifted = _run(_alone(time_shift_ms=100.0), ramp)
    first = np.argmax(shifted > 0, axis=1)  # out[t] = t - s + 1 where it is not zero filled
    shift = first + 1 - shifted[np.arange(ROWS), first]
    assert set(np.unique(shift)) <= set(range(-1600, 1601)) and shift.min() < -1500 and shift.max() > 1500
    assert _uniform_fits(shift + np.random.default_rng(0).uniform(-0.5, 0.5, ROWS), -1600.5, 1600.5)

    sped = _run(_alone(speed_prob=0.5, speed_range=(0.85, 1.15)), ramp)
    middle = slice(N // 2 - 500, N // 2 + 500)  # inside the source for every factor
    factor = np.polyfit(np.arange(N)[middle], sped[:, middle].T, 1)[0]
    changed = np.abs(factor - 1) > 1e-6
    assert _rate_fits(changed.sum(), 0.5) and _uniform_fits(factor[changed], 0.85, 1.15)


def test_statistics_background_silence_reverb_and_lowpass():
    rng = np.random.default_rng(1)
    speech = (0.2 * rng.standard_normal((ROWS, N))).astype(np.float32)
    noise = Background.of((0.1 * rng.standard_normal((4, 2 * N))).astype(np.float32))
    mixed = _run(_alone(background_prob=0.8, background_snr_db=(0.0, 20.0)), speech, noise)
    added = mixed - speech
    got = np.abs(added).max(axis=1) > 0
    snr = 10 * np.log10(np.mean(speech[got] ** 2, axis=1) / np.mean(added[got] ** 2, axis=1))
    assert _rate_fits(got.sum(), 0.8) and _uniform_fits(snr, 0.0, 20.0)

    silent = aug.fill_silence(tf.zeros([ROWS, N]), draws(12, ROWS), noise, (-60.0, -20.0)).numpy()
    assert _uniform_fits(20 * np.log10(np.sqrt(np.mean(silent ** 2, axis=1))), -60.0, -20.0)

    reverbed = _run(_alone(reverb_prob=0.3), speech)
    wet = np.abs(reverbed - speech).max(axis=1) > 1e-4
    assert _rate_fits(wet.sum(), 0.3)
    rms = lambda x: np.sqrt(np.mean(x ** 2, axis=1))  # noqa: E731
    np.testing.assert_allclose(rms(reverbed[wet]), rms(speech[wet]), rtol=1e-4)  # level kept

    impulse = np.zeros((ROWS, N), np.float32)
    impulse[:, N // 2] = 1.0  # the whole (zero-phase, ~8 ms) response fits in the clip: its spectrum is the gain
    response = _run(_alone(lowpass_prob=0.3, lowpass_hz=(3400.0, 7000.0)), impulse)
    filtered = np.abs(response - impulse).max(axis=1) > 1e-4
    gain = np.abs(np.fft.rfft(response[filtered], axis=1))
    below = np.argmax(gain < 0.5, axis=1)  # the raised-cosine edge passes half the amplitude at the cutoff
    rows = np.arange(len(below))
    hz_per_bin = SR / N
    cutoff = hz_per_bin * (below - 1 + (gain[rows, below - 1] - 0.5) / (gain[rows, below - 1] - gain[rows, below]))
    assert _rate_fits(filtered.sum(), 0.3) and _uniform_fits(cutoff, 3400.0, 7000.0)


def test_statistics_rooms():
    """Each room's rt60 from its energy decay (Schroeder's backward integral, fitted from -5 to -25 dB) and its
    direct-to-reverberant ratio (the direct path is the first sample) follow the configured ranges."""
    cfg = AugmentConfig(reverb_rt60_s=(0.1, 0.5), reverb_drr_db=(0.0, 10.0))
    length = aug.ir_samples(cfg.reverb_rt60_s)
    rooms = aug.room_spectra([14, 0], ROWS, cfg, N)
    full = np.fft.irfft(rooms.numpy().astype(np.complex128), axis=1)
    ir = full[:, :length]
    assert np.allclose(ir[:, 0], 1.0, atol=1e-5) and np.abs(full[:, length:]).max() < 1e-5  # zero padded
    drr = 10 * np.log10(1.0 / np.sum(ir[:, 1:] ** 2, axis=1))
    decay = 10 * np.log10(np.cumsum(ir[:, :0:-1] ** 2, axis=1)[:, ::-1])
    decay -= decay[:, :1]
    t5, t25 = np.argmax(decay < -5, axis=1), np.argmax(decay < -25, axis=1)
    rt60 = 3 * (t25 - t5) / SR
    assert _uniform_fits(drr, 0.0, 10.0) and _uniform_fits(rt60, 0.1, 0.5)


def test_statistics_spec_masks():
    cfg = AugmentConfig(time_masks=1, time_mask_frames=10, freq_masks=1, freq_mask_bins=5)
    mask = aug.spec_mask(98, 40, draws(13, ROWS, cfg), cfg).numpy()
    time_width = mask.all(axis=2).sum(axis=1)  # whole frames masked
    freq_width = mask.all(axis=1).sum(axis=1)
    for width, top in ((time_width, 10), (freq_width, 5)):
        counts = np.bincount(width, minlength=top + 1)
        assert len(counts) == top + 1  # never wider than the maximum
        assert stats.chisquare(counts).pvalue > 1e-3  # every width 0..max alike
