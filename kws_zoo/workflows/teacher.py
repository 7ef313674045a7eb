"""A teacher that hears real people: a small classifier on Google's speech_embedding vectors, trained on a
recipe's (synthetic) data. `kws-zoo pseudo-label TEACHER_DIR` then labels unlabelled real recordings for a device
model's self-training (docs/results.md, issue 12).

The embedding CNN is too slow to run inside every training epoch, so the training clips are embedded once: the
clean clips, then `copies` augmented copies (the recipe's waveform augmentation, epoch k's seeds), each cached as
it finishes (embeddings/<name>.npy), so a killed run resumes where it stopped. The folder is a model folder like a
run: model.keras (the epoch with the best validation accuracy), kws_zoo.json (frontend speech_embedding) and
recipe.json, so `evaluate`, `pseudo-label` and load_predictor take it as it is.
"""
from __future__ import annotations

import io
import os

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError, RunDirError
from kws_zoo.core.files import atomic_save_keras, atomic_write_bytes, atomic_write_json
from kws_zoo.data import speech_embedding
from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.data.pipeline import prepared_waveforms
from kws_zoo.models.embedding_head import build_embedding_head
from kws_zoo.recipe import Recipe, load_recipe, save_recipe
from kws_zoo.train import holds_other_recipe, prepare_data

EMBEDDINGS_DIR = "embeddings"
TEACHER_SUMMARY = "teacher_summary.json"


def _cached(folder: str, name: str, waves, progress: bool) -> np.ndarray:
    path = os.path.join(folder, f"{name}.npy")
    if os.path.exists(path):
        return np.load(path)
    vectors = speech_embedding.embed(waves(), progress=progress, desc=f"speech_embedding {name}")
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    atomic_write_bytes(path, buffer.getvalue())
    return vectors


def train_teacher(recipe: Recipe | str, out_dir: str, *, copies: int = 2, epochs: int = 30,
                  learning_rate: float = 1e-3, batch_size: int = 128, progress: bool = True) -> dict:
    """Trains the speech_embedding classifier on `recipe`'s data into out_dir; returns the summary (also written
    to out_dir/teacher_summary.json)."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if copies < 0 or epochs < 1:
        raise ConfigError(f"need copies >= 0 and epochs >= 1, got {copies}, {epochs}")
    if recipe.frontend.sample_rate != 16000:
        raise ConfigError(f"{recipe.name}: speech_embedding needs 16 kHz audio, the recipe has "
                          f"{recipe.frontend.sample_rate} Hz")
    if holds_other_recipe(out_dir, recipe):  # its cached embeddings are another recipe's clips
        raise RunDirError(f"{out_dir}: holds a teacher of a different recipe; move it away or use another --out")
    data = prepare_data(recipe, progress)
    cache = os.path.join(out_dir, EMBEDDINGS_DIR)
    os.makedirs(cache, exist_ok=True)
    save_recipe(recipe, os.path.join(out_dir, rundir.RECIPE))  # also lets `--data recipe` evaluate on its splits

    def clips(split: str, copy: int = 0):  # copy 0: as evaluation sees them (silence filled), k: augmented
        return lambda: prepared_waveforms(data.waveforms[split], background=data.background, seed=recipe.seed,
                                          epoch=copy, augment=recipe.augment if copy else None)
    train_x = np.concatenate([_cached(cache, f"train{k}", clips("train", k), progress) for k in range(copies + 1)])
    train_y = np.tile(data.targets["train"], copies + 1)
    val = (_cached(cache, "validation", clips("validation"), progress), data.targets["validation"])
    test = (_cached(cache, "test", clips("test"), progress), data.targets["test"])

    keras.utils.set_random_seed(recipe.seed)
    model = build_embedding_head(train_x.shape[1:], len(data.labels))
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    best = keras.callbacks.EarlyStopping("val_accuracy", patience=epochs, restore_best_weights=True)
    history = model.fit(train_x, train_y, batch_size=batch_size, epochs=epochs, validation_data=val,
                        callbacks=[best], verbose=2 if progress else 0).history
    test_accuracy = float(np.mean(model.predict(test[0], verbose=0).argmax(axis=1) == test[1]))
    atomic_save_keras(model, os.path.join(out_dir, rundir.MODEL))
    frontend = FrontendConfig(kind="speech_embedding", sample_rate=recipe.frontend.sample_rate)
    rundir.write_info(out_dir, rundir.ModelInfo(tuple(data.labels), frontend, recipe.clip_ms, "embedding_head",
                                                recipe.name))
    summary = {"recipe": recipe.name, "copies": copies, "epochs": epochs, "train_examples": int(len(train_y)),
               "best_epoch": int(np.argmax(history["val_accuracy"])) + 1,
               "validation_accuracy": float(max(history["val_accuracy"])), "test_accuracy": test_accuracy,
               "history": {k: [float(v) for v in values] for k, values in history.items()}}
    atomic_write_json(os.path.join(out_dir, TEACHER_SUMMARY), summary)
    return summary
