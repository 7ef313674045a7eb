"""The Beam corpus pipeline (kws_zoo[scale]) against the default generator, on a tiny vocabulary.

One make_corpus corpus and two Beam corpora (1 and 3 DirectRunner worker processes, with augmented copies and
log-mel features) of the same plan are built once per module: 2 words x 3 espeak speakers, and the background
noise files. apache_beam is imported at the top on purpose: without the extra these tests fail, never skip.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import apache_beam  # the `scale` extra must be installed (make test installs it)
import numpy as np
import pytest

from kws_zoo import cli
from kws_zoo.core.compat import tf
from kws_zoo.core.errors import DataError, ExtraMissing
from kws_zoo.data.audio import read_wav, read_wav_bytes, wav_bytes
from kws_zoo.data.augment import AugmentConfig, augment_waveform
from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.data.pipeline import features_for, load_background
from kws_zoo.data.splits import gsc_split
from kws_zoo.data.synthetic import beam_corpus
from kws_zoo.data.synthetic.beam_corpus import augmented_key, corpus_manifest, make_beam_corpus
from kws_zoo.data.synthetic.corpus import make_corpus, plan_corpus, stable_seed
from kws_zoo.data.synthetic.corpus_records import (MANIFEST, claim_records_dir, decode_record, iter_records,
                                                   read_beam_corpus, read_beam_features, shard_of)

# Its module-scoped fixtures render corpora: under pytest-xdist it shares the synthetic-corpus worker.
pytestmark = pytest.mark.xdist_group("test_synthetic")

WORDS, SPEAKERS, SEED, SHARDS = ("yes", "no"), 3, 3, 3  # seed 3: one speaker per split
PLAN = dict(speakers=SPEAKERS, takes=1, seed=SEED, engines=("espeak",))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("beam") / "make_corpus"
    make_corpus(out, WORDS, workers=1, progress=False, **PLAN)
    return out


def _beam(tmp_path_factory, workers: int) -> Path:
    out = tmp_path_factory.mktemp("beam") / f"workers{workers}"
    make_beam_corpus(out, WORDS, workers=workers, shards=SHARDS, augment_copies=1, frontend=FrontendConfig(),
                     progress=False, **PLAN)
    return out


@pytest.fixture(scope="module")
def beam1(tmp_path_factory) -> Path:
    return _beam(tmp_path_factory, 1)


@pytest.fixture(scope="module")
def beam3(tmp_path_factory) -> Path:
    return _beam(tmp_path_factory, 3)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _originals(root: Path) -> dict[str, bytes]:
    return {key: wav for key, wav, _ in read_beam_corpus(root) if not key.startswith("_augmented/")}


@pytest.mark.parametrize("which", ["beam1", "beam3"])
def test_records_are_the_files_make_corpus_writes(which, reference, request):
    records = _originals(request.getfixturevalue(which))
    files = {rel: data for rel, data in _files(reference).items() if rel.endswith(".wav")}
    assert sorted(records) == sorted(files)  # every clip and background file, nothing else
    assert sum(rel.startswith("_background_noise_/") for rel in files) >= 6
    differing = [key for key in files if records[key] != files[key]]
    assert not differing, differing


def test_worker_count_changes_no_byte(beam1, beam3):
    one, three = _files(beam1), _files(beam3)
    assert sorted(one) == sorted(three) and len(one) == SHARDS + 1  # the shards and the manifest
    assert not [name for name in one if one[name] != three[name]]
    manifest = json.loads(one[MANIFEST])
    keys = [r.key for r in iter_records(beam1)]
    assert len(keys) == len(set(keys)) == manifest["records"]
    for shard, name in enumerate(manifest["shards"]):
        records = tf.data.TFRecordDataset(str(beam1 / name)).as_numpy_iterator()
        in_shard = [decode_record(data).key for data in records]
        assert in_shard == sorted(in_shard), name  # sorted by key within a shard
        assert {shard_of(key, SHARDS) for key in in_shard} <= {shard}, name
    labels = {r.label for r in iter_records(beam1)}
    assert labels == {*WORDS, "_background_noise_"}


def test_features_equal_the_training_pipelines(beam1):
    stored = dict(read_beam_features(beam1))
    wavs = {key: wav for key, wav, _ in read_beam_corpus(beam1)}
    assert set(stored) == {key for key in wavs if not key.startswith("_background_noise_/")}
    keys = sorted(stored)
    expected = features_for(np.stack([read_wav_bytes(wavs[k], k) for k in keys]), FrontendConfig())
    assert np.stack([stored[k] for k in keys]).shape == expected.shape == (len(keys), 98, 40)
    # up to float rounding: the filterbank's product sums in a batch-size-dependent order on some processors
    np.testing.assert_allclose(np.stack([stored[k] for k in keys]), expected, rtol=1e-6, atol=1e-6)


def test_augmented_copies_of_training_clips(beam1, reference):
    wavs = dict((key, wav) for key, wav, _ in read_beam_corpus(beam1))
    clips = [rel for rel in _files(reference) if rel.endswith(".wav") and not rel.startswith("_")]
    training = [rel for rel in clips if gsc_split(rel) == "train"]
    assert 0 < len(training) < len(clips)  # the seed puts a speaker outside training: it gets no copy
    copies = sorted(key for key in wavs if key.startswith("_augmented/"))
    assert copies == sorted(augmented_key(rel, 0) for rel in training)
    background = load_background(sorted(str(p) for p in (reference / "_background_noise_").glob("*.wav")))
    run = tf.function(lambda x, seed: augment_waveform(x, seed, AugmentConfig(), tf.constant(background)),
                      autograph=False)
    for rel in training:
        s = stable_seed(SEED, "augment", rel, 0)
        again = run(tf.constant(read_wav(reference / rel)), tf.constant([s >> 32, s & 0xFFFFFFFF], tf.int64))
        assert wavs[augmented_key(rel, 0)] == wav_bytes(again.numpy()), rel
        assert wavs[augmented_key(rel, 0)] != wavs[rel]


def test_unpacked_corpus_is_make_corpus_folder(beam3, reference, tmp_path):
    out = tmp_path / "unpacked"
    cli.main(["unpack-corpus", str(beam3), "--out", str(out), "--no-progress"])
    unpacked, made = _files(out), _files(reference)
    augmented = [rel for rel in unpacked if rel.startswith("_augmented/")]
    assert augmented and sorted(set(unpacked) - set(augmented)) == sorted(made)
    assert not [rel for rel in made if unpacked[rel] != made[rel]]  # clips, noise, lists, card, stamp


def test_output_directory_errors(beam1, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        make_beam_corpus(not_a_dir, WORDS, progress=False, **PLAN)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not corpus shards"):
        make_beam_corpus(other, WORDS, progress=False, **PLAN)
    with pytest.raises(DataError, match="other settings"):  # beam1 was made with copies, features and 3 shards
        make_beam_corpus(beam1, WORDS, progress=False, **PLAN)
    same = corpus_manifest(plan_corpus(WORDS, **PLAN), 1, AugmentConfig(), FrontendConfig(), SHARDS)
    assert same == json.loads((beam1 / MANIFEST).read_text())
    claim_records_dir(str(beam1), same)  # the same corpus again: a re-run may rewrite it
    assert sorted(p.name for p in beam1.iterdir()) == sorted([MANIFEST, *same["shards"]])


def test_local_runner_refuses_beam_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["make-data", "--words", "yes", "--shards", "2", "--no-progress"])
    assert exit_info.value.code == 2 and "--shards: only with --runner beam" in capsys.readouterr().err


def test_the_pinned_beam_is_installed():
    assert f'"apache-beam=={apache_beam.__version__}"' in (Path(__file__).parents[3] / "setup.py").read_text()


def test_missing_beam_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam now raises ImportError
    with pytest.raises(ExtraMissing, match=r"pip install 'kws_zoo\[scale\]'"):
        beam_corpus.import_beam()


def test_direct_runner_options():
    options = beam_corpus.pipeline_options(3, "--direct_running_mode=in_memory")
    assert options.get_all_options()["direct_num_workers"] == 3
    assert options.get_all_options()["direct_running_mode"] == "in_memory"  # what the user passed wins
    flink = beam_corpus.pipeline_options(3, "--runner=FlinkRunner --flink_master=host:8081").get_all_options()
    assert flink["runner"] == "FlinkRunner" and flink["flink_master"] == "host:8081"
