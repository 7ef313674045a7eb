"""Pseudo-labelled audio: a manifest that kws_zoo.workflows.pseudo_label wrote (a teacher model's confident answers
on unlabelled recordings), read as a dataset whose examples are all training examples.

Manifest (JSON): {"labels": [teacher label names], "examples": [{"path": WAV, "label": name, "confidence": p},
...], "teacher": ..., "threshold": ..., "data": ...}. Paths are absolute, or relative to the manifest's folder.
"""
from __future__ import annotations

import json

from kws_zoo.core.errors import DataError
from kws_zoo.data.base import DataConfig, Example, KwsData
from kws_zoo.data.splits import SPLITS, speaker_of

MANIFEST_KIND = "kws_zoo pseudo labels"


def load_pseudo(cfg: DataConfig) -> KwsData:
    if cfg.path is None:
        raise DataError("a pseudo-labelled dataset needs DataConfig.path (a manifest from `kws-zoo pseudo-label`)")
    path = cfg.resolved_path()
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: pseudo-label manifest not found (write it with `kws-zoo pseudo-label`)") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable pseudo-label manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise DataError(f"{path}: not a pseudo-label manifest (no \"kind\": \"{MANIFEST_KIND}\")")
    teacher_labels = manifest.get("labels") or []
    rows = manifest.get("examples", [])
    for row in rows:
        if row.get("label") not in teacher_labels:
            raise DataError(f"{path}: example {row.get('path')!r} has label {row.get('label')!r}, not one of "
                            f"{teacher_labels}")
    if not rows:
        raise DataError(f"{path}: the manifest holds no examples (threshold too high?)")
    # Only the labels some example has: a dataset that adds these need not know the teacher's other labels.
    labels = tuple(name for name in teacher_labels if any(row["label"] == name for row in rows))
    examples = []
    for row in rows:
        wav = path.parent / row["path"]  # an absolute path replaces the folder
        if not wav.is_file():
            raise DataError(f"{path}: example file {wav} not found")
        examples.append(Example(str(wav), labels.index(row["label"]), speaker_of(wav.name)))
    return KwsData(labels, {split: (examples if split == "train" else []) for split in SPLITS}, [])
