"""Waveform loading (bad files, cache) and the tf.data pipeline (shapes, determinism); the augmentation ops are in
test_augment.py."""
import numpy as np
import pytest
import soundfile as sf

from kws_zoo.core.compat import tf
from kws_zoo.core.errors import BadFilesError, ConfigError
from kws_zoo.data import DataConfig, audio
from kws_zoo.data import load_dataset
from kws_zoo.data.augment import AugmentConfig
from kws_zoo.data.base import Example, default_path
from kws_zoo.data.frontends import FrontendConfig, mel_power
from kws_zoo.data.pipeline import (drop_bad, features_for, load_background, load_waveforms, make_dataset,
                                   prepared_waveforms)

SR = 16000


def sine(freq, n=SR, amp=0.3, rate=SR):
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def rng_noise(seed, shape, amp=0.1):
    return (amp * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


@pytest.fixture
def files(tmp_path):
    """Three good files (one at 8 kHz), one missing, one not a WAV, and a silence example."""
    sf.write(tmp_path / "a.wav", sine(440, 8000), SR, subtype="PCM_16")  # 0.5 s: centred in the clip
    sf.write(tmp_path / "b.wav", sine(880, 20000), SR, subtype="PCM_16")  # 1.25 s: centre kept
    sf.write(tmp_path / "c.wav", sine(300, 8000, rate=8000), 8000, subtype="PCM_16")
    (tmp_path / "bad.wav").write_text("not audio")
    names = ["a.wav", "", "missing.wav", "b.wav", "bad.wav", "c.wav"]
    return [Example(str(tmp_path / n) if n else "", i % 3, n[:1]) for i, n in enumerate(names)]


def test_strict_mode_lists_every_bad_file(files):
    with pytest.raises(BadFilesError) as err:
        load_waveforms(files, progress=False)
    assert [e.path for e in err.value.errors] == [files[2].path, files[4].path]
    assert files[2].path in str(err.value) and files[4].path in str(err.value) and "not found" in str(err.value)


def test_skip_mode_drops_and_returns_bad_files(files):
    waves, bad = load_waveforms(files, skip_bad=True, progress=False)
    kept = drop_bad(files, bad)
    assert [e.path for e in bad] == [files[2].path, files[4].path]
    assert waves.shape == (4, SR) and waves.dtype == np.float32 and len(kept) == 4
    np.testing.assert_allclose(waves[0], audio.fit_length(sine(440, 8000), SR), atol=1e-4)  # centred
    assert not waves[1].any()  # silence example
    np.testing.assert_allclose(waves[2], sine(880, 20000)[2000:18000], atol=1e-4)  # centre of a long clip
    assert np.abs(waves[3]).max() > 0.25  # the 8 kHz file was resampled and padded, not lost


def test_waveform_cache(files, tmp_path, monkeypatch):
    good = [e for i, e in enumerate(files) if i not in (2, 4)]
    reads = []
    real_read = audio.read_wav
    monkeypatch.setattr(audio, "read_wav", lambda *a, **k: reads.append(a[0]) or real_read(*a, **k))
    first, _ = load_waveforms(good, progress=False, cache_dir=tmp_path / "cache")
    assert len(reads) == 3
    second, _ = load_waveforms(good, progress=False, cache_dir=tmp_path / "cache")
    assert len(reads) == 3 and np.array_equal(first, second)
    with pytest.raises(BadFilesError):  # bad files are cached too, and still stop a strict build
        load_waveforms(files, progress=False, cache_dir=tmp_path / "cache")
    n = len(reads)
    with pytest.raises(BadFilesError):
        load_waveforms(files, progress=False, cache_dir=tmp_path / "cache")
    assert len(reads) == n
    sf.write(files[0].path, sine(1000, 4000), SR)  # a changed file invalidates the cache
    third, _ = load_waveforms(good, progress=False, cache_dir=tmp_path / "cache")
    assert len(reads) == n + 3 and not np.array_equal(first[0], third[0])


def test_load_background_segments(tmp_path):
    sf.write(tmp_path / "long.wav", rng_noise(0, 5 * SR), SR, subtype="FLOAT")
    sf.write(tmp_path / "short.wav", rng_noise(1, SR // 2), SR, subtype="FLOAT")
    bg = load_background([str(tmp_path / "long.wav"), str(tmp_path / "short.wav")])
    assert bg.shape == (4 + 1, 2 * SR) and bg.dtype == np.float32  # 5 s -> windows at 0,1,2,3 s; short tiled
    assert np.array_equal(bg[4][:SR // 2], bg[4][SR // 2:SR])
    with pytest.raises(BadFilesError):
        load_background([str(tmp_path / "nope.wav")])
    assert load_background([str(tmp_path / "nope.wav")], skip_bad=True) is None


def batches(ds):
    feats, labels = zip(*[(f.numpy(), l.numpy()) for f, l in ds])
    return np.concatenate(feats), np.concatenate(labels)


WAVES = np.stack([sine(200 + 50 * i) + rng_noise(i, SR, 0.01) for i in range(10)] + [np.zeros(SR, np.float32)] * 2)
LABELS = np.arange(12) % 5
BACKGROUND = rng_noise(99, (3, 2 * SR))


@pytest.mark.parametrize("kind,shape", [("log_mel", (98, 40)), ("mfcc", (98, 10)), ("raw", (SR,)),
                                        ("micro", (98, 40))])
def test_shapes_and_dtypes(kind, shape):
    cfg = FrontendConfig.micro() if kind == "micro" else FrontendConfig(kind=kind)
    ds = make_dataset(WAVES, LABELS, frontend_cfg=cfg, batch_size=5, training=True,
                      augment=AugmentConfig(), background=BACKGROUND, seed=1)
    sizes = []
    for f, l in ds:
        assert f.dtype == tf.float32 and l.dtype == tf.int32 and tuple(f.shape[1:]) == shape
        assert np.isfinite(f.numpy()).all()
        sizes.append(len(l))
    assert sizes == [5, 5, 2]


@pytest.mark.parametrize("training,mixup", [(True, 0.0), (True, 0.4), (False, 0.0)])
def test_datasets_run_without_autotuning_and_one_thread_per_op(training, mixup):
    # An autotuned iterator stalls for seconds when it is deleted (pipeline.fixed_parallelism): every epoch makes one.
    ds = make_dataset(WAVES, LABELS, frontend_cfg=FrontendConfig(), batch_size=4, training=training,
                      augment=AugmentConfig(mixup_alpha=mixup) if training else None, num_classes=12)
    options = ds.options()
    assert options.autotune.enabled is False and options.threading.max_intra_op_parallelism == 1


def test_evaluation_order_and_features_for():
    cfg = FrontendConfig()
    feats, labels = batches(make_dataset(WAVES, LABELS, frontend_cfg=cfg, batch_size=4, training=False))
    assert np.array_equal(labels, LABELS)
    direct = np.log(np.asarray(_mel(WAVES, cfg)) + cfg.log_floor)
    np.testing.assert_allclose(feats, direct, rtol=1e-5, atol=1e-5)  # no augmentation, no silence fill
    # Across batch sizes equal up to float rounding only: the filterbank's matrix product sums in an order that
    # depends on the number of rows on some processors (AMD EPYC: 42 of 47,040 values differ by 1 ulp).
    np.testing.assert_allclose(features_for(WAVES, cfg, 5), feats, rtol=1e-6, atol=1e-6)
    noisy = features_for(WAVES, cfg, 4, background=BACKGROUND, seed=3)
    np.testing.assert_array_equal(noisy[:10], feats[:10])  # speech untouched
    assert not np.array_equal(noisy[10], feats[10]) and not np.array_equal(noisy[10], noisy[11])
    again = features_for(WAVES, cfg, 7, background=BACKGROUND, seed=3)
    np.testing.assert_allclose(again, noisy, rtol=1e-6, atol=1e-6)


def _mel(waves, cfg):
    return mel_power(tf.constant(waves), cfg)


def test_deterministic_in_seed_and_epoch():
    def run(seed, epoch):
        return batches(make_dataset(WAVES, LABELS, frontend_cfg=FrontendConfig(), batch_size=4, training=True,
                                    augment=AugmentConfig(), background=BACKGROUND, seed=seed, epoch=epoch))

    f0, l0 = run(5, 0)
    f0b, l0b = run(5, 0)
    assert np.array_equal(f0, f0b) and np.array_equal(l0, l0b)  # bit-identical rebuild (resume)
    f1, l1 = run(5, 1)
    assert not np.array_equal(f1, f0)
    assert sorted(l1) == sorted(l0) == sorted(LABELS)  # every example once per epoch
    f2, _ = run(6, 0)
    assert not np.array_equal(f2, f0)


def test_mixup_mixes_each_example_with_its_mirror_and_keeps_the_larger_share():
    def run(alpha):  # per-example augmentation is seeded by example, so alpha 0 gives the features before mixing
        return batches(make_dataset(WAVES, LABELS, frontend_cfg=FrontendConfig(), batch_size=4, training=True,
                                    augment=AugmentConfig(mixup_alpha=alpha), background=BACKGROUND, seed=3,
                                    num_classes=5))

    plain, hard = run(0.0)
    mixed, soft = run(0.4)
    assert soft.shape == (12, 5) and np.allclose(soft.sum(1), 1)
    assert np.all(soft[np.arange(12), hard] >= 0.5 - 1e-6)  # each example keeps the larger share
    checked = 0
    for start in range(0, 12, 4):  # within a batch, example i is mixed with example 3 - i
        f, lab = plain[start:start + 4], hard[start:start + 4]
        for i in (i for i in range(4) if lab[i] != lab[3 - i]):
            lam = soft[start + i, lab[i]]
            assert np.allclose(mixed[start + i], lam * f[i] + (1 - lam) * f[3 - i], atol=1e-4)
            checked += 1
    assert checked >= 6
    again, soft_again = run(0.4)
    assert np.array_equal(again, mixed) and np.array_equal(soft_again, soft)  # seeded: resumes exactly
    with pytest.raises(ValueError, match="num_classes"):
        make_dataset(WAVES, LABELS, frontend_cfg=FrontendConfig(), batch_size=4, training=True,
                     augment=AugmentConfig(mixup_alpha=0.4))


def test_augment_config_round_trip_and_validation():
    cfg = AugmentConfig(gain_db=(-3, 3), time_masks=1)
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg and cfg.gain_db == (-3.0, 3.0)
    for bad in (dict(speed_prob=1.5), dict(gain_db=(3, -3)), dict(speed_range=(0, 1)), dict(time_masks=-1)):
        with pytest.raises(ConfigError):
            AugmentConfig(**bad)
    with pytest.raises(ValueError, match="unknown AugmentConfig keys"):
        AugmentConfig.from_dict({"gain": 1})


@pytest.mark.skipif(not (default_path("fsdd") / "recordings").is_dir(), reason="FSDD not available")
def test_fsdd_test_split_end_to_end():
    data = load_dataset(DataConfig(kind="fsdd")).relabel(("_silence_", "_unknown_", "zero", "one", "two", "three",
                                                          "four", "five", "six", "seven", "eight", "nine"))
    waves, bad = load_waveforms(data.splits["test"], progress=False)
    assert waves.shape == (200, SR) and bad == []
    assert (np.abs(waves).max(axis=1) > 0.01).all()  # 8 kHz speech decoded and resampled, none silent
    feats = features_for(waves, FrontendConfig(), 64)
    assert feats.shape == (200, 98, 40) and np.isfinite(feats).all()
    assert sorted(set(data.label_array("test"))) == list(range(2, 12))


def test_prepared_waveforms_are_the_clips_make_dataset_feeds_its_frontend():
    """The raw frontend shows make_dataset's clips after silence fill and augmentation: prepared_waveforms (for
    frontends outside TensorFlow) gives the same ones, in order, with the same seeds."""
    rng = np.random.default_rng(3)
    waves = np.concatenate([rng.standard_normal((5, SR)) * 0.1, np.zeros((3, SR))]).astype(np.float32)
    background = rng.standard_normal((2, 2 * SR)).astype(np.float32) * 0.05
    augment = AugmentConfig(reverb_prob=0.0)
    ds = make_dataset(waves, np.zeros(8, np.int32), frontend_cfg=FrontendConfig(kind="raw"), batch_size=8,
                      training=False, augment=augment, background=background, seed=4, epoch=2)
    fed = np.concatenate([x.numpy() for x, _ in ds])
    got = prepared_waveforms(waves, background=background, augment=augment, seed=4, epoch=2)
    np.testing.assert_array_equal(got, fed)
    assert np.all(np.abs(got[5:]).max(axis=1) > 0)  # the silent clips got noise
