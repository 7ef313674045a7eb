"""Self-training's first half: a teacher model labels unlabelled recordings, and its confident answers become
training data (a manifest that kws_zoo.data.pseudo reads; a recipe adds it with `extra_train`).

The recordings' own labels are never read for the choice: a folder in a labelled layout is listed like any
other, and every file is a candidate. Where the folder does have labels, the summary reports how often the kept
pseudo-labels agree with them, as a diagnostic of the teacher, nothing more.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from kws_zoo.core.errors import ConfigError, DataError
from kws_zoo.core.files import atomic_write_json
from kws_zoo.data import load_dataset
from kws_zoo.data.pipeline import drop_bad, load_waveforms
from kws_zoo.data.pseudo import MANIFEST_KIND
from kws_zoo.evaluate.accuracy import data_config
from kws_zoo.evaluate.predictor import load_predictor


def pseudo_label(model: str, data: str, out: str, *, threshold: float = 0.9, speakers: str = "all",
                 runtime: str = "keras", progress: bool = True) -> dict:
    """Labels every WAV of `data` (a dataset directory, 'fsdd', ...; one half of its speakers with `speakers`)
    with `model` and writes the manifest of those whose top probability is at least `threshold` to `out`
    (atomically). Returns the summary (also in the manifest)."""
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    teacher = load_predictor(model, runtime=runtime)
    cfg = dataclasses.replace(data_config(data, model, teacher.labels), speakers=speakers)
    listed = load_dataset(cfg)
    examples = [e for split in listed.splits.values() for e in split]
    if not examples:
        raise DataError(f"{data}: no recordings (speakers {speakers})")
    waves, bad = load_waveforms(examples, clip_samples=teacher.clip_samples, skip_bad=True, progress=progress)
    examples = drop_bad(examples, bad)
    probs = teacher.scores(teacher.features(waves))
    top, confidence = probs.argmax(axis=1), probs.max(axis=1)
    kept = np.flatnonzero(confidence >= threshold)
    summary = {"teacher": os.fspath(model), "runtime": teacher.runtime, "data": cfg.to_dict(),
               "threshold": threshold, "candidates": len(examples), "unreadable": len(bad), "kept": int(kept.size),
               "kept_per_label": {name: int(np.sum(top[kept] == i)) for i, name in enumerate(teacher.labels)}}
    model_index = {name: i for i, name in enumerate(teacher.labels)}
    truth = np.array([model_index.get(listed.labels[e.label], -1) for e in examples])  # diagnostic only
    if kept.size and np.all(truth >= 0):
        summary["agreement_with_folder_labels"] = float(np.mean(truth[kept] == top[kept]))
    rows = [{"path": os.path.abspath(examples[i].path), "label": teacher.labels[top[i]],
             "confidence": round(float(confidence[i]), 4)} for i in kept]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    atomic_write_json(out, {"kind": MANIFEST_KIND, "labels": list(teacher.labels), **summary, "examples": rows})
    return summary
