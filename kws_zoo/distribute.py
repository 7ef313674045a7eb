"""Training on more than one device or machine with tf.distribute, as a recipe's `distribute` section asks.

- "default": TensorFlow's default strategy, one device: training is exactly what it was before strategies.
- "mirrored": MirroredStrategy over this machine's devices (GPUs; on a CPU-only machine, one replica).
- "multi_worker": MultiWorkerMirroredStrategy; the cluster and this process's place in it come from TF_CONFIG, as
  on any TensorFlow cluster (`kws-zoo train --workers N` writes it for N local processes).

The global batch stays the recipe's batch_size: each global batch of the epoch's (seeded) order is cut into one
contiguous share per replica, BatchNormalization layers synchronise their batch statistics across replicas, and
the loss is averaged over the global batch, so one step on N workers is one step of one worker on the same batch
(up to float summation order; tests/test_distribute.py). Only the chief writes the run directory; the others write
the same files into scratch folders that are deleted (a save may need every worker to take part).
"""
from __future__ import annotations

import json
import os
import shutil

from kws_zoo.core.compat import keras, tf
from kws_zoo.core.errors import ConfigError
from kws_zoo.recipe import DistributeConfig

def cluster_spec() -> tuple[int, int]:
    """(this worker's index, number of workers) from TF_CONFIG; (0, 1) without one."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0, 1
    try:
        cfg = json.loads(raw)
        workers = cfg["cluster"]["worker"]
        task = cfg["task"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"TF_CONFIG is not a cluster spec with cluster.worker and task ({err})") from None
    if task.get("type") != "worker" or not 0 <= int(task.get("index", -1)) < len(workers):
        raise ConfigError(f"TF_CONFIG task must be a worker with an index below {len(workers)}, got {task}")
    return int(task["index"]), len(workers)


def make_strategy(cfg: DistributeConfig) -> tf.distribute.Strategy:
    if cfg.strategy == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError("distribute.strategy 'multi_worker' needs TF_CONFIG (the cluster and this worker's "
                              "index); `kws-zoo train --workers N` sets it for N local workers")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cfg.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or resolver.task_type in (None, "chief") or \
        (resolver.task_type == "worker" and resolver.task_id == 0)


def input_pipelines(strategy: tf.distribute.Strategy) -> int:
    """One input pipeline per worker: the TF_CONFIG cluster's size for multi-worker, else 1."""
    return cluster_spec()[1] if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else 1


def write_dir(run_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this worker writes: the run directory for the chief, a scratch folder for the others (remove it with
    `drop_scratch`)."""
    if is_chief(strategy):
        return run_dir
    return os.path.join(run_dir, ".workers", str(strategy.cluster_resolver.task_id))


def drop_scratch(run_dir: str, strategy: tf.distribute.Strategy) -> None:
    if not is_chief(strategy):
        shutil.rmtree(write_dir(run_dir, strategy), ignore_errors=True)


def synchronize_batch_norm(model: keras.Model) -> None:
    """Every BatchNormalization of `model` (nested ones too) normalises with the global batch's statistics when
    replicas train together, as one device would on the whole batch; with one replica nothing changes."""
    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            layer.fused = False  # the fused kernel cannot take cross-replica moments
