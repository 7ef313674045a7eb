"""`kws-zoo bench-input` on a tiny tone-corpus recipe: every figure is the median of its listed runs, each run says
how many cores it kept busy, the ratio is end to end over model alone, `--ablate` lists every variant, and a bad
--repeats is a one-line error."""
import json

import numpy as np
import pytest

from kws_zoo.cli import main

from helpers import make_tone_corpus, tiny_recipe_dict

FIGURES = ("input_alone", "model_alone", "model_steps_alone", "end_to_end")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    path = root / "tiny.json"
    path.write_text(json.dumps(tiny_recipe_dict(make_tone_corpus(root / "corpus", speakers=16))))
    return str(path)


def test_figures_are_medians_of_interleaved_runs(recipe, capsys):
    main(["bench-input", recipe, "--repeats", "2", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert out["repeats"] == 2 and out["batch_size"] == 16 and out["train_clips"] > 3 * 16
    for key in FIGURES:
        runs = out["runs_clips_per_s"][key]
        assert len(runs) == 2 and min(runs) > 0
        assert out[f"{key}_clips_per_s"] == pytest.approx(np.median(runs), abs=0.1)
    assert set(out["runs_cores_busy"]) == {"input_alone", "model_alone", "end_to_end"}
    assert all(len(v) == 2 and min(v) > 0 for v in out["runs_cores_busy"].values())
    # The ratio is of the unrounded medians; the printed figures are rounded to 0.1 clips/s, which on this tiny
    # recipe's tens of clips/s moves their ratio by up to a few tenths of a percent.
    e2e, model = out["end_to_end_clips_per_s"], out["model_alone_clips_per_s"]
    rounding = e2e / model * (0.05 / e2e + 0.05 / model) + 5e-4
    assert out["end_to_end_of_model_alone"] == pytest.approx(e2e / model, abs=rounding)
    assert out["epoch_with_validation_s"] > 0


def test_ablation_times_every_variant(recipe, capsys):
    main(["bench-input", recipe, "--ablate", "--repeats", "1", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert set(out["input_alone_clips_per_s"]) == {"all", "none", "no reverb", "no background", "no speed",
                                                   "no lowpass", "no spec_augment"}
    assert min(out["input_alone_clips_per_s"].values()) > 0
    assert out["us_per_clip"]["all"] == pytest.approx(1e6 / out["input_alone_clips_per_s"]["all"], rel=1e-3)


def test_repeats_must_be_positive(recipe, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench-input", recipe, "--repeats", "0"])
    assert exit_.value.code == 2 and "positive whole number" in capsys.readouterr().err
