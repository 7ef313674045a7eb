"""Frontends against librosa on the same audio (tolerance stated per test)."""
import librosa
import numpy as np
import pytest

from kws_zoo.core.compat import tf
from kws_zoo.core.errors import ConfigError
from kws_zoo.data.frontends import FrontendConfig, make_frontend, micro_features


def _speechlike(seconds=1.0, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f * t) * a for f, a in ((220, .3), (660, .2), (1800, .1), (5200, .05)))
    return (tone * np.hanning(len(t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _librosa_log_mel(y, cfg):
    # librosa centres a short window inside its n_fft frame; shifting by the pad makes frame t cover
    # y[t*hop : t*hop+window], which is what tf.signal.stft uses.
    pad = (cfg.fft_length - cfg.window_samples) // 2
    mel = librosa.feature.melspectrogram(
        y=np.pad(y, (pad, 0)), sr=cfg.sample_rate, n_fft=cfg.fft_length, win_length=cfg.window_samples,
        hop_length=cfg.hop_samples, center=False, window="hann", power=2.0, n_mels=cfg.num_mels,
        fmin=cfg.fmin, fmax=cfg.fmax, htk=True, norm=None).T
    return np.log(mel + cfg.log_floor)


@pytest.mark.parametrize("cfg", [FrontendConfig(), FrontendConfig(window_ms=40, hop_ms=20, num_mels=32, fmax=4000)])
def test_log_mel_matches_librosa(cfg):
    y = _speechlike()
    ours = make_frontend(cfg)(tf.constant(y[None]))[0].numpy()
    ref = _librosa_log_mel(y, cfg)
    assert ours.shape == cfg.output_shape(len(y))
    n = min(len(ours), len(ref))
    assert n >= len(ours) - 1  # librosa may drop the last frame because of the pad shift
    # float32 STFT vs float64 librosa: log-mel agrees to 1e-3 absolute (features span ~20 nats).
    np.testing.assert_allclose(ours[:n], ref[:n], atol=1e-3)


def test_mfcc_matches_librosa():
    cfg = FrontendConfig(kind="mfcc", window_ms=30, hop_ms=20, num_mfcc=10, fmax=4000)
    y = _speechlike(seed=1)
    ours = make_frontend(cfg)(tf.constant(y[None]))[0].numpy()
    ref = librosa.feature.mfcc(S=_librosa_log_mel(y, cfg).T, n_mfcc=10, dct_type=2, norm="ortho").T
    n = min(len(ours), len(ref))
    np.testing.assert_allclose(ours[:n], ref[:n], atol=2e-3)


def test_micro_frontend_shape_and_determinism():
    y = _speechlike(seed=2)
    a, b = micro_features(y), micro_features(y)
    assert a.shape == FrontendConfig.micro().output_shape(len(y)) == (98, 40)
    np.testing.assert_array_equal(a, b)  # a fresh frontend state per clip
    assert a.std() > 0


def test_micro_warmup_gives_the_settled_frontend_on_the_clip_grid():
    y = _speechlike(seed=3)
    warm = micro_features(y, warmup_s=1.0)
    twice = micro_features(np.concatenate([y, y]))[-len(warm):]  # the second pass of the clip: the same frames
    np.testing.assert_array_equal(warm, twice)
    assert warm.shape == (98, 40) and np.abs(warm - micro_features(y)).mean() > 0.1  # a fresh frontend differs
    batch = np.asarray(make_frontend(FrontendConfig(kind="micro", warmup_s=1.0, fmin=125.0, fmax=7500.0))(y[None]))
    np.testing.assert_array_equal(batch[0], warm)
    with pytest.raises(ConfigError, match="warmup_s is for the micro frontend"):
        FrontendConfig(warmup_s=1.0)


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="kind"):
        FrontendConfig(kind="spectrogram")
    with pytest.raises(ConfigError, match="fmax"):
        FrontendConfig(fmax=9000)
    with pytest.raises(ConfigError, match="micro frontend is fixed"):
        FrontendConfig(kind="micro", num_mels=32)
