"""Evaluation: accuracy, per-class precision/recall, confusion matrix (JSON and PNG)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.errors import DataError
from kws_zoo.data import load_dataset
from kws_zoo.data.base import DataConfig
from kws_zoo.data.pipeline import drop_bad, load_background, load_waveforms
from kws_zoo.data.testset import is_testset_root
from kws_zoo.evaluate.plots import plot_confusion
from kws_zoo.evaluate.predictor import load_predictor
from kws_zoo.recipe import load_recipe


def classification_report(y_true, y_pred, labels) -> dict:
    """Report over `labels` (names). y_true indexes labels; y_pred may also be -1 (a prediction outside
    the data's label set, e.g. '_unknown_' on a digits-only test set), which always counts as wrong."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(labels)
    cm = np.zeros((n, n + 1), np.int64)  # last column: predicted a label the data does not have
    np.add.at(cm, (y_true, np.where(y_pred < 0, n, y_pred)), 1)
    per_class = {}
    for i, name in enumerate(labels):
        tp, support, predicted = cm[i, i], cm[i].sum(), cm[:, i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "support": int(support)}
    report = {"accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0, "examples": int(len(y_true)),
              "labels": list(labels), "per_class": per_class, "confusion": cm[:, :n].tolist()}
    if cm[:, n].any():
        report["predicted_outside_labels"] = cm[:, n].tolist()
    return report


def keras_accuracy(model, features: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of a Keras model on features with integer labels."""
    return float(np.mean(model.predict(features, batch_size=256, verbose=0).argmax(axis=1) == labels))


def map_labels(data_labels, model_labels) -> np.ndarray:
    """Index map model-label -> data-label (-1 where the data has no such label)."""
    position = {name: i for i, name in enumerate(data_labels)}
    missing = [name for name in data_labels if name not in set(model_labels)]
    if missing:
        raise DataError(f"the model cannot predict data label(s) {missing}; model labels: {list(model_labels)}")
    return np.array([position.get(name, -1) for name in model_labels], np.int64)


def format_report(report: dict) -> str:
    lines = [f"accuracy {report['accuracy']:.2%} ({report['examples']} examples)"
             + (f"; closed set (only the data's labels) {report['closed_set_accuracy']:.2%}"
                if "closed_set_accuracy" in report else ""),
             f"{'label':>12} {'precision':>9} {'recall':>7} {'support':>7}"]
    for name, row in report["per_class"].items():
        lines.append(f"{name:>12} {row['precision']:9.3f} {row['recall']:7.3f} {row['support']:7d}")
    # which file and runtime: a run directory holds the Keras float model, its export/ the int8 device file
    source = [f"model {report['model_file']} ({report['runtime']})"] if "model_file" in report else []
    return "\n".join(lines + ["", format_confusion(report)] + source)


def format_confusion(report: dict) -> str:
    """The confusion matrix as text: rows are the true labels, columns the predictions (the data's labels, then
    'other' for a model label the data does not have, when any)."""
    labels, rows = report["labels"], [list(r) for r in report["confusion"]]
    outside = report.get("predicted_outside_labels")
    names = [*labels, "other"] if outside else list(labels)
    if outside:
        rows = [r + [o] for r, o in zip(rows, outside)]
    width = max(5, *(len(n) for n in names))
    lines = ["confusion (rows true, columns predicted)", " " * width + "".join(f" {n:>{width}}" for n in names)]
    lines += [f"{name:>{width}}" + "".join(f" {v:{width}d}" for v in row) for name, row in zip(labels, rows)]
    return "\n".join(lines)


def report_from_scores(scores, targets, data_labels, model_labels) -> dict:
    """Report for model scores [N, model classes] on data whose label names may be a subset."""
    to_data = map_labels(data_labels, model_labels)
    scores = np.asarray(scores)
    report = classification_report(targets, to_data[scores.argmax(axis=1)], data_labels)
    if (to_data < 0).any():
        # Closed set: the best of the labels the data has (e.g. digits only, no _unknown_ / _silence_).
        # Reported beside, never instead of, the open-set accuracy above.
        inside = np.flatnonzero(to_data >= 0)
        closed = to_data[inside[scores[:, inside].argmax(axis=1)]]
        report["closed_set_accuracy"] = float(np.mean(closed == np.asarray(targets)))
    return report


def evaluate_arrays(cfg, clip_samples: int, split: str = "test", progress: bool = True):
    """(waveforms, targets, label names, background noise or None) of one split of a dataset config."""
    data = load_dataset(cfg)
    # "all": every split, for data the model never trained on (e.g. real speech for a TTS-trained model).
    examples = [e for ex in data.splits.values() for e in ex] if split == "all" else data.splits.get(split) or []
    if not examples:
        raise DataError(f"{cfg.path or cfg.kind}: split {split!r} is empty (splits: "
                        f"{', '.join(k for k, v in data.splits.items() if v)})")
    waves, bad = load_waveforms(examples, clip_samples=clip_samples, skip_bad=cfg.skip_bad_files,
                                progress=progress)
    background = load_background(data.background, clip_samples) if data.background else None
    return waves, np.array([e.label for e in drop_bad(examples, bad)], np.int64), data.labels, background


def data_config(data: str, model_path: str, labels):
    """--data value -> DataConfig: 'recipe' (the run's own data), 'fsdd', or a dataset directory: a labelled test
    set (`_silence_/` or `_unknown_/` among its folders: every folder a label, every file scored), a Speech Commands
    root with its lists, or a folder per label (split by speaker hash)."""
    if data == "fsdd":
        return DataConfig(kind="fsdd")
    if data == "recipe":
        recipe = rundir.find_beside(model_path, rundir.RECIPE)
        if recipe is None:
            raise DataError(f"{model_path}: no {rundir.RECIPE} beside the model; pass --data fsdd or a dataset "
                            "directory")
        return load_recipe(recipe).data
    if not os.path.isdir(data):
        raise DataError(f"{data}: --data must be 'recipe', 'fsdd' or a dataset directory")
    if is_testset_root(data):
        return DataConfig(kind="testset", path=data)
    keywords = tuple(name for name in labels if not name.startswith("_"))
    if any(os.path.exists(os.path.join(data, f)) for f in ("testing_list.txt", "validation_list.txt")):
        return DataConfig(kind="gsc", path=data, words=keywords)
    return DataConfig(kind="folder", path=data)


def evaluate_model(model: str, data: str = "recipe", split: str = "test", runtime: str = "tflm",
                   plot: str | None = None, progress: bool = True, speakers: str = "all") -> dict:
    """Evaluates any model form (run dir, .keras, .tflite) on a dataset split (of one half of its speakers:
    kws_zoo.data.splits.speaker_half); returns the report."""
    predictor = load_predictor(model, runtime=runtime)
    cfg = dataclasses.replace(data_config(data, model, predictor.labels), speakers=speakers)
    waves, targets, data_labels, background = evaluate_arrays(cfg, predictor.clip_samples, split, progress)
    scores = predictor.scores(predictor.features(waves, background))
    report = report_from_scores(scores, targets, data_labels, predictor.labels)
    report.update(model=os.fspath(model), model_file=predictor.path, runtime=predictor.runtime, data=cfg.to_dict(),
                  split=split)
    if plot:
        report["plot"] = plot_confusion(report, plot, f"{os.path.basename(os.path.normpath(model))} on "
                                                      f"{cfg.kind} {split}: accuracy {report['accuracy']:.1%}")
    return report
