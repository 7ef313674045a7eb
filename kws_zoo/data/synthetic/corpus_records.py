"""A corpus as sharded TFRecord files (what the Beam pipeline, beam_corpus.py, writes), and reading it back.

A directory (a local path, or a gs:// URL: TensorFlow's file systems read and write it) holds
  corpus-00000-of-00004.tfrecord ...  tf.train.Example records sorted by key; a key's shard is a stable hash of it
  beam_corpus.json                    the manifest (seed, settings, shard names, counts), written last: a directory
                                      with it is complete
Every record has `key` (the file's path in make_corpus's layout, 'yes/1a2b3c4d_nohash_0.wav'), `label` (its folder:
the word, or '_background_noise_') and `wav` (the bytes make_corpus writes to that file); with precomputed features
also `features` (float32, row-major) and `features_shape`. Augmented copies of training clips have keys under
'_augmented/' ('_augmented/yes/1a2b3c4d_nohash_1000.wav': a GSC-layout folder for a recipe's extra_train).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterator, NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

from kws_zoo.core.compat import tf
from kws_zoo.core.errors import DataError
from kws_zoo.core.files import atomic_path, atomic_write_bytes, atomic_write_text
from kws_zoo.data.synthetic.corpus import (BACKGROUND_DIR, GENERATOR_VERSION, claim_corpus_dir, stable_seed,
                                           write_card)

MANIFEST = "beam_corpus.json"
FORMAT = "kws_zoo corpus records"
FORMAT_VERSION = 1  # bump when a record's features change
AUGMENTED_DIR = "_augmented"
SHARD_RE = re.compile(r"^corpus-\d{5}-of-\d{5}\.tfrecord$")
_KEY_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.'-]*$")


class CorpusRecord(NamedTuple):
    key: str
    label: str
    wav: bytes
    features: np.ndarray | None  # float32 [frames, bins] when the corpus was made with a frontend


def is_remote(path) -> bool:
    return "://" in str(path)


def join(root, name: str) -> str:
    return f"{str(root).rstrip('/')}/{name}" if is_remote(root) else os.path.join(root, name)


def shard_name(index: int, count: int) -> str:
    return f"corpus-{index:05d}-of-{count:05d}.tfrecord"


def shard_of(key: str, count: int) -> int:
    """The shard a key goes to: a hash of the key alone, so no worker count or runner can move it."""
    return stable_seed("shard", key) % count


def label_of(key: str) -> str:
    return PurePosixPath(key).parent.name


def encode_record(key: str, wav: bytes, features: np.ndarray | None = None) -> bytes:
    feature = {"key": _bytes(key.encode()), "label": _bytes(label_of(key).encode()), "wav": _bytes(wav)}
    if features is not None:
        feature["features"] = tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(features)))
        feature["features_shape"] = tf.train.Feature(int64_list=tf.train.Int64List(value=np.shape(features)))
    # deterministic: sorted map keys; otherwise the features' order follows each process's hashing
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def decode_record(data: bytes) -> CorpusRecord:
    feature = tf.train.Example.FromString(data).features.feature
    features = None
    if "features" in feature:
        shape = tuple(feature["features_shape"].int64_list.value)
        features = np.asarray(feature["features"].float_list.value, np.float32).reshape(shape)
    return CorpusRecord(feature["key"].bytes_list.value[0].decode(), feature["label"].bytes_list.value[0].decode(),
                        feature["wav"].bytes_list.value[0], features)


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def write_shard(path: str, records: Sequence[bytes]) -> None:
    """One whole shard file. Locally through the atomic writer; an object store (gs://) publishes an object only
    when its writer closes. Either way a retried writer (Beam retries failed bundles) leaves one whole file."""
    if is_remote(path):
        _write_records(path, records)
        return
    with atomic_path(path) as tmp:
        _write_records(tmp, records)


def _write_records(path: str, records: Sequence[bytes]) -> None:
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)


# ---- the directory -------------------------------------------------------------------------------------------

def claim_records_dir(out: str, manifest: dict) -> None:
    """Makes `out` ready for the corpus `manifest` describes: it must be empty or missing, or hold only shard files
    (a killed run) or the same corpus (a re-run rewrites the same bytes). Shard files of another shard count are
    removed. Remote directories are not checked."""
    if is_remote(out):
        return
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError(f"{out}: not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"{out}: cannot create the output directory ({err.strerror})") from None
    if (root / MANIFEST).exists():
        theirs = json.loads((root / MANIFEST).read_text())
        if theirs != manifest:
            changed = sorted(k for k in set(theirs) | set(manifest) if theirs.get(k) != manifest.get(k))
            raise DataError(f"{out} holds a corpus made with other settings ({', '.join(changed)} differ); "
                            "use another output directory")
    # a shard's temporary file (atomic_path: '<shard>.tmp<pid>') counts as a shard
    others = [p.name for p in root.iterdir() if p.name != MANIFEST and not SHARD_RE.match(p.name.split(".tmp")[0])]
    if others:
        raise DataError(f"{out} already holds files that are not corpus shards ({', '.join(sorted(others)[:3])}); "
                        "choose an empty directory")
    for path in root.iterdir():
        if path.name != MANIFEST and path.name not in manifest["shards"]:  # another run's or a temporary
            path.unlink()


def write_manifest(out: str, manifest: dict) -> None:
    text = json.dumps(manifest, indent=1) + "\n"
    if is_remote(out):
        with tf.io.gfile.GFile(join(out, MANIFEST), "w") as f:
            f.write(text)
    else:
        atomic_write_text(join(out, MANIFEST), text)


def read_manifest(path) -> dict:
    name = join(path, MANIFEST)
    if not tf.io.gfile.exists(name):
        raise DataError(f"{path}: no {MANIFEST}; not a finished corpus of TFRecords (make-data --runner beam)")
    with tf.io.gfile.GFile(name) as f:
        manifest = json.loads(f.read())
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{name}: not a {FORMAT} manifest of version {FORMAT_VERSION}")
    return manifest


def iter_records(path) -> Iterator[CorpusRecord]:
    """Every record of the corpus at `path`, shard by shard (sorted by key within a shard)."""
    manifest = read_manifest(path)
    for shard in manifest["shards"]:
        for data in tf.data.TFRecordDataset(join(path, shard)).as_numpy_iterator():
            yield decode_record(data)


def read_beam_corpus(path) -> Iterator[tuple[str, bytes, str]]:
    """(key, WAV file bytes, label) of every record of the corpus at `path`."""
    for record in iter_records(path):
        yield record.key, record.wav, record.label


def read_beam_features(path) -> Iterator[tuple[str, np.ndarray]]:
    """(key, features float32 [frames, bins]) of every record that has precomputed features."""
    for record in iter_records(path):
        if record.features is not None:
            yield record.key, record.features


def unpack_beam_corpus(path, out_dir, *, progress: bool = True) -> dict:
    """Writes the corpus at `path` as make_corpus's folder (the same files, lists and card) in `out_dir`, with
    augmented copies under out_dir/_augmented/; only missing files are written. Returns the card."""
    manifest = read_manifest(path)
    if manifest["generator_version"] != GENERATOR_VERSION:
        raise DataError(f"{path}: made by corpus generator v{manifest['generator_version']}, this is "
                        f"v{GENERATOR_VERSION}; make it again")
    out = Path(out_dir)
    claim_corpus_dir(out, manifest["seed"])
    (out / BACKGROUND_DIR).mkdir(exist_ok=True)
    for key, wav, _ in tqdm(read_beam_corpus(path), total=manifest["records"], unit="file", disable=not progress,
                            desc="unpacking"):
        target = out / _checked_key(key, path)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, wav)
    return write_card(out, manifest["seed"], manifest["settings"])


def _checked_key(key: str, source) -> str:
    """A key as a relative path that stays inside the output folder (a record file may come from elsewhere)."""
    parts = key.split("/")
    if len(parts) < 2 or not key.endswith(".wav") or not all(_KEY_PART_RE.match(p) for p in parts):
        raise DataError(f"{source}: record key {key!r} is not a relative path like 'yes/1a2b3c4d_nohash_0.wav'")
    return key
