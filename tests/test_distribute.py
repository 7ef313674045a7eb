"""Multi-worker training on 127.0.0.1 (MultiWorkerMirroredStrategy on CPU): the same steps as one worker with the
same global batch, and a worker killed mid-epoch that the job survives from its last backup."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from helpers import CLI, cli_env, make_tone_corpus, tiny_recipe_dict
from kws_zoo.data.pipeline import pipeline_share



def test_pipeline_shares_cut_every_global_batch_into_contiguous_parts():
    order = np.random.default_rng(0).permutation(37)
    shares = [pipeline_share(order, 8, k, 2) for k in range(2)]
    # full batches: 4 + 4 of every 8; the last 5 cut 2 + 3
    starts = range(0, 32, 8)
    np.testing.assert_array_equal(shares[0], np.concatenate([order[i:i + 4] for i in starts] + [order[32:34]]))
    np.testing.assert_array_equal(shares[1], np.concatenate([order[i + 4:i + 8] for i in starts] + [order[34:]]))
    # a last batch smaller than the number of pipelines is dropped (a worker without a batch would stall the others)
    assert [len(pipeline_share(np.arange(33), 8, k, 2)) for k in range(2)] == [16, 16]
    with pytest.raises(ValueError, match="multiple"):
        pipeline_share(order, 7, 0, 2)


def _recipe(root, name: str, speakers: int, epochs: int):
    """A tone corpus and a recipe without dropout (its masks differ per replica)."""
    corpus = make_tone_corpus(root / f"tones{speakers}", speakers=speakers)
    values = tiny_recipe_dict(corpus, name=name, epochs=epochs)
    values["model_overrides"]["dropout_last"] = 0.0
    path = root / f"{name}.json"
    path.write_text(json.dumps(values))
    return path


def _history(run_dir):
    with open(os.path.join(run_dir, "checkpoint.json")) as f:
        return json.load(f)["history"]


def _weights(run_dir):
    from kws_zoo.core.compat import keras

    return keras.models.load_model(os.path.join(run_dir, "model.keras"), compile=False).get_weights()


def _launch(recipe_path, out, *extra):
    return subprocess.Popen([*CLI, "train", str(recipe_path), "--out", out, "--workers", "2", "--quiet", "--json",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())


def _finish(proc) -> dict:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return dict(json.loads(stdout), stderr=stderr)


def test_two_local_workers_take_the_steps_of_one_worker_with_the_same_global_batch(tmp_path):
    from kws_zoo.recipe import load_recipe
    from kws_zoo.train import train

    # 2 epochs of 2 steps: Adam turns the float-rounding differences of synchronised BatchNorm into visible ones
    # within ~5 steps (parameters whose true gradient is zero take lr-sized steps on rounding noise); measured
    # here, steps 1-4 agree to 1e-5, a 5-step mean to 2e-4, step 7 to 1e-3.
    recipe = _recipe(tmp_path, "few_steps", speakers=4, epochs=2)
    train(load_recipe(recipe), str(tmp_path / "one"), progress=False)
    summary = _finish(_launch(recipe, str(tmp_path / "two")))
    assert summary["replicas"] == 2 and summary["restarts"] == 0
    got, want = _history(tmp_path / "two"), _history(tmp_path / "one")
    assert len(got) == len(want) == 2
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in want], rtol=2e-5)
    assert not os.path.exists(tmp_path / "two" / ".workers" / "1")  # the other worker's scratch copy is gone


def test_a_worker_killed_mid_epoch_is_restarted_and_the_job_ends_as_if_uninterrupted(tmp_path):
    recipe = _recipe(tmp_path, "killed", speakers=16, epochs=1)  # 5 steps
    _finish(_launch(recipe, str(tmp_path / "uninterrupted"), "--backup-every", "1"))
    out = str(tmp_path / "killed")
    proc = _launch(recipe, out, "--backup-every", "1")
    backup = os.path.join(out, "backup", "state.json")
    deadline = time.time() + 300
    while not os.path.exists(backup) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert os.path.exists(backup), "no mid-epoch backup was written"
    with open(os.path.join(out, ".workers", "worker-1.pid")) as f:
        os.kill(int(f.read()), signal.SIGKILL)
    summary = _finish(proc)
    assert summary["restarts"] == 1 and "restarting all 2 from the last backup" in summary["stderr"]
    assert "resumed_at_step" in _history(out)[0]
    for a, b in zip(_weights(out), _weights(tmp_path / "uninterrupted")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
