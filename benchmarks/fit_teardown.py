"""Where an end-to-end training epoch's time goes, with tf.data's autotuning on (as before issue 15's last change)
and off (kws_zoo.data.pipeline.fixed_parallelism), epochs taken in turn in one process. Per epoch: clips/s, cores
busy (CPU seconds of all threads over wall seconds) and the time Keras `fit` takes to return
after its last callback (deleting the epoch's iterator): an autotuned iterator stalled there, idle, for seconds.

    python benchmarks/fit_teardown.py recipes/ds_cnn_gsc12.json --epochs 6
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from kws_zoo import train as training
from kws_zoo.core.compat import keras, tf
from kws_zoo.recipe import load_recipe
from kws_zoo.workflows import bench_input


class _Marks(keras.callbacks.Callback):
    """When `fit` ran its last callback."""

    def on_train_end(self, logs=None):
        self.end = time.perf_counter()


def _autotuned(make_dataset):
    def make(*args, **kwargs):
        options = tf.data.Options()
        options.autotune.enabled = True
        options.threading.max_intra_op_parallelism = 0  # TensorFlow's default
        return make_dataset(*args, **kwargs).with_options(options)
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each kind, taken in turn")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    data = training.prepare_data(recipe, True)
    _, _, batches = bench_input._input_alone(recipe, data, 1, False)
    model = bench_input._model_for(recipe, data, batches)
    clips = len(data.targets["train"])
    fixed = training.make_dataset
    results = {"autotuned": [], "fixed": []}
    for epoch in range(args.epochs):
        for kind in results:
            training.make_dataset = _autotuned(fixed) if kind == "autotuned" else fixed
            marks, clock = _Marks(), bench_input._Clock()
            training.fit_epoch(model, recipe, data, 40 + epoch, callbacks=[marks])
            rate, busy = clock.rate(clips)
            results[kind].append((rate, busy, time.perf_counter() - marks.end))
            print(f"{kind:9s} epoch {epoch}: {rate:6.0f} clips/s, {busy:.2f} cores busy, "
                  f"fit returned {1000 * results[kind][-1][2]:5.0f} ms after its last callback", flush=True)
    training.make_dataset = fixed
    for kind, rows in results.items():
        rate, busy, tail = np.median(np.array(rows), axis=0)
        stalls = sum(row[2] > 0.5 for row in rows)
        print(f"{kind:9s} median {rate:6.0f} clips/s, {busy:.2f} cores busy, {1000 * tail:.0f} ms after the last "
              f"callback; epochs stalled over 0.5 s: {stalls} of {len(rows)}")


if __name__ == "__main__":
    main()
