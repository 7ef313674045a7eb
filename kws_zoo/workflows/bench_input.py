"""Training throughput in clips per second, three ways: the input pipeline alone (decoded waveforms to augmented
feature batches), the model alone on those batches held in memory (an epoch as `train` runs it, and its steps
alone), and training end to end as `train` runs an epoch. The gap between the model's epoch and the end-to-end one
is what the input pipeline costs training.

Each figure is timed after a warm-up (graph tracing is not throughput); the end-to-end epoch includes what `train`
pays every epoch (a fresh dataset and a retraced step), but not validation; a last epoch is timed as `train` runs
it, validation included.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
from tqdm.auto import tqdm

from kws_zoo.core.compat import keras, tf
from kws_zoo.data.pipeline import fixed_parallelism
from kws_zoo.recipe import Recipe
from kws_zoo.train import compiled_model, fit_epoch, prepare_data, train_dataset, validation_dataset

WARMUP_BATCHES = 3


class _Clock:
    """Wall and process CPU time from its creation: clips/s, and how many cores the run kept busy (CPU seconds of
    all threads over wall seconds: a run that idles, such as an epoch whose iterator stalls, shows as one)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rate(self, clips: int) -> tuple[float, float]:
        """(clips/s, cores busy) since creation."""
        wall = time.perf_counter() - self.wall
        return clips / wall, (time.process_time() - self.cpu) / wall


def _input_alone(recipe: Recipe, data, epoch: int, progress: bool) -> tuple[float, float, list]:
    """(clips/s, cores busy) of one epoch's dataset iterated on its own (the first batches untimed), and its
    batches."""
    batches, clips, clock = [], 0, None
    for i, (x, y) in enumerate(tqdm(train_dataset(recipe, data, epoch), desc="input alone", unit="batch",
                                    disable=not progress, leave=False)):
        batches.append((x.numpy(), y.numpy()))
        if i + 1 == WARMUP_BATCHES:
            clock = _Clock()
        elif i + 1 > WARMUP_BATCHES:
            clips += len(x)
    if clock is None or not clips:
        raise ValueError(f"{recipe.name}: the training split has fewer than {WARMUP_BATCHES + 1} batches")
    return *clock.rate(clips), batches


def _model_alone(model: keras.Model, recipe: Recipe, data, batches: list, epoch: int) -> tuple[float, float, float]:
    """Training on batches already in memory: (clips/s and cores busy of an epoch as `train` runs it, with its
    per-epoch retrace and fit set-up; clips/s of the steps alone, already traced)."""
    cached = _in_memory(batches)
    clock = _Clock()
    fit_epoch(model, recipe, data, epoch, dataset=cached)
    epoch_rate, cores = clock.rate(_clips(batches))
    clock = _Clock()
    model.fit(cached, verbose=0)  # the step traced by the epoch above: steps alone
    return epoch_rate, cores, clock.rate(_clips(batches))[0]


def _in_memory(batches: list) -> tf.data.Dataset:
    feats = np.concatenate([x for x, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    cached = fixed_parallelism(tf.data.Dataset.from_tensor_slices((feats, labels)).batch(len(batches[0][0])).cache())
    for _ in cached:  # fills the cache: the timed passes read memory only
        pass
    return cached


def _clips(batches: list) -> int:
    return sum(len(y) for _, y in batches)


# What each augmentation costs: the input alone with that op switched off (AugmentConfig fields set to disable it).
ABLATIONS = {"reverb": {"reverb_prob": 0.0}, "background": {"background_prob": 0.0}, "speed": {"speed_prob": 0.0},
             "lowpass": {"lowpass_prob": 0.0}, "spec_augment": {"time_masks": 0, "freq_masks": 0}}


def ablate_input(recipe: Recipe, *, repeats: int = 3, progress: bool = True) -> dict:
    """Input-alone clips/s (median of `repeats` epochs) with every augmentation, with each one switched off, and
    with none; and the microseconds per clip each costs (from the difference)."""
    data = prepare_data(recipe, progress)
    variants = {"all": recipe.augment, **{f"no {k}": dataclasses.replace(recipe.augment, **v)
                                          for k, v in ABLATIONS.items()}, "none": None}
    runs = {name: [] for name in variants}
    for r in range(repeats):  # interleaved, so a slow spell of the machine touches every variant alike
        for name, aug in variants.items():
            runs[name].append(_input_alone(recipe.replace(augment=aug), data, 1 + r, progress)[0])
    rates = {name: float(np.median(v)) for name, v in runs.items()}
    per_clip = {k: round(1e6 / rates["all"] - 1e6 / rates[f"no {k}"], 1) for k in ABLATIONS}
    return {"recipe": recipe.name, "repeats": repeats,
            "input_alone_clips_per_s": {k: round(v, 1) for k, v in rates.items()},
            "us_per_clip": {"all": round(1e6 / rates["all"], 1), "none": round(1e6 / rates["none"], 1), **per_clip}}


def bench_input(recipe: Recipe, *, repeats: int = 3, progress: bool = True) -> dict:
    """The three throughputs for `recipe` (its data decoded and cached as `train` does), each the median of
    `repeats` epochs measured in turn (this machine's speed drifts by tens of percent from minute to minute), and
    the ratio of end to end to model alone."""
    data = prepare_data(recipe, progress)
    rates = {key: [] for key in ("input_alone", "model_alone", "model_steps_alone", "end_to_end")}
    cores = {key: [] for key in ("input_alone", "model_alone", "end_to_end")}
    clips = len(data.targets["train"])
    model = None
    for r in range(repeats):
        rate, busy, batches = _input_alone(recipe, data, 1 + r, progress)
        rates["input_alone"].append(rate)
        cores["input_alone"].append(busy)
        if model is None:
            model = _model_for(recipe, data, batches)
        model_rate, busy, steps_rate = _model_alone(model, recipe, data, batches, 10 + r)
        rates["model_alone"].append(model_rate)
        cores["model_alone"].append(busy)
        rates["model_steps_alone"].append(steps_rate)
        clock = _Clock()
        fit_epoch(model, recipe, data, 20 + r)
        rate, busy = clock.rate(clips)
        rates["end_to_end"].append(rate)
        cores["end_to_end"].append(busy)
    start = time.perf_counter()
    fit_epoch(model, recipe, data, 30, validation_dataset(recipe, data))
    epoch_s = time.perf_counter() - start
    median = {key: float(np.median(v)) for key, v in rates.items()}
    return {"recipe": recipe.name, "train_clips": clips, "batch_size": recipe.schedule.batch_size, "repeats": repeats,
            **{f"{key}_clips_per_s": round(median[key], 1) for key in rates},
            "end_to_end_of_model_alone": round(median["end_to_end"] / median["model_alone"], 3),
            "runs_clips_per_s": {key: [round(v, 1) for v in values] for key, values in rates.items()},
            "runs_cores_busy": {key: [round(v, 2) for v in values] for key, values in cores.items()},
            "epoch_with_validation_s": round(epoch_s, 2)}


def _model_for(recipe: Recipe, data, batches: list) -> keras.Model:
    """The recipe's compiled model, its feature statistics from the first batches, with its data paths warmed up
    (the first epoch traces the datasets' functions and the steps: tracing is not throughput)."""
    feats = np.concatenate([x for x, _ in batches[:8]])
    stats = None
    if recipe.feature_norm and recipe.frontend.kind != "raw":
        flat = feats.reshape(-1, feats.shape[-1]).astype(np.float64)
        stats = flat.mean(axis=0), np.maximum(flat.var(axis=0), 1e-6)
    model, _ = compiled_model(recipe, data, stats)
    fit_epoch(model, recipe, data, 5, dataset=_in_memory(batches[:WARMUP_BATCHES]))
    fit_epoch(model, recipe, data, 6, validation_dataset(recipe, data))
    return model
