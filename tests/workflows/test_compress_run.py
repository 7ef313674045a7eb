"""The chained recipe end to end on a tiny corpus: train -> re-parameterize -> prune / DSNN -> QAT -> int8 on TFLM."""
import json
import os

import numpy as np
import pytest

from kws_zoo import cli, rundir
from kws_zoo.core.errors import RunDirError
from kws_zoo.device.flatbuffer import weight_sparsity
from kws_zoo.recipe import recipe_from_dict
from kws_zoo.workflows.compress_run import compress_run
from kws_zoo.workflows.export_run import export_run

from helpers import make_tone_corpus, tiny_recipe_dict

# Its module-scoped fixtures train: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_compress_run")

PRUNE_QAT = {"method": "prune", "prune": {"sparsity": 0.5, "frequency": 5}, "qat": {"weight_bits": 8},
             "epochs": 2, "learning_rate": 1e-3}
DSNN = {"method": "dsnn", "dsnn": {"levels": [0.0, 0.5, 0.75], "levels_per_step": 2}, "epochs": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("compress")
    corpus = make_tone_corpus(root / "corpus", speakers=30)
    path = root / "tiny_prune_qat.json"
    path.write_text(json.dumps({**tiny_recipe_dict(corpus, epochs=4), "compress": PRUNE_QAT}))
    run_dir = root / "run"
    cli.main(["train", str(path), "--out", str(run_dir), "--quiet"])
    cli.main(["export", str(run_dir), "--json"])
    with open(run_dir / rundir.EXPORT_DIR / rundir.MODEL_CARD) as f:
        return corpus, run_dir, json.load(f)


def test_train_runs_the_compress_stage_and_records_each_stage(run):
    _, run_dir, _ = run
    with open(run_dir / rundir.COMPRESS_SUMMARY) as f:
        summary = json.load(f)
    assert set(summary["accuracy"]) == {"float", "pruned", "qat"}
    assert all(0.0 <= v <= 1.0 for v in summary["accuracy"].values())
    assert (run_dir / rundir.COMPRESSED_MODEL).exists()


def test_export_deploys_the_pruned_qat_model(run):
    _, run_dir, card = run
    entry = card["compress"]
    assert entry["method"] == "prune" and entry["qat"]["weight_bits"] == 8
    assert entry["accuracy"]["tflm_int8"] == card["accuracy"]["tflm_int8"]
    with open(run_dir / rundir.EXPORT_DIR / rundir.TFLITE_INT8, "rb") as f:
        sparsity = weight_sparsity(f.read())
    pruned = [v for v in sparsity.values() if v > 0.1]
    assert pruned and all(abs(v - 0.5) <= 0.01 for v in pruned), sparsity  # the requested 50%, on the device
    assert entry["flash_bytes"] == card["flash_bytes"] and entry["flash_bytes_lut"] <= entry["flash_bytes"]
    # The card still has every field of an uncompressed export.
    assert {"accuracy", "arena_bytes", "flash_bytes", "ops", "files"} <= set(card)


def test_same_settings_do_not_run_again_and_new_ones_do(run):
    corpus, run_dir, _ = run
    recipe = recipe_from_dict({**tiny_recipe_dict(corpus, epochs=4), "compress": PRUNE_QAT})
    before = os.path.getmtime(run_dir / rundir.COMPRESSED_MODEL)
    assert compress_run(str(run_dir), recipe, progress=False)["accuracy"]
    assert os.path.getmtime(run_dir / rundir.COMPRESSED_MODEL) == before


def test_dsnn_exports_one_model_per_level_from_one_checkpoint(run, tmp_path):
    corpus, run_dir, _ = run
    recipe = recipe_from_dict({**tiny_recipe_dict(corpus, epochs=4), "compress": DSNN})
    summary = compress_run(str(run_dir), recipe, progress=False)
    assert set(summary["levels"]) == {"0", "0.5", "0.75"}
    (run_dir / rundir.RECIPE).write_text(json.dumps(recipe.to_dict()))  # the run now holds the DSNN recipe
    out = tmp_path / "export"
    cli.main(["export", str(run_dir), "--out", str(out), "--json"])
    card = json.loads((out / rundir.MODEL_CARD).read_text())
    levels = card["compress"]["levels"]
    assert set(levels) == {"0", "0.5", "0.75"}
    means = [levels[k]["mean_sparsity"] for k in ("0", "0.5", "0.75")]
    assert means == sorted(means) and means[0] < 0.05  # sparser levels hold more zeros, the dense one almost none
    for row in levels.values():
        assert (out / row["file"]).exists() and 0.0 <= row["tflm_int8"] <= 1.0
    assert np.isclose(levels["0"]["tflm_int8"], card["accuracy"]["tflm_int8"])


def test_export_refuses_a_compression_stage_run_with_other_settings(run, tmp_path):
    corpus, run_dir, _ = run
    saved = (run_dir / rundir.RECIPE).read_text()
    other = {**PRUNE_QAT, "prune": {"sparsity": 0.6, "frequency": 5}}
    try:
        (run_dir / rundir.RECIPE).write_text(json.dumps({**tiny_recipe_dict(corpus, epochs=4), "compress": other}))
        with pytest.raises(RunDirError, match="compression stage has not run with its current settings"):
            export_run(str(run_dir), str(tmp_path / "export"), progress=False)
    finally:
        (run_dir / rundir.RECIPE).write_text(saved)
