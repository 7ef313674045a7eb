"""The synthetic corpus as an Apache Beam pipeline (the optional extra: pip install kws_zoo[scale]).

TTS rendering, augmented copies and precomputed features in one pipeline that writes sharded TFRecords
(corpus_records.py), on the DirectRunner with several local processes or on any runner Beam options name
(Dataflow, Flink, Spark: docs/scale.md). It renders make_corpus's own plan (plan_corpus): one element per speaker
task, so one TTS process renders all of a speaker's clips as in make_corpus, and one per background file.

Deterministic for a seed whatever the number of workers: every record is a pure function of the plan and its key,
its shard a hash of its key, and each shard is sorted by key and written whole, so the files are the same bytes
for any worker count (and a retried shard writer rewrites the same file). make_corpus stays the default
generator; unpack_beam_corpus turns this output into exactly make_corpus's folder.
"""
from __future__ import annotations

import json
import math
import shlex
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Iterator, Mapping, Sequence

import numpy as np

from kws_zoo.core.compat import tf
from kws_zoo.core.errors import ConfigError, DataError, ExtraMissing
from kws_zoo.data.audio import read_wav_bytes, wav_bytes
from kws_zoo.data.augment import AugmentConfig, augment_waveform
from kws_zoo.data.frontends import FrontendConfig, make_frontend
from kws_zoo.data.pipeline import background_rows
from kws_zoo.data.splits import gsc_split
from kws_zoo.data.synthetic.corpus import (BACKGROUND_DIR, GENERATOR_VERSION, GSC_V2_WORDS, BackgroundTask,
                                           CorpusPlan, SpeakerTask, clip_path, plan_corpus, stable_seed)
from kws_zoo.data.synthetic.corpus_records import (AUGMENTED_DIR, FORMAT, FORMAT_VERSION, claim_records_dir,
                                                   encode_record, is_remote, join, shard_name, shard_of,
                                                   write_manifest, write_shard)
from kws_zoo.data.synthetic.defaults import DEFAULT_ENGINES, DEFAULT_SPEAKERS
from kws_zoo.data.synthetic.rooms import copy_name

RECORDS_PER_SHARD = 1000  # ~32 MB of 1 s clips per file: big enough to read fast, small enough to rewrite
LOCAL_RUNNERS = ("direct", "directrunner")  # lower case, as Beam matches runner names


def import_beam():
    """apache_beam, or a one-line error naming the extra (an optional, heavy dependency, so imported only here)."""
    try:
        import apache_beam
    except ImportError:
        raise ExtraMissing("the Beam corpus pipeline needs Apache Beam: pip install 'kws_zoo[scale]'") from None
    return apache_beam


def augmented_key(key: str, copy: int) -> str:
    """'_augmented/yes/1a2b3c4d_nohash_1000.wav' for copy 1 of 'yes/1a2b3c4d_nohash_0.wav' (rooms.copy_name)."""
    path = PurePosixPath(key)
    return f"{AUGMENTED_DIR}/{path.parent.name}/{copy_name(path, copy)}"


def is_background(key: str) -> bool:
    return key.startswith(f"{BACKGROUND_DIR}/")


def is_training_clip(key: str) -> bool:
    """Only training-split clips get augmented copies (as rooms.py): validation and test stay as spoken."""
    return not is_background(key) and gsc_split(key) == "train"


def planned_keys(plan: CorpusPlan, copies: int) -> list[str]:
    """Every record key the pipeline writes for `plan`, computed without rendering (for shards and the manifest)."""
    clips = [clip_path(w, s.id, t) for s in plan.speakers for w in plan.words for t in range(plan.takes)]
    copied = [augmented_key(key, k) for key in clips if is_training_clip(key) for k in range(copies)]
    return sorted(clips + [f"{BACKGROUND_DIR}/{name}" for name in plan.background_names()] + copied)


# ---- steps: functions and callable objects, no Beam base class (this module imports Beam only to run); the objects
# build their TensorFlow state on first use, once per worker ------------------------------------------------------

def render_task(task: SpeakerTask | BackgroundTask) -> Iterator[tuple[str, bytes]]:
    for key, audio in task.render():
        yield key, wav_bytes(audio)


class AugmentedCopies:
    """(key, wav) of a training clip -> its `copies` augmented copies, made with kws_zoo's own stateless waveform
    augmentation (augment.augment_waveform) over the corpus's own background noise; copy k of a key is seeded by
    stable_seed(seed, 'augment', key, k), so it is the same on any worker."""

    def __init__(self, seed: int, copies: int, cfg: AugmentConfig):
        self.seed, self.copies, self.cfg = seed, copies, cfg
        self._run = self._background = None

    def __call__(self, record: tuple[str, bytes], background: Sequence[tuple[str, bytes]]):
        key, wav = record
        if self._run is None:  # sorted: a side input's order is the runner's
            clips = [read_wav_bytes(data, name) for name, data in sorted(background)]
            self._background = tf.constant(background_rows(clips))
            self._run = tf.function(lambda x, seed, bg: augment_waveform(x, seed, self.cfg, bg), autograph=False)
        x = read_wav_bytes(wav, key)
        for k in range(self.copies):
            s = stable_seed(self.seed, "augment", key, k)
            seed = tf.constant([s >> 32, s & 0xFFFFFFFF], tf.int64)
            yield augmented_key(key, k), wav_bytes(self._run(tf.constant(x), seed, self._background).numpy())


class WithFeatures:
    """(key, wav) -> (key, wav, features of the clip as stored, 16-bit); background files get none. One clip at a
    time in a graph, so the values do not depend on how the runner groups or spreads clips; make_dataset's batched
    features equal them up to float rounding (the filterbank's matrix product sums in an order that depends on the
    number of rows on some processors)."""

    def __init__(self, cfg: FrontendConfig):
        self.cfg = cfg
        self._frontend = None

    def __call__(self, record: tuple[str, bytes]) -> tuple[str, bytes, np.ndarray | None]:
        key, wav = record
        if is_background(key):
            return key, wav, None
        if self._frontend is None:
            frontend = make_frontend(self.cfg)
            self._frontend = tf.function(lambda x: frontend(x[None])[0], autograph=False)
        return key, wav, self._frontend(tf.constant(read_wav_bytes(wav, key))).numpy()


def without_features(record: tuple[str, bytes]) -> tuple[str, bytes, None]:
    return (*record, None)


def keyed_by_shard(record: tuple[str, bytes, np.ndarray | None], shards: int) -> tuple[int, tuple[str, bytes]]:
    key, wav, features = record
    return shard_of(key, shards), (key, encode_record(key, wav, features))


class ShardWriter:
    """(shard, [(key, record) or None]) -> the shard file, sorted by key; None marks a shard that must exist even
    when no key hashed to it."""

    def __init__(self, out: str, names: Sequence[str]):
        self.out, self.names = out, list(names)

    def __call__(self, item) -> str:
        shard, records = item
        ordered = sorted(r for r in records if r is not None)
        write_shard(join(self.out, self.names[shard]), [data for _, data in ordered])
        return self.names[shard]


# ---- the pipeline -------------------------------------------------------------------------------------------

def pipeline_options(workers: int, beam_args: Sequence[str] | str = ()):
    """Beam options from command-line style `beam_args` (passed through: --runner=DataflowRunner --project=...);
    for the local runner (no --runner, or DirectRunner), `workers` processes unless beam_args set them."""
    import_beam()
    # the optional extra, checked just above
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, WorkerOptions

    args = shlex.split(beam_args) if isinstance(beam_args, str) else list(beam_args)
    options = PipelineOptions(args)
    if is_local(options):
        direct = options.view_as(DirectOptions)
        given = " ".join(args)
        if "direct_num_workers" not in given:
            direct.direct_num_workers = workers
        if "direct_running_mode" not in given:
            direct.direct_running_mode = "multi_processing"  # real processes: TTS and TF hold the GIL otherwise
        if "sdk_harness_log_level" not in given:  # the workers log every start-up step at INFO
            options.view_as(WorkerOptions).default_sdk_harness_log_level = "WARNING"
    return options


def is_local(options) -> bool:
    from apache_beam.options.pipeline_options import StandardOptions  # the optional extra

    return (options.view_as(StandardOptions).runner or "direct").lower() in LOCAL_RUNNERS


def local_runner(options):
    """The DirectRunner's batch engine, named: in Beam 2.77 the DirectRunner first tries the Prism runner (a
    binary it downloads, which ignores direct_num_workers) and falls back to this one only when that fails. The
    options go to the workers as the DirectRunner sends them (its provision info)."""
    # the optional extra
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo, FnApiRunner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return FnApiRunner(provision_info=ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(
        pipeline_options=encoded)))


def make_beam_corpus(out_dir, words: Sequence[str] = GSC_V2_WORDS, *, speakers: int | None = DEFAULT_SPEAKERS,
                     takes: int = 1, seed: int = 0, engines: Sequence[str] = DEFAULT_ENGINES,
                     texts: Mapping[str, str] | None = None, babble_words: Sequence[str] | None = None,
                     workers: int = 2, beam_args: Sequence[str] | str = (), shards: int | None = None,
                     augment_copies: int = 0, augment: AugmentConfig | None = None,
                     frontend: FrontendConfig | None = None, progress: bool = True) -> dict:
    """Writes make_corpus's corpus (same arguments) as sharded TFRecords in `out_dir` (a local folder or a URL such
    as gs://bucket/corpus) with a Beam pipeline, and returns its manifest.

    workers: DirectRunner processes (ignored by other runners); beam_args: Beam pipeline options, passed through;
    shards: files (default one per RECORDS_PER_SHARD records); augment_copies: augmented copies of each training
    clip (`augment`, default AugmentConfig()); frontend: also store each clip's features."""
    beam = import_beam()
    if workers < 1 or augment_copies < 0 or (shards is not None and shards < 1):
        raise ConfigError("workers and shards must be >= 1 and augment_copies >= 0")
    plan = plan_corpus(words, speakers=speakers, takes=takes, seed=seed, engines=engines, texts=texts,
                       babble_words=babble_words)
    plan.check_engines()
    if frontend is not None:
        make_frontend(frontend)  # a frontend that runs outside TensorFlow fails here, before any rendering
    augment = (augment or AugmentConfig()) if augment_copies else None
    manifest = corpus_manifest(plan, augment_copies, augment, frontend, shards)
    names = manifest["shards"]
    claim_records_dir(str(out_dir), manifest)
    options = pipeline_options(workers, beam_args)
    tasks = plan.tasks()
    _say(progress, f"beam corpus: {len(tasks)} render tasks -> {manifest['records']} records in {len(names)} "
                   f"shard(s) on {_runner_text(options)}")
    start = time.monotonic()
    with beam.Pipeline(runner=local_runner(options) if is_local(options) else None, options=options) as pipeline:
        _build(beam, pipeline, tasks, str(out_dir), names, seed, augment_copies, augment, frontend)
    missing = [] if is_remote(out_dir) else [n for n in names if not Path(out_dir, n).is_file()]
    if missing:
        raise DataError(f"{out_dir}: the pipeline finished without writing {missing}")
    write_manifest(str(out_dir), manifest)
    _say(progress, f"beam corpus: {out_dir} written in {time.monotonic() - start:.1f} s")
    return manifest


def corpus_manifest(plan: CorpusPlan, copies: int, augment: AugmentConfig | None, frontend: FrontendConfig | None,
                    shards: int | None) -> dict:
    """The manifest of the corpus make_beam_corpus writes (as its JSON file reads back: lists, not tuples)."""
    keys = planned_keys(plan, copies)
    shards = shards or max(1, math.ceil(len(keys) / RECORDS_PER_SHARD))
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "generator_version": GENERATOR_VERSION,
                "seed": plan.seed, "settings": plan.settings, "texts": dict(plan.texts),
                "babble_words": plan.babble_words, "augment_copies": copies,
                "augment": augment.to_dict() if augment else None,
                "frontend": frontend.to_dict() if frontend else None,
                "shards": [shard_name(i, shards) for i in range(shards)], "records": len(keys),
                "background": sum(map(is_background, keys)),
                "copies": sum(k.startswith(f"{AUGMENTED_DIR}/") for k in keys)}
    manifest["clips"] = manifest["records"] - manifest["background"] - manifest["copies"]
    return json.loads(json.dumps(manifest))


def _build(beam, pipeline, tasks, out: str, names: list[str], seed: int, copies: int,
           augment: AugmentConfig | None, frontend: FrontendConfig | None) -> None:
    records = (pipeline | "plan" >> beam.Create(tasks)
               | "spread tasks" >> beam.Reshuffle()  # tasks to every worker, not in the one bundle Create made
               | "render" >> beam.FlatMap(render_task))
    if copies:
        background = records | "background" >> beam.Filter(lambda record: is_background(record[0]))
        copied = (records | "training clips" >> beam.Filter(lambda record: is_training_clip(record[0]))
                  # the bound method: Beam hands a callable object the element alone, without the side input
                  | "augment" >> beam.FlatMap(AugmentedCopies(seed, copies, augment).__call__,
                                              beam.pvalue.AsList(background)))
        records = (records, copied) | "with copies" >> beam.Flatten()
    records = records | "features" >> beam.Map(WithFeatures(frontend) if frontend else without_features)
    every_shard = pipeline | "every shard" >> beam.Create([(i, None) for i in range(len(names))])
    ((records | "encode" >> beam.Map(keyed_by_shard, len(names)), every_shard) | "all" >> beam.Flatten()
     | "by shard" >> beam.GroupByKey() | "write shards" >> beam.Map(ShardWriter(out, names)))


def _runner_text(options) -> str:
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions  # the optional extra

    if not is_local(options):
        return options.view_as(StandardOptions).runner
    direct = options.view_as(DirectOptions)
    return f"the DirectRunner's FnApiRunner ({direct.direct_num_workers} worker(s), {direct.direct_running_mode})"


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)
