"""Training: compile, fit epoch by epoch, checkpoint atomically, resume exactly, log to TensorBoard.

Resume is exact: every epoch re-seeds the global RNG from (seed, epoch) and retraces the train step, so
dropout masks depend only on the epoch; the data pipeline is seeded the same way; the checkpoint holds
the model, the optimizer (moments and step) and the run's bookkeeping. A run killed after epoch k and
resumed ends with the same weights as one that was never interrupted (tests/test_train.py).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

import numpy as np
from tqdm.auto import tqdm

from kws_zoo import distribute, rundir
from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import DataError, RecipeError, RunDirError
from kws_zoo.core.files import atomic_save_keras, atomic_write_json, atomic_write_text
from kws_zoo.data import load_dataset
from kws_zoo.data.base import SILENCE, UNKNOWN
from kws_zoo.data.pipeline import (drop_bad, features_for, global_batches, load_background, load_waveforms,
                                   make_dataset)
from kws_zoo.models import create_model
from kws_zoo.recipe import Recipe, load_recipe, recipe_from_dict, save_recipe
from kws_zoo.rundir import ModelInfo, write_info


@dataclasses.dataclass
class PreparedData:
    labels: tuple
    waveforms: dict  # split -> np.ndarray [N, samples]
    targets: dict  # split -> np.ndarray [N] int32
    background: np.ndarray | None
    bad_files: list


def prepare_data(recipe: Recipe, progress: bool = True) -> PreparedData:
    data = load_dataset(recipe.data)
    waves, targets, bad = {}, {}, []
    for split, examples in data.splits.items():
        if not examples:
            continue
        w, bad_here = load_waveforms(examples, clip_samples=recipe.clip_samples,
                                     skip_bad=recipe.data.skip_bad_files, progress=progress,
                                     cache_dir=_cache_dir(recipe))
        waves[split] = w
        targets[split] = np.array([e.label for e in drop_bad(examples, bad_here)], np.int32)
        bad += bad_here
    background = (load_background(data.background, recipe.clip_samples, skip_bad=recipe.data.skip_bad_files)
                  if data.background else None)
    return PreparedData(data.labels, waves, targets, background, bad)


def _cache_dir(recipe: Recipe) -> str:
    """Decoded waveforms are cached beside the dataset (outside git), keyed by file list and mtimes."""
    return str(recipe.data.resolved_path() / ".kws_zoo_cache")


def feature_stats(waveforms: np.ndarray, recipe: Recipe, background=None):
    """Per-bin mean and variance of the training features (global normalisation, built into the model)."""
    if recipe.frontend.kind == "raw":
        return None
    feats = features_for(waveforms, recipe.frontend, background=background, seed=recipe.seed)
    flat = feats.reshape(-1, feats.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), np.maximum(flat.var(axis=0), 1e-6)


def build_model(recipe: Recipe, num_classes: int, stats) -> keras.Model:
    return create_model(recipe.model, input_shape=recipe.frontend.output_shape(recipe.clip_samples),
                        num_classes=num_classes, feature_stats=stats, **recipe.model_overrides)


def make_optimizer(recipe: Recipe, steps_per_epoch: int):
    s = recipe.schedule
    warmup = s.warmup_epochs * steps_per_epoch
    decay = max(1, s.epochs * steps_per_epoch - warmup)
    lr = keras.optimizers.schedules.CosineDecay(
        s.learning_rate / 10 if warmup else s.learning_rate, decay, alpha=s.final_learning_rate / s.learning_rate,
        warmup_target=s.learning_rate if warmup else None, warmup_steps=warmup)
    if s.weight_decay:
        return keras.optimizers.AdamW(lr, weight_decay=s.weight_decay)
    return keras.optimizers.Adam(lr)


def steps_per_epoch(recipe: Recipe, data: PreparedData) -> int:
    return int(np.ceil(len(data.targets["train"]) / recipe.schedule.batch_size))


def fine_tune_optimizer(recipe: Recipe, learning_rate: float, steps: int):
    """Adam on a cosine decay from `learning_rate` down to the rate training ended at: the model leaves its
    minimum to adapt (to masks, to quantizers) and settles again by the last step, whose weights are kept."""
    final = min(recipe.schedule.final_learning_rate, learning_rate)
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps),
                                                                        alpha=final / learning_rate))


def accuracy(y_true, logits):
    """Top-1 accuracy against integer labels or soft labels [B, classes] (mixup: the label with the larger share).
    Keras' "accuracy" picks its formula from the first labels it sees, so with soft training labels it scored the
    integer validation labels as soft ones, and checkpoint selection ran on noise (measured: val 8% throughout)."""
    if y_true.shape.rank == 2 and y_true.shape[-1] == logits.shape[-1] and y_true.dtype.is_floating:
        y_true = tf.argmax(y_true, axis=-1)
    return tf.cast(tf.equal(tf.cast(tf.reshape(y_true, [-1]), tf.int64), tf.argmax(logits, axis=-1)), tf.float32)


def loss_for(recipe: Recipe, labels):
    """The training loss of `recipe`: label-smoothed cross-entropy on logits, against integer labels or soft
    labels [B, classes] (mixup); `labels` (names, or their count) give the classes. Examples of _silence_ and
    _unknown_ weigh recipe.schedule.negative_weight (soft labels: by their share of those classes)."""
    smoothing = recipe.schedule.label_smoothing
    names = [f"class{i}" for i in range(labels)] if isinstance(labels, int) else list(labels)
    num_classes = len(names)
    weights = tf.constant([recipe.schedule.negative_weight if n in (SILENCE, UNKNOWN) else 1.0 for n in names])

    def loss(y_true, logits):
        if y_true.shape.rank == 2 and y_true.shape[-1] == num_classes:  # soft labels (mixup)
            target = tf.cast(y_true, logits.dtype)
        else:
            target = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), num_classes)
        per_example = keras.losses.categorical_crossentropy(target, logits, from_logits=True,
                                                            label_smoothing=smoothing)
        if recipe.schedule.negative_weight == 1.0:
            return per_example
        return per_example * tf.linalg.matvec(target, tf.cast(weights, target.dtype))

    return loss


def train_dataset(recipe: Recipe, data: PreparedData, epoch: int, strategy=None, skip: int = 0):
    """The augmented training split of one epoch (seeded by the recipe and the epoch), without its first `skip`
    batches; with a strategy of several replicas, each worker's share of every global batch (distribute)."""
    def build(shard=None, replica_batch=None):
        ds = make_dataset(data.waveforms["train"], data.targets["train"], frontend_cfg=recipe.frontend,
                          batch_size=recipe.schedule.batch_size, training=True, augment=recipe.augment,
                          background=data.background, seed=recipe.seed, epoch=epoch, num_classes=len(data.labels),
                          shard=shard, replica_batch=replica_batch)
        return ds.skip(skip) if skip else ds
    return _per_replica(build, recipe.schedule.batch_size, strategy)


def validation_dataset(recipe: Recipe, data: PreparedData, strategy=None):
    """The validation split, unaugmented, its features kept in memory after the first pass (they are the same every
    epoch); None if the data has none."""
    if "validation" not in data.waveforms:
        return None

    def build(shard=None, replica_batch=None):
        return make_dataset(data.waveforms["validation"], data.targets["validation"], frontend_cfg=recipe.frontend,
                            batch_size=VALIDATION_BATCH, training=False, background=data.background,
                            seed=recipe.seed, shard=shard, replica_batch=replica_batch).cache()
    return _per_replica(build, VALIDATION_BATCH, strategy)


VALIDATION_BATCH = 256


def _per_replica(build, global_batch: int, strategy):
    """build() as it is for one replica; for several, each input pipeline builds its share (distribute)."""
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return build()
    return strategy.distribute_datasets_from_function(lambda ctx: build(
        (ctx.input_pipeline_id, ctx.num_input_pipelines), ctx.get_per_replica_batch_size(global_batch)))


def fine_tune(model: keras.Model, recipe: Recipe, data: PreparedData, *, epochs: int, learning_rate: float,
              callbacks=(), progress: bool = True, desc: str = "fine-tune", keep_best: bool = False) -> list[dict]:
    """Fits an already trained (e.g. pruned or quantization-aware) model for `epochs` more epochs
    (fine_tune_optimizer) with the recipe's loss and augmentation. Keeps the final weights (a pruning schedule
    ends there), or with keep_best those of the epoch with the best validation accuracy (the first such epoch, as
    training selects; quantizer ranges included, they are weights too). Returns one row of metrics per epoch, the
    kept epoch's row marked `"kept": True`."""
    optimizer = fine_tune_optimizer(recipe, learning_rate, epochs * steps_per_epoch(recipe, data))
    model.compile(optimizer, loss_for(recipe, data.labels), metrics=[accuracy])
    val = validation_dataset(recipe, data)
    rows, best, best_weights = [], None, None
    for epoch in tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress):
        keras.utils.set_random_seed(recipe.seed * 100003 + 7919 + epoch)
        logs = model.fit(train_dataset(recipe, data, recipe.schedule.epochs + epoch), validation_data=val,
                         callbacks=list(callbacks), verbose=0).history
        rows.append({"epoch": epoch, **{k: float(v[-1]) for k, v in logs.items()}})
        score = rows[-1].get("val_accuracy", rows[-1]["accuracy"])
        if keep_best and (best is None or score > rows[best].get("val_accuracy", rows[best]["accuracy"])):
            best, best_weights = epoch, [w.copy() for w in model.get_weights()]
    if keep_best:
        model.set_weights(best_weights)
    rows[best if keep_best else -1]["kept"] = True
    return rows


def compiled_model(recipe: Recipe, data: PreparedData, stats):
    """The recipe's model, compiled with its optimizer (built, so a checkpoint can restore the moments before step
    1), loss and accuracy metric: (model, optimizer)."""
    model = build_model(recipe, len(data.labels), stats)
    optimizer = make_optimizer(recipe, steps_per_epoch(recipe, data))
    model.compile(optimizer, loss_for(recipe, data.labels), metrics=[accuracy])
    optimizer.build(model.trainable_variables)
    return model, optimizer


def fit_epoch(model: keras.Model, recipe: Recipe, data: PreparedData, epoch: int, val=None, *, strategy=None,
              skip: int = 0, callbacks=(), dataset=None) -> dict:
    """One training epoch as `train` runs it (global RNG re-seeded and the train step retraced, so dropout depends
    only on the epoch), from its step `skip` on; returns the epoch's metrics (of those steps). `dataset` replaces
    the epoch's training data (benchmarks: the same batches held in memory)."""
    keras.utils.set_random_seed(recipe.seed * 100003 + epoch)
    model.make_train_function(force=True)
    steps = {}
    if strategy is not None and strategy.num_replicas_in_sync > 1:  # a distributed dataset does not say its length
        pipelines = distribute.input_pipelines(strategy)
        steps["steps_per_epoch"] = global_batches(len(data.targets["train"]), recipe.schedule.batch_size,
                                                  pipelines) - skip
        if val is not None:
            steps["validation_steps"] = global_batches(len(data.targets["validation"]), VALIDATION_BATCH, pipelines)
    if dataset is None:
        dataset = train_dataset(recipe, data, epoch, strategy, skip)
    logs = model.fit(dataset, epochs=epoch + 1, initial_epoch=epoch,
                     validation_data=val, callbacks=list(callbacks), verbose=0, **steps).history
    return {k: float(v[-1]) for k, v in logs.items()}


class Checkpointer:
    """Keeps one complete checkpoint; the state file is replaced atomically after the files exist. Reads the chief's
    run directory and writes `write_dir` (the same, except on workers that are not the chief: kws_zoo.distribute)."""

    def __init__(self, run_dir: str, model, optimizer, write_dir: str | None = None):
        self.run_dir, self.write_dir = run_dir, write_dir or run_dir
        self.ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)

    def state(self) -> dict | None:
        return rundir.read_checkpoint_state(self.run_dir)

    def save(self, state: dict) -> None:
        name = rundir.checkpoint_folder(state["epoch"])
        self._write(name)
        previous = rundir.read_checkpoint_state(self.write_dir)
        atomic_write_json(os.path.join(self.write_dir, rundir.CHECKPOINT_STATE), dict(state, path=name))
        if previous and previous["path"] != name:
            shutil.rmtree(os.path.join(self.write_dir, previous["path"]), ignore_errors=True)
        shutil.rmtree(os.path.join(self.write_dir, rundir.BACKUP_DIR), ignore_errors=True)  # older than this

    def restore(self, state: dict) -> None:
        self._read(os.path.join(self.run_dir, state["path"]))

    def backup(self, epoch: int, step: int) -> None:
        """A mid-epoch backup after `step` training steps of `epoch`; replaced by the next one or the epoch's
        checkpoint."""
        folder = os.path.join(rundir.BACKUP_DIR, f"epoch{epoch + 1:04d}-step{step:06d}")
        self._write(folder)
        previous = rundir.read_backup_state(self.write_dir)
        atomic_write_json(os.path.join(self.write_dir, rundir.BACKUP_DIR, rundir.BACKUP_STATE),
                          {"epoch": epoch, "step": step, "path": folder})
        if previous and previous["path"] != folder:
            shutil.rmtree(os.path.join(self.write_dir, previous["path"]), ignore_errors=True)

    def restore_backup(self, epoch: int) -> int:
        """Restores the chief's mid-epoch backup of `epoch`, if there is one; returns the steps it holds (0: none)."""
        backup = rundir.read_backup_state(self.run_dir)
        if not backup or backup["epoch"] != epoch:
            return 0
        self._read(os.path.join(self.run_dir, backup["path"]))
        return int(backup["step"])

    def _write(self, name: str) -> None:
        final = os.path.join(self.write_dir, name)
        tmp = final + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        self.ckpt.write(os.path.join(tmp, "ckpt"))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

    def _read(self, folder: str) -> None:
        self.ckpt.read(os.path.join(folder, "ckpt")).assert_existing_objects_matched()


class StepBackup(keras.callbacks.Callback):
    """Writes a mid-epoch backup every `every` steps (counted from the epoch's start, `first_step` of them done
    before this fit); with stop_after_step, ends training once that step's backup is written (tests)."""

    def __init__(self, checkpointer: Checkpointer, epoch: int, every: int, steps: int, first_step: int = 0,
                 stop_after_step: int | None = None):
        super().__init__()
        self.checkpointer, self.epoch, self.every, self.steps = checkpointer, epoch, every, steps
        self.first_step, self.stop_after_step = first_step, stop_after_step

    def on_train_batch_end(self, batch, logs=None):
        step = self.first_step + batch + 1
        if self.every and step % self.every == 0 and step < self.steps:
            self.checkpointer.backup(self.epoch, step)
            if self.stop_after_step is not None and step >= self.stop_after_step:
                self.model.stop_training = True


def holds_other_recipe(run_dir: str, recipe: Recipe) -> bool:
    """True if run_dir's recipe.json trains another model than `recipe` (compared as JSON, name and compression
    settings aside: a recipe that only adds a `compress` section shares the training); False if it has none yet."""
    saved = os.path.join(run_dir, rundir.RECIPE)
    if not os.path.exists(saved):
        return False
    with open(saved) as f:
        return json.loads(training_key(json.load(f))) != json.loads(training_key(recipe.training_dict()))


def training_key(recipe_dict: dict) -> str:
    """What decides the trained weights, as JSON text: the recipe with every default filled in (a recipe.json
    written before a field existed reads as that field's default), without its name, its compress, distribute and
    extra evaluation sections (compare parsed: a recipe.json written by another version may spell 0.0 as 0)."""
    try:
        recipe_dict = recipe_from_dict(recipe_dict).to_dict()
    except RecipeError:
        pass  # compared as written; a recipe this version cannot read trains another model
    return json.dumps({k: v for k, v in recipe_dict.items() if k not in ("name", "compress", "distribute", "extra_eval")},
                      sort_keys=True)


def training_finished(run_dir: str, recipe: Recipe) -> bool:
    """True once run_dir holds the recipe's last epoch, its model.keras and its summary."""
    state = rundir.read_checkpoint_state(run_dir)
    return (state is not None and state["epoch"] + 1 >= recipe.schedule.epochs
            and os.path.exists(os.path.join(run_dir, rundir.MODEL))
            and os.path.exists(os.path.join(run_dir, rundir.TRAIN_SUMMARY)))


def copy_training(trained_dir: str, run_dir: str, recipe: Recipe) -> None:
    """Starts run_dir from the finished training in trained_dir (a recipe that differs from `recipe` only in name
    or compression settings), so only the compression stage runs. Exports and compression results are not
    copied. A run_dir that already holds this training keeps it. Either way run_dir's recipe.json becomes
    `recipe`."""
    if not training_finished(trained_dir, recipe) or holds_other_recipe(trained_dir, recipe):
        raise RunDirError(f"{trained_dir}: holds no finished training of {recipe.name}'s model and data "
                          f"({recipe.schedule.epochs} epochs, same recipe apart from name and compress)")
    if rundir.read_checkpoint_state(run_dir) is None:  # else it holds training already (checked below)
        tmp = run_dir.rstrip("/") + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(trained_dir, tmp, ignore=shutil.ignore_patterns(
            rundir.EXPORT_DIR, rundir.STREAM_DIR, "long_audio*", rundir.COMPRESSED_MODEL, rundir.COMPRESS_SUMMARY,
            rundir.DSNN_BN_STATS, rundir.DSNN_RANKS, "*.partial*"))
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing finished lives there: it has no checkpoint
        os.replace(tmp, run_dir)
    _check_run_dir(run_dir, recipe)
    # The run is now this recipe's: export reads its compress section and its name from these two files.
    save_recipe(recipe, os.path.join(run_dir, rundir.RECIPE))
    write_info(run_dir, dataclasses.replace(rundir.read_info(run_dir), recipe=recipe.name))


def _check_run_dir(run_dir: str, recipe: Recipe) -> None:
    if holds_other_recipe(run_dir, recipe):
        raise RunDirError(f"{run_dir}: holds a run of a different recipe; pass another --out or --restart")


def check_data_paths(recipe: Recipe, where: str = "") -> None:
    """RecipeError naming `where` (default: the recipe's name) and the field of every dataset (training and extra
    evaluation) whose folder is missing."""
    where = where or recipe.name
    for field, cfg in [("data", recipe.data), *((f"extra_eval[{i}]", c) for i, c in enumerate(recipe.extra_eval))]:
        try:
            path = cfg.resolved_path()
        except ValueError as err:
            raise RecipeError(f"{where}: {field}: {err}") from None
        if not path.is_dir():
            hint = " (run `kws-zoo make-data` for the built-in corpus)" if cfg.kind == "gsc" and not cfg.path else ""
            raise RecipeError(f"{where}: {field}.path: {path} is not a folder{hint}")


def train(recipe: Recipe, run_dir: str, *, restart: bool = False, progress: bool = True,
          stop_after_epoch: int | None = None, stop_after_step: int | None = None,
          data: PreparedData | None = None) -> dict:
    """Trains `recipe` into `run_dir`, resuming from its checkpoint (or its mid-epoch backup) if one exists, on the
    recipe's distribution strategy (kws_zoo.distribute). Returns the summary.

    stop_after_epoch / stop_after_step: stop (as if killed) once that epoch's checkpoint, or the first epoch's
    backup at that step, is written; used by tests.
    """
    if data is None:
        check_data_paths(recipe)  # before anything is written: a missing corpus leaves no half-made run
    strategy = distribute.make_strategy(recipe.distribute)
    out = distribute.write_dir(run_dir, strategy)  # the run directory, or a scratch folder on other workers
    if restart and distribute.is_chief(strategy):
        shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    _check_run_dir(run_dir, recipe)
    save_recipe(recipe, os.path.join(out, rundir.RECIPE))
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(recipe.seed)

    data = data or prepare_data(recipe, progress)
    if "train" not in data.waveforms:
        raise DataError(f"{recipe.name}: the training split is empty")
    atomic_write_text(os.path.join(out, rundir.LABELS), "\n".join(data.labels) + "\n")
    write_info(out, ModelInfo(tuple(data.labels), recipe.frontend, recipe.clip_ms, recipe.model, recipe.name))
    stats = feature_stats(data.waveforms["train"], recipe, data.background) if recipe.feature_norm else None
    if strategy.num_replicas_in_sync == 1:
        model, optimizer = compiled_model(recipe, data, stats)
    else:  # initial weights drawn as on one device (creating variables in a strategy's scope draws others)
        initial = build_model(recipe, len(data.labels), stats).get_weights()
        with strategy.scope():
            model, optimizer = compiled_model(recipe, data, stats)
        model.set_weights(initial)
        distribute.synchronize_batch_norm(model)
    ckpt = Checkpointer(run_dir, model, optimizer, write_dir=out)

    state = ckpt.state() or {"epoch": -1, "best_val_accuracy": -1.0, "best_epoch": -1, "history": []}
    if state["epoch"] >= 0:
        ckpt.restore(state)
    skip = ckpt.restore_backup(state["epoch"] + 1)
    if state["epoch"] >= 0 or skip:
        print(f"resuming {recipe.name} after epoch {state['epoch'] + 1}/{recipe.schedule.epochs}"
              + (f" and {skip} steps of the next (backup)" if skip else ""))
    val = validation_dataset(recipe, data, strategy)
    writer = tf.summary.create_file_writer(os.path.join(out, rundir.TENSORBOARD_DIR))
    best_path = os.path.join(out, rundir.BEST_WEIGHTS)
    steps = steps_per_epoch(recipe, data)

    bar = tqdm(range(state["epoch"] + 1, recipe.schedule.epochs), desc=f"train {recipe.name}", unit="epoch",
               initial=state["epoch"] + 1, total=recipe.schedule.epochs, disable=not progress)
    for epoch in bar:
        start = time.time()
        backups = StepBackup(ckpt, epoch, recipe.distribute.backup_every_steps, steps, skip, stop_after_step)
        row = fit_epoch(model, recipe, data, epoch, val, strategy=strategy, skip=skip, callbacks=[backups])
        if model.stop_training:  # stop_after_step: as if killed after that backup
            return {"stopped_after_step": stop_after_step, "epoch": epoch}
        row.update(epoch=epoch, seconds=round(time.time() - start, 2), **({"resumed_at_step": skip} if skip else {}))
        skip = 0
        with writer.as_default():
            for key, value in row.items():
                tf.summary.scalar(key, value, step=epoch)
        score = row.get("val_accuracy", row["accuracy"])
        if score > state["best_val_accuracy"]:
            tmp = best_path.replace(".weights.h5", ".partial.weights.h5")
            model.save_weights(tmp)
            os.replace(tmp, best_path)
            state.update(best_val_accuracy=score, best_epoch=epoch)
        state["history"].append(row)
        state["epoch"] = epoch
        ckpt.save(state)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.3f}", val=f"{score:.3f}")
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            return {"stopped_after_epoch": epoch}
    bar.close()
    writer.flush()

    if strategy.num_replicas_in_sync > 1:  # the saved model is the plain one (BN unsynchronised, no replicas)
        plain = build_model(recipe, len(data.labels), stats)
        plain.set_weights(model.get_weights())
        model = plain
    if os.path.exists(best_path):
        model.load_weights(best_path)
    atomic_save_keras(model, os.path.join(out, rundir.MODEL))
    summary = {"recipe": recipe.name, "epochs": recipe.schedule.epochs, "best_epoch": state["best_epoch"] + 1,
               "best_val_accuracy": state["best_val_accuracy"], "params": int(model.count_params()),
               "bad_files": [str(b) for b in data.bad_files]}
    if strategy.num_replicas_in_sync > 1:
        summary.update(strategy=recipe.distribute.strategy, replicas=strategy.num_replicas_in_sync)
    atomic_write_json(os.path.join(out, rundir.TRAIN_SUMMARY), summary)
    distribute.drop_scratch(run_dir, strategy)
    return summary


def train_recipe_file(path: str, out: str | None = None, **kwargs) -> dict:
    recipe = load_recipe(path)
    return train(recipe, out or rundir.default_run_dir(recipe.name), **kwargs)
