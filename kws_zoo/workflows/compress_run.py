"""The compression stage of a trained run (`kws-zoo train` runs it when the recipe has a `compress` section).

Order: the trained multi-branch model is re-parameterized to its single-branch inference form first, then pruned
(TFMOT) or trained with dynamic sparsity (DSNN), then fine-tuned quantization-aware (TFMOT QAT). Every mask and
every simulated quantizer thus acts on exactly the kernels `kws-zoo export` converts and the device runs.

Writes RUN/model_compressed.keras and RUN/compress_summary.json (the settings and the test accuracy after each
stage). A finished stage with the same settings is not run again; other settings run it again from model.keras.
"""
from __future__ import annotations

import io
import json
import os

import numpy as np
from tqdm.keras import TqdmCallback

from kws_zoo import rundir
from kws_zoo.compress.config import METHODS, CompressConfig
from kws_zoo.compress.dsnn import fit_dsnn, level_bn_statistics, set_sparsity
from kws_zoo.compress.pruning import KeepZeros, prune_model, pruning_callbacks, strip_pruning
from kws_zoo.compress.qat import qat_scope, quantize_model, strip_qat
from kws_zoo.core.compat import keras
from kws_zoo.core.config import from_dict, to_dict
from kws_zoo.core.errors import ConfigError, RunDirError
from kws_zoo.core.files import atomic_save_keras, atomic_write_bytes, atomic_write_json
from kws_zoo.data.pipeline import features_for
from kws_zoo.evaluate.accuracy import keras_accuracy
from kws_zoo.export.reparam import reparameterize
from kws_zoo.models.saving import load_keras
from kws_zoo.recipe import Recipe, load_recipe
from kws_zoo.train import (PreparedData, fine_tune, fine_tune_optimizer, loss_for, prepare_data, steps_per_epoch,
                           train_dataset, validation_dataset)


BN_CALIBRATION_BATCHES = 20  # training batches each DSNN level's BN statistics are measured on


def compress_run(run_dir: str, recipe: Recipe | None = None, *, progress: bool = True,
                 data: PreparedData | None = None) -> dict:
    """Runs the recipe's compression stage on the trained run in run_dir; returns the summary."""
    recipe = recipe or load_recipe(os.path.join(run_dir, rundir.RECIPE))
    cfg = recipe.compress
    if not cfg.active:
        raise ConfigError(f"{recipe.name}: the recipe has no compress section (method or qat)")
    model_path = os.path.join(run_dir, rundir.MODEL)
    if not os.path.exists(model_path):
        raise RunDirError(f"{run_dir}: no {rundir.MODEL} to compress (has training finished?)")
    done = read_summary(run_dir)
    if done is not None and same_settings(done["compress"], cfg):
        return done
    data = data or prepare_data(recipe, progress)
    test = _test_split(recipe, data)
    # Pruning and DSNN fine-tune with BN standalone (fold_bn=False: it re-centres what the masks shift); folding
    # it afterwards keeps every zero. QAT alone starts from the fully folded graph it quantizes.
    model = reparameterize(load_keras(model_path), fold_bn=cfg.method == "none")
    stages = {"float": keras_accuracy(model, *test)}
    steps = steps_per_epoch(recipe, data) * cfg.epochs
    summary = {"recipe": recipe.name, "compress": to_dict(cfg), "test_examples": int(len(test[1]))}
    if cfg.method == "prune":
        wrapped = prune_model(model, cfg.prune, steps, depthwise=cfg.prune.depthwise)
        fine_tune(wrapped, recipe, data, epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                  callbacks=pruning_callbacks(), progress=progress, desc=f"prune {recipe.name}")
        model = reparameterize(strip_pruning(wrapped))
        stages["pruned"] = keras_accuracy(model, *test)
    elif cfg.method == "dsnn":
        bar = [TqdmCallback(verbose=0, desc=f"DSNN {recipe.name}")] if progress else []
        history = fit_dsnn(model, cfg.dsnn, train_dataset(recipe, data, recipe.schedule.epochs), epochs=cfg.epochs,
                 optimizer=fine_tune_optimizer(recipe, cfg.learning_rate, steps),
                 loss=loss_for(recipe, data.labels), validation=validation_dataset(recipe, data),
                 seed=recipe.seed, callbacks=bar, depthwise=cfg.dsnn.depthwise)
        batches = [x for x, _ in train_dataset(recipe, data, recipe.schedule.epochs).take(BN_CALIBRATION_BATCHES)]
        affine, ranks = history.model.level_bn_affine(), history.model.level_ranks()
        stats = {level: level_bn_statistics(model, level, batches, depthwise=cfg.dsnn.depthwise,
                                            bn_affine=affine[level], ranks=ranks) for level in cfg.dsnn.levels}
        write_bn_stats(run_dir, stats)
        _write_npz(os.path.join(run_dir, rundir.DSNN_RANKS), ranks)
        summary["levels"] = {f"{level:g}": keras_accuracy(set_sparsity(model, level, depthwise=cfg.dsnn.depthwise,
                                                                       bn_stats=stats[level], ranks=ranks), *test)
                             for level in cfg.dsnn.levels}
        stages["dsnn_dense"] = summary["levels"][f"{cfg.dsnn.levels[0]:g}"]
    if cfg.qat is not None:
        model = quantize_model(model, cfg.qat)
        keep = [KeepZeros(model)] if cfg.method == "prune" else []  # QAT must not regrow the pruned weights
        # The epoch with the best validation accuracy, as training keeps: the fine-tune can drift below where it
        # started on a model that post-training quantization already served well (docs/results.md, issue 11).
        rows = fine_tune(model, recipe, data, epochs=cfg.epochs, learning_rate=cfg.learning_rate, callbacks=keep,
                         progress=progress, desc=f"QAT {recipe.name}", keep_best=True)
        summary["qat_epoch"] = next(row["epoch"] for row in rows if row.get("kept")) + 1
        summary["qat_history"] = rows
        stages["qat"] = keras_accuracy(model, *test)
    with qat_scope():
        atomic_save_keras(model, os.path.join(run_dir, rundir.COMPRESSED_MODEL))
    summary["accuracy"] = stages
    atomic_write_json(os.path.join(run_dir, rundir.COMPRESS_SUMMARY), summary)
    return summary


def same_settings(recorded: dict, cfg: CompressConfig) -> bool:
    """Whether a finished stage ran with `cfg`, judged on what the method reads: a DSNN setting added or changed
    leaves a finished pruning or QAT stage valid, and the other way round. A setting added since the stage ran
    counts with its default."""
    def used(settings: dict) -> dict:
        return {k: v for k, v in settings.items() if k not in METHODS or k == settings["method"]}
    try:
        recorded = to_dict(from_dict(CompressConfig, recorded))
    except ConfigError:  # a setting since removed
        return False
    return used(recorded) == used(to_dict(cfg))


def read_summary(run_dir: str) -> dict | None:
    """The run's compress_summary.json, or None before the stage has finished."""
    path = os.path.join(run_dir, rundir.COMPRESS_SUMMARY)
    if not os.path.exists(path) or not os.path.exists(os.path.join(run_dir, rundir.COMPRESSED_MODEL)):
        return None
    with open(path) as f:
        return json.load(f)


def compressed_summary(run_dir: str, recipe: Recipe) -> dict | None:
    """The summary of the run's compression stage if the recipe asks for one (None if not); RunDirError when the
    stage has not run, or ran with other settings, so export never deploys a stale model."""
    if not recipe.compress.active:
        return None
    done = read_summary(run_dir)
    if done is None or not same_settings(done["compress"], recipe.compress):
        raise RunDirError(f"{run_dir}: the recipe's compression stage has not run with its current settings; run "
                          "`kws-zoo train` on the recipe again (training is kept, only the stage runs)")
    return done


def load_compressed(run_dir: str) -> keras.Model:
    """The compression stage's model (QAT wrappers included)."""
    with qat_scope():
        return load_keras(os.path.join(run_dir, rundir.COMPRESSED_MODEL))


def deployed_model(run_dir: str, summary: dict, compressed: keras.Model) -> keras.Model:
    """What export converts to the device's int8: the QAT or pruned model as the stage left it, or a DSNN run's
    densest level (its other levels: dsnn_level)."""
    if summary["compress"]["method"] == "dsnn":
        return dsnn_level(compressed, summary, read_bn_stats(run_dir), summary["compress"]["dsnn"]["levels"][0],
                          read_ranks(run_dir))
    return compressed


def deployed_float(run_dir: str, recipe: Recipe) -> keras.Model | None:
    """The float model the run's compressed deployment computes (None if the recipe does not compress): the
    deployed model, a QAT one without its quantizers (kernels on their b-bit grid). The streaming export converts
    this one, so a compressed run streams what it deploys."""
    summary = compressed_summary(run_dir, recipe)
    if summary is None:
        return None
    model = deployed_model(run_dir, summary, load_compressed(run_dir))
    return strip_qat(model) if summary["compress"]["qat"] is not None else model


def dsnn_level(model: keras.Model, summary: dict, bn_stats: dict, level: float,
               ranks: dict[str, np.ndarray] | None) -> keras.Model:
    """A DSNN run's model at `level`: its masks (ranks: read_ranks of the run), its BN statistics (bn_stats:
    read_bn_stats of the run), BN folded (the form export converts)."""
    return reparameterize(set_sparsity(model, level, depthwise=summary["compress"]["dsnn"]["depthwise"],
                                       bn_stats=bn_stats[float(level)], ranks=ranks))


_BN_PARTS = ("mean", "variance", "gamma", "beta")  # the order of set_sparsity's bn_stats; the last two: private_bn


def _write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def write_bn_stats(run_dir: str, stats: dict[float, dict[str, tuple]]) -> None:
    _write_npz(os.path.join(run_dir, rundir.DSNN_BN_STATS),
               {f"{level:g}/{name}/{part}": array for level, by_layer in stats.items()
                for name, values in by_layer.items() for part, array in zip(_BN_PARTS, values)})


def read_ranks(run_dir: str) -> dict[str, np.ndarray] | None:
    """The weight ranking a DSNN run's masks cut; None for a run that predates the file (its masks are then the
    final weights' own ranking, which is what those runs trained at the end)."""
    path = os.path.join(run_dir, rundir.DSNN_RANKS)
    if not os.path.exists(path):
        return None
    with np.load(path) as f:
        return {name: f[name] for name in f.files}


def read_bn_stats(run_dir: str) -> dict[float, dict[str, tuple[np.ndarray, np.ndarray]]]:
    path = os.path.join(run_dir, rundir.DSNN_BN_STATS)
    if not os.path.exists(path):
        raise RunDirError(f"{run_dir}: no {rundir.DSNN_BN_STATS} (the DSNN stage wrote none; run it again)")
    stats: dict[float, dict[str, dict]] = {}
    with np.load(path) as f:
        for key in f.files:
            level, name, part = key.split("/")
            stats.setdefault(float(level), {}).setdefault(name, {})[part] = f[key]
    return {level: {name: tuple(parts[p] for p in _BN_PARTS if p in parts) for name, parts in by_layer.items()}
            for level, by_layer in stats.items()}


def _test_split(recipe: Recipe, data: PreparedData) -> tuple[np.ndarray, np.ndarray]:
    features = features_for(data.waveforms["test"], recipe.frontend, background=data.background, seed=recipe.seed)
    return features, data.targets["test"]
