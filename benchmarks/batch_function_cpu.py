"""CPU time per clip of the training input's batch function alone (augmentation, features, SpecAugment), run on one
thread so that it counts work, not waiting or spinning: 2,000 clips of the recipe's training split in batches of
its size, the median of N passes. It runs on every revision since issue 15 (docs/results.md, "Training at scale"):

    export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
    python benchmarks/batch_function_cpu.py recipes/ds_cnn_gsc12.json
    cd /tmp/before && PYTHONPATH=$PWD python "$OLDPWD/benchmarks/batch_function_cpu.py" recipes/ds_cnn_gsc12.json
"""
import argparse
import json
import os
import time

import numpy as np

from kws_zoo.core.compat import tf
from kws_zoo.data import pipeline
from kws_zoo.recipe import load_recipe
from kws_zoo.train import prepare_data

THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")  # set both to 1 (the docstring)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clips", type=int, default=2000)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    data = prepare_data(recipe, False)
    waves, count = data.waveforms["train"], len(data.targets["train"])
    batch = recipe.schedule.batch_size
    features = pipeline._feature_function(waves, data.background, recipe.augment, recipe.seed, recipe.frontend)
    uniforms = pipeline._epoch_uniforms(count, recipe.augment, recipe.seed, 0)
    rooms = ()  # the epoch's reverb rooms are an argument since they are drawn per epoch
    if hasattr(pipeline, "_epoch_rooms"):
        rooms = (pipeline._epoch_rooms(waves, recipe.augment, recipe.seed, 0, recipe.frontend.sample_rate),)
    order = np.random.default_rng(0).permutation(count)[:args.clips]
    batches = [(tf.constant(order[s:s + batch], tf.int64), tf.gather(uniforms, order[s:s + batch]))
               for s in range(0, len(order), batch)]
    features(*batches[0], *rooms)  # traces
    runs = []
    for _ in range(args.repeats):
        cpu = time.process_time()
        for indices, u in batches:
            features(indices, u, *rooms).numpy()
        runs.append((time.process_time() - cpu) / len(order) * 1e6)
    print(json.dumps({"recipe": recipe.name, "clips": len(order),
                      "cpu_us_per_clip_median": round(float(np.median(runs))),
                      "cpu_us_per_clip": [round(r) for r in runs],
                      "threads": {k: os.environ.get(k) for k in THREAD_VARIABLES}}))


if __name__ == "__main__":
    main()
