"""Wall and CPU time of training epochs three ways (input pipeline alone, model alone on batches in memory, end to
end), each the median of N epochs taken in turn. It uses only the training API that every revision since issue 15
has, so the same file measures an older checkout too (docs/results.md, "Training at scale"):

    python benchmarks/epoch_cpu.py recipes/ds_cnn_gsc12.json --repeats 8
    git worktree add /tmp/before REV && ln -s "$PWD/data/generated" /tmp/before/data/generated
    (cd /tmp/before && PYTHONPATH=/tmp/before python "$OLDPWD/benchmarks/epoch_cpu.py" recipes/ds_cnn_gsc12.json)

CPU seconds per clip (all threads) next to clips/s show how much of the 2 cores each part keeps busy.
"""
import argparse
import json
import time

import numpy as np

from kws_zoo.core.compat import tf
from kws_zoo.recipe import load_recipe
from kws_zoo.train import compiled_model, fit_epoch, prepare_data, train_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    data = prepare_data(recipe, False)
    batches = [(x.numpy(), y.numpy()) for x, y in train_dataset(recipe, data, 1)]
    feats, labels = np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])
    flat = feats[:800].reshape(-1, feats.shape[-1]).astype(np.float64)
    model, _ = compiled_model(recipe, data, (flat.mean(0), np.maximum(flat.var(0), 1e-6)))
    in_memory = tf.data.Dataset.from_tensor_slices((feats, labels)).batch(recipe.schedule.batch_size).cache()
    for _ in in_memory:
        pass
    fit_epoch(model, recipe, data, 2, dataset=in_memory)  # warm-up: traces
    fit_epoch(model, recipe, data, 3)
    runs = {"input_alone": [], "model_alone": [], "end_to_end": []}

    def timed(key, run):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        runs[key].append({"clips_per_s": len(labels) / wall, "cpu_us_per_clip": cpu / len(labels) * 1e6,
                          "cores_busy": cpu / wall})

    for k in range(args.repeats):
        timed("input_alone", lambda: [None for _ in train_dataset(recipe, data, 40 + k)])
        timed("model_alone", lambda: fit_epoch(model, recipe, data, 50 + k, dataset=in_memory))
        timed("end_to_end", lambda: fit_epoch(model, recipe, data, 60 + k))
    median = {key: {m: round(float(np.median([r[m] for r in rs])), 2) for m in rs[0]} for key, rs in runs.items()}
    ratio = median["end_to_end"]["clips_per_s"] / median["model_alone"]["clips_per_s"]
    print(json.dumps({"recipe": recipe.name, "repeats": args.repeats, "median": median,
                      "end_to_end_of_model_alone": round(ratio, 3),
                      "clips_per_s": {key: [round(r["clips_per_s"]) for r in rs] for key, rs in runs.items()}},
                     indent=2))


if __name__ == "__main__":
    main()
