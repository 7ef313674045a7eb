"""The chained recipe end to end on a tiny corpus: train -> re-parameterize -> prune / DSNN -> QAT -> int8 on TFLM."""
import json
import os

import numpy as np
import pytest

from kws_zoo import cli, rundir
from kws_zoo.core.config import to_dict
from kws_zoo.core.errors import RunDirError
from kws_zoo.device.flatbuffer import weight_sparsity
from kws_zoo.recipe import recipe_from_dict
from kws_zoo.train import prepare_data, validation_dataset
from kws_zoo.workflows.compare import compression_columns
from kws_zoo.workflows.compress_run import (compress_run, deployed_float, dsnn_level, load_compressed, read_bn_stats,
                                            read_ranks, same_settings)
from kws_zoo.workflows.export_run import export_run

from helpers import make_tone_corpus, tiny_recipe_dict

# Its module-scoped fixtures train: under pytest-xdist the module stays on one worker.
pytestmark = pytest.mark.xdist_group("test_compress_run")

PRUNE_QAT = {"method": "prune", "prune": {"sparsity": 0.5, "frequency": 5}, "qat": {"weight_bits": 8},
             "epochs": 2, "learning_rate": 1e-3}
DSNN = {"method": "dsnn", "dsnn": {"levels": [0.0, 0.5, 0.75], "levels_per_step": 2, "private_bn": True,
                                   "mask_end_fraction": 0.75}, "epochs": 2}


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
    assert entry["flash_bytes"] == card["flash_bytes"]
    assert entry["flash_bytes_lut"] <= entry["flash_bytes_trimmed"] < entry["flash_bytes"]
    assert (run_dir / rundir.EXPORT_DIR / rundir.TFLITE_INT8_LUT).stat().st_size == entry["flash_bytes_lut"]
    # The card still has every field of an uncompressed export.
    assert {"accuracy", "arena_bytes", "flash_bytes", "ops", "files"} <= set(card)


def test_qat_keeps_the_epoch_with_the_best_validation_accuracy(run):
    corpus, run_dir, _ = run
    with open(run_dir / rundir.COMPRESS_SUMMARY) as f:
        summary = json.load(f)
    scores = [row["val_accuracy"] for row in summary["qat_history"]]
    assert len(scores) == PRUNE_QAT["epochs"]
    assert summary["qat_epoch"] == int(np.argmax(scores)) + 1  # the first best, as training selects
    recipe = recipe_from_dict({**tiny_recipe_dict(corpus, epochs=4), "compress": PRUNE_QAT})
    model = load_compressed(str(run_dir))
    x, y = zip(*validation_dataset(recipe, prepare_data(recipe, False)).as_numpy_iterator())
    kept = np.mean(np.concatenate([model.predict(batch, verbose=0).argmax(-1) for batch in x]) == np.concatenate(y))
    assert kept == pytest.approx(max(scores), abs=1e-6)  # the saved model is that epoch's


def test_same_settings_do_not_run_again_and_new_ones_do(run):
    corpus, run_dir, _ = run
    recipe = recipe_from_dict({**tiny_recipe_dict(corpus, epochs=4), "compress": PRUNE_QAT})
    before = os.path.getmtime(run_dir / rundir.COMPRESSED_MODEL)
    assert compress_run(str(run_dir), recipe, progress=False)["accuracy"]
    assert os.path.getmtime(run_dir / rundir.COMPRESSED_MODEL) == before
    recorded = to_dict(recipe.compress)
    del recorded["dsnn"]["mask_end_fraction"]  # a stage recorded before a setting existed: its default holds
    assert same_settings(recorded, recipe.compress)
    assert not same_settings({**recorded, "retired_setting": 1}, recipe.compress)


def test_deployed_float_is_what_the_int8_model_holds(run):
    """The streaming export converts deployed_float: the QAT model without quantizers, its pruned zeros kept and
    every conv kernel on the per-channel 8-bit grid QAT trained (what the int8 .tflite stores)."""
    corpus, run_dir, _ = run
    recipe = recipe_from_dict({**tiny_recipe_dict(corpus, epochs=4), "compress": PRUNE_QAT})
    model = deployed_float(str(run_dir), recipe)
    assert not any(hasattr(layer, "quantize_config") for layer in model.layers)
    kernels = [layer.kernel.numpy() for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert any(np.mean(k == 0) > 0.45 for k in kernels)  # pruned at 50% (the first conv is kept dense)
    for k in kernels:
        steps = k / (np.abs(k).max(axis=(0, 1, 2)) / 127)
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)


def test_dsnn_exports_one_model_per_level_from_one_checkpoint(run, tmp_path):
    # Replaces the run's compression stage: the tests above use the prune + QAT one.
    corpus, run_dir, _ = run
    recipe = recipe_from_dict({**tiny_recipe_dict(corpus, epochs=4), "compress": DSNN})
    summary = compress_run(str(run_dir), recipe, progress=False)
    assert set(summary["levels"]) == {"0", "0.5", "0.75"}
    stats = read_bn_stats(str(run_dir))  # each level's BN statistics, and (private_bn) its own scale and offset
    assert {len(parts) for by_layer in stats.values() for parts in by_layer.values()} == {4}
    ranks = read_ranks(str(run_dir))  # the ranking frozen at 75% of the steps: what every level's masks cut
    half = dsnn_level(load_compressed(str(run_dir)), summary, stats, 0.5, ranks)  # what export converts
    assert ranks
    for name, order in ranks.items():
        assert sorted(order.ravel()) == list(range(order.size))
        kernel = half.get_layer(name).kernel.numpy()
        np.testing.assert_array_equal(kernel == 0, order >= order.size - round(0.5 * order.size))
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



def test_a_compress_variant_starts_from_a_finished_training(run, tmp_path, capsys):
    """`kws-zoo train VARIANT --from RUN`: a recipe differing only in name and compress section takes RUN's training
    as it is (no epoch runs again) and runs only its own compression stage; another model is refused."""
    corpus, run_dir, _ = run
    variant = {**tiny_recipe_dict(corpus, name="tiny_qat4", epochs=4),
               "compress": {"qat": {"weight_bits": 4}, "epochs": 1}}
    path = tmp_path / "tiny_qat4.json"
    path.write_text(json.dumps(variant))
    out = tmp_path / "variant"
    cli.main(["train", str(path), "--from", str(run_dir), "--out", str(out), "--quiet"])
    assert rundir.read_checkpoint_state(out)["history"] == rundir.read_checkpoint_state(run_dir)["history"]
    assert json.loads((out / rundir.RECIPE).read_text())["name"] == "tiny_qat4"
    assert rundir.read_info(out).recipe == "tiny_qat4"
    summary = json.loads((out / rundir.COMPRESS_SUMMARY).read_text())
    assert summary["compress"]["qat"]["weight_bits"] == 4 and set(summary["accuracy"]) == {"float", "qat"}

    other = {**variant, "model_overrides": {**variant["model_overrides"], "filters": 8}}
    path.write_text(json.dumps(other))
    with pytest.raises(SystemExit):
        cli.main(["train", str(path), "--from", str(run_dir), "--out", str(tmp_path / "other"), "--quiet"])
    assert "holds no finished training of tiny_qat4's model" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_compare_shows_the_compression_columns(run):
    _, run_dir, card = run
    columns = compression_columns(card["compress"])
    assert columns["compression"] == "prune + QAT w8a8"
    assert columns["accuracy_qat"] == card["compress"]["accuracy"]["qat"]
    assert abs(columns["sparsity"] - card["compress"]["sparsity"]["mean"]) < 1e-12
    assert compression_columns(None)["compression"] is None
