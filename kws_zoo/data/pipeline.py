"""Decoding examples to waveforms, and the tf.data pipeline that turns waveforms into feature batches.

Determinism: the example order of epoch e is a numpy permutation from default_rng([seed, e]), and every
random choice an example sees is a stateless op seeded from (seed, e, example index). Rebuilding the
dataset with the same (seed, epoch) therefore gives bit-identical batches in any process, which is what
lets a killed training run resume exactly (the trainer builds one dataset per epoch).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from kws_zoo.core.compat import tf
from kws_zoo.core.errors import AudioError, BadFilesError
from kws_zoo.core.files import atomic_path, atomic_write_text
from kws_zoo.data import audio, speech_embedding
from kws_zoo.data.audio import SAMPLE_RATE
from kws_zoo.data.augment import (AugmentConfig, Background, augment_batch, draw_uniforms, fill_silence, fold_in,
                                  mixup, reverb_fft_length, room_spectra, spec_augment, table_width)
from kws_zoo.data.base import Example
from kws_zoo.data.frontends import FrontendConfig, make_frontend

_CACHE_VERSION = 1


def load_waveforms(examples: Sequence[Example], clip_samples: int = 16000, skip_bad: bool = False,
                   progress: bool = True, *, cache_dir: str | os.PathLike | None = None,
                   sample_rate: int = SAMPLE_RATE, workers: int | None = None) -> tuple[np.ndarray, list[AudioError]]:
    """Decodes every example to float32 [N, clip_samples] (centre padded/trimmed); silence examples are zeros.

    Every file is tried before deciding, so an error lists all bad files at once: by default a
    BadFilesError; with skip_bad=True the bad rows are dropped (use `drop_bad` for the matching examples)
    and the errors returned. With cache_dir, the decoded array is kept in a .npy keyed by the file list,
    sizes and modification times (pass a directory outside the repo).
    """
    cache = _cache_paths(examples, clip_samples, sample_rate, cache_dir) if cache_dir else None
    if cache and cache[0].exists() and cache[1].exists():
        waves = np.load(cache[0])
        bad = [AudioError(p, problem) for p, problem in json.loads(cache[1].read_text())]
    else:
        waves, bad = _decode(examples, clip_samples, sample_rate, progress, workers)
        if cache:
            _save(cache, waves, bad)
    if bad and not skip_bad:
        raise BadFilesError(bad)
    return waves, bad


def drop_bad(examples: Sequence[Example], bad: Sequence[AudioError]) -> list[Example]:
    """The examples that match the rows `load_waveforms(..., skip_bad=True)` returned."""
    bad_paths = {e.path for e in bad}
    return [e for e in examples if e.path not in bad_paths]


def _decode(examples, clip_samples, sample_rate, progress, workers):
    def read(example: Example):
        if not example.path:
            return None
        try:
            return audio.fit_length(audio.read_wav(example.path, sample_rate), clip_samples)
        except AudioError as err:
            return err

    waves = np.zeros((len(examples), clip_samples), np.float32)
    bad, ok = [], np.ones(len(examples), bool)
    # Threads, not processes: libsndfile and soxr release the GIL, and forking after TF is loaded is unsafe.
    with concurrent.futures.ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        results = tqdm(pool.map(read, examples), total=len(examples), disable=not progress,
                       desc="decoding audio", unit="file")
        for i, result in enumerate(results):
            if isinstance(result, AudioError):
                bad.append(result)
                ok[i] = False
            elif result is not None:
                waves[i] = result
    return (waves if ok.all() else waves[ok]), bad


def _cache_paths(examples, clip_samples, sample_rate, cache_dir) -> tuple[Path, Path]:
    def stamp(path: str):
        try:
            st = os.stat(path)
            return [path, st.st_size, st.st_mtime_ns]
        except OSError:
            return [path, -1, -1]

    key = json.dumps([_CACHE_VERSION, clip_samples, sample_rate, [stamp(e.path) if e.path else "" for e in examples]])
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    root = Path(cache_dir)
    return root / f"waveforms-{digest}.npy", root / f"waveforms-{digest}.bad.json"


def _save(cache: tuple[Path, Path], waves: np.ndarray, bad: list[AudioError]) -> None:
    """Each file atomically; the .bad.json is written last and a cache counts only if both exist."""
    cache[0].parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache[0]) as tmp, open(tmp, "wb") as f:  # streamed: the array may not fit in memory twice
        np.save(f, waves)
    atomic_write_text(cache[1], json.dumps([[e.path, e.problem] for e in bad]))


def load_background(paths: Sequence[str], clip_samples: int = 16000, *, skip_bad: bool = False,
                    sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """background_rows of the files at `paths`; None if there are no usable clips."""
    clips, bad = [], []
    for path in paths:
        try:
            clips.append(audio.read_wav(path, sample_rate))
        except AudioError as err:
            bad.append(err)
    if bad and not skip_bad:
        raise BadFilesError(bad)
    return background_rows(clips, clip_samples)


def background_rows(clips: Sequence[np.ndarray], clip_samples: int = 16000) -> np.ndarray | None:
    """Background clips as float32 [segments, 2 * clip_samples]: each clip cut into windows with hop
    clip_samples (short clips tiled), so any random crop of clip_samples from a row lies inside one clip
    and every position of every clip is reachable. None if there are no clips."""
    rows, seg = [], 2 * clip_samples
    for x in clips:
        if len(x) < seg:
            x = np.tile(x, -(-seg // len(x)))
        rows += [x[s:s + seg] for s in range(0, len(x) - seg + 1, clip_samples)]
    return np.stack(rows).astype(np.float32) if rows else None


# Arrays live in TensorFlow once per array object (a variable is passed by handle, while a large captured constant
# is copied into every iterator's graph, seconds per gigabyte), and so do the traced batch functions that read them
# (tracing one per epoch cost 0.5 s of a 3 s epoch). An entry goes when one of its arrays does.
_KEPT: dict[tuple, tuple[list, object]] = {}
# Rooms drawn per epoch for the reverb (augment.room_spectra), at most one per example: each room reverberates about
# reverb_prob * examples / ROOMS clips of an epoch (6 in the quickstart recipe), and the set is new every epoch.
ROOMS = 256
# Batches in flight and ready. Fixed, not tf.data.AUTOTUNE: autotuning ramps up too slowly for epochs of 50
# batches (the quickstart recipe's input alone, median of 8 epochs: 1,781 clips/s autotuned, 2,991-3,323 with 2-4
# fixed); two per core hide a stalled one; eight bound the memory (a batch in flight holds ~60 MB of waveforms).
PARALLEL_BATCHES = min(8, 2 * (os.cpu_count() or 1))
PREFETCH_BATCHES = 16


def fixed_parallelism(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` with tf.data's autotuning off and each of its ops on one thread. Its parallelism is fixed here anyway
    (whole batches in flight), and deleting an autotuned iterator stalls, idle, for up to a few seconds in about half
    the epochs (measured: 1.6-2.5 s after the last step of a 4.5-s epoch, Keras `fit` returning late; never with
    autotuning off), and every epoch and validation pass makes one. One thread per op: the batches in flight already
    keep the cores busy."""
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def _kept(arrays: Sequence[np.ndarray], settings: tuple, make):
    """make() once per live `arrays` (by identity) and hashable `settings`."""
    key = (tuple(id(a) for a in arrays), settings)
    hit = _KEPT.get(key)
    if hit is not None and all(ref() is a for ref, a in zip(hit[0], arrays)):
        return hit[1]
    value = make()
    _KEPT[key] = ([weakref.ref(a, lambda _, k=key: _KEPT.pop(k, None)) for a in arrays], value)
    return value


def _resident(array: np.ndarray) -> tf.Variable:
    return _kept([array], ("variable",), lambda: tf.Variable(array, trainable=False))


def make_dataset(waveforms: np.ndarray, labels: np.ndarray, *, frontend_cfg: FrontendConfig, batch_size: int,
                 training: bool, augment: AugmentConfig | None = None, background: np.ndarray | None = None,
                 seed: int = 0, epoch: int = 0, num_classes: int | None = None,
                 shard: tuple[int, int] | None = None, replica_batch: int | None = None) -> tf.data.Dataset:
    """Yields (features, labels int32 [B]) with features float32 [B, frames, bins], or [B, samples]
    for the "raw" frontend (the waveform itself, for models with a learned front end).

    training=True shuffles (deterministically in (seed, epoch)); augmentation runs whenever `augment` is
    given, so pass None for evaluation. With `background` (from load_background), silence examples
    (all-zero clips) become background noise at a random level, in every mode, seeded like the rest.
    The arrays are treated as read-only: they are uploaded once per array object and reused.
    With training, `augment.mixup_alpha` > 0 and `num_classes`, batches are mixed (augment.mixup) and the labels
    are soft, float32 [B, num_classes].
    With shard=(pipeline, pipelines), only that input pipeline's share of every global batch of `batch_size`
    (pipeline_share), in batches of `replica_batch` (each replica's share of the global batch).
    """
    labels = np.asarray(labels, np.int32)
    if np.ndim(waveforms) != 2 or len(labels) != len(waveforms):
        raise ValueError(f"need waveforms [N, samples] and N labels, got {np.shape(waveforms)} and {labels.shape}")
    features = _feature_function(waveforms, background, augment, seed, frontend_cfg)
    order = np.random.default_rng([seed, epoch]).permutation(len(labels)) if training else np.arange(len(labels))
    if shard is not None:
        order = pipeline_share(order, batch_size, *shard)
        batch_size = replica_batch or batch_size // shard[1]
    uniforms = tf.gather(_epoch_uniforms(len(labels), augment, seed, epoch), order)
    rooms = _epoch_rooms(waveforms, augment, seed, epoch, frontend_cfg.sample_rate)
    ds = tf.data.Dataset.from_tensor_slices((order.astype(np.int64), labels[order], uniforms))
    # Whole batches through each op (augment.py): the per-op cost is paid per batch, not per clip.
    ds = ds.batch(batch_size).map(lambda i, y, u: (features(i, u, rooms), y), num_parallel_calls=PARALLEL_BATCHES,
                                  deterministic=True)
    if training and augment is not None and augment.mixup_alpha > 0:
        if num_classes is None:
            raise ValueError("mixup needs num_classes")
        mix_seed, alpha = fold_in(tf.constant([seed, epoch], tf.int64), -1), augment.mixup_alpha
        ds = ds.enumerate().map(lambda k, batch: mixup(*batch, fold_in(mix_seed, k), alpha, num_classes),
                                num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
    return fixed_parallelism(ds.prefetch(PREFETCH_BATCHES))


def pipeline_share(order: np.ndarray, batch_size: int, pipeline: int, pipelines: int) -> np.ndarray:
    """The examples of `order` that input pipeline `pipeline` of `pipelines` (one per worker) feeds, in order: each
    global batch of `batch_size` cut into `pipelines` contiguous shares, so the replicas together train on exactly
    the global batches of one device. A short last batch is cut as evenly as possible; if it has fewer examples
    than there are pipelines it is dropped (a worker with no batch would stall the others)."""
    if batch_size % pipelines:
        raise ValueError(f"batch_size {batch_size} is not a multiple of the {pipelines} input pipelines")
    per, parts = batch_size // pipelines, []
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        if len(batch) == batch_size:
            parts.append(batch[pipeline * per:(pipeline + 1) * per])
        elif len(batch) >= pipelines:
            edges = [len(batch) * k // pipelines for k in range(pipelines + 1)]
            parts.append(batch[edges[pipeline]:edges[pipeline + 1]])
    return np.concatenate(parts) if parts else order[:0]


def global_batches(examples: int, batch_size: int, pipelines: int = 1) -> int:
    """How many global batches an epoch of `examples` has when pipeline_share cuts it for `pipelines`."""
    rest = examples % batch_size
    return examples // batch_size + (1 if rest >= pipelines else 0)


def _epoch_uniforms(examples: int, augment: AugmentConfig | None, seed: int, epoch: int) -> tf.Tensor:
    """Every example's random draws for the epoch (augment.draw_uniforms), rows by example index."""
    return draw_uniforms(fold_in(tf.constant([seed, epoch], tf.int64), 0), examples, augment or AugmentConfig())


def _epoch_rooms(waveforms: np.ndarray, augment: AugmentConfig | None, seed: int, epoch: int,
                 sample_rate: int) -> tf.Tensor:
    """The reverb's rooms of the epoch (augment.room_spectra); no rows without reverb."""
    cfg, clip = augment or AugmentConfig(), np.shape(waveforms)[1]
    rooms = None
    if augment is not None:
        rooms = room_spectra(fold_in(tf.constant([seed, epoch], tf.int64), 1), max(1, min(len(waveforms), ROOMS)),
                             augment, clip, sample_rate)
    if rooms is None:
        rooms = tf.zeros([0, reverb_fft_length(clip, cfg.reverb_rt60_s, sample_rate) // 2 + 1], tf.complex64)
    return rooms


def _clip_function(waveforms: np.ndarray, background: np.ndarray | None, augment: AugmentConfig | None, seed: int,
                   sample_rate: int, band_limit_hz: float | None = None):
    """A tf.function (indices [B], their uniforms [B, K], the epoch's rooms) -> those clips [B, samples] as
    make_dataset's frontend receives them: silence filled with background noise, then augmented when `augment` is
    given. band_limit_hz: the frontend's (FrontendConfig.band_limit_hz): low-passes that would not change its
    features are skipped."""
    waveforms = np.asarray(waveforms, np.float32)
    clip = waveforms.shape[1]
    if background is not None:
        background = np.asarray(background, np.float32)
        if background.ndim != 2 or background.shape[1] < clip:
            raise ValueError(f"background must be [rows, >= {clip}] (see load_background), got {background.shape}")
        if not len(background):
            background = None
    cfg = augment or AugmentConfig()

    def make():
        wave_var = _resident(waveforms)
        silent = tf.Variable(~waveforms.any(axis=1), trainable=False)  # kept alive by the function that reads it
        bg = None if background is None else Background(_resident(background), *background.shape)
        rooms_shape = [None, reverb_fft_length(clip, cfg.reverb_rt60_s, sample_rate) // 2 + 1]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, table_width(cfg)]),
                                      tf.TensorSpec(rooms_shape, tf.complex64)])
        def clips(indices, u, rooms):
            x = tf.ensure_shape(tf.gather(wave_var, indices), [None, clip])
            if bg is not None:
                x = fill_silence(x, u, bg, cfg.silence_dbfs, tf.gather(silent, indices))
            if augment is not None:
                x = augment_batch(x, u, augment, rooms if augment.reverb_prob > 0 else None, bg, sample_rate,
                                  band_limit_hz)
            return x
        return clips
    arrays = [waveforms] if background is None else [waveforms, background]
    return _kept(arrays, ("clips", augment, seed, sample_rate, band_limit_hz), make), arrays


def _feature_function(waveforms: np.ndarray, background: np.ndarray | None, augment: AugmentConfig | None,
                      seed: int, frontend_cfg: FrontendConfig):
    """_clip_function's clips through the frontend, then SpecAugment when augmenting: (indices, uniforms, rooms) ->
    features [B, ...]."""
    clips, arrays = _clip_function(waveforms, background, augment, seed, frontend_cfg.sample_rate,
                                   frontend_cfg.band_limit_hz)

    def make():
        frontend = make_frontend(frontend_cfg)
        spec_ok = augment is not None and frontend_cfg.kind != "raw"

        @tf.function(input_signature=clips.input_signature)
        def features(indices, u, rooms):
            feats = frontend(clips(indices, u, rooms))
            return spec_augment(feats, u, augment) if spec_ok else feats
        return features
    return _kept(arrays, ("features", augment, seed, frontend_cfg), make)


def prepared_waveforms(waveforms: np.ndarray, *, background: np.ndarray | None = None,
                       augment: AugmentConfig | None = None, seed: int = 0, epoch: int = 0,
                       sample_rate: int = SAMPLE_RATE, batch_size: int = 256) -> np.ndarray:
    """The clips [N, samples] exactly as make_dataset hands them to its frontend (same seeds), in order, as numpy:
    for a frontend that runs outside TensorFlow (speech_embedding)."""
    clips, _ = _clip_function(waveforms, background, augment, seed, sample_rate)
    uniforms = _epoch_uniforms(len(waveforms), augment, seed, epoch)
    rooms = _epoch_rooms(waveforms, augment, seed, epoch, sample_rate)
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(waveforms)), uniforms)).batch(batch_size)
    ds = ds.map(lambda i, u: clips(i, u, rooms), num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
    parts = [x.numpy() for x in fixed_parallelism(ds)]
    return np.concatenate(parts) if parts else np.zeros(np.shape(waveforms), np.float32)


def features_for(waveforms: np.ndarray, frontend_cfg: FrontendConfig, batch_size: int = 256, *,
                 background: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Evaluation features (no augmentation, original order) as numpy [N, frames, bins] ([N, samples]
    for raw); silence examples get deterministic background noise when `background` is given."""
    if frontend_cfg.kind == "speech_embedding":
        return speech_embedding.embed(prepared_waveforms(waveforms, background=background, seed=seed))
    ds = make_dataset(waveforms, np.zeros(len(waveforms), np.int32), frontend_cfg=frontend_cfg,
                      batch_size=batch_size, training=False, background=background, seed=seed)
    parts = [f.numpy() for f, _ in ds]
    if parts:
        return np.concatenate(parts)
    shape = frontend_cfg.output_shape(np.shape(waveforms)[1])
    return np.zeros((0, *shape), np.float32)
