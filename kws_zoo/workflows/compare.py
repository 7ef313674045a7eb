"""Train and export several recipes under one budget and tabulate what each costs and achieves.

Every number comes from the run's own artifacts: the model card written by `kws_zoo.workflows.export_run`
(sizes, MACs, arena, TFLM accuracy) and the training checkpoint's history (epochs, seconds). Finished
stages are reused: a run dir with a complete checkpoint is not retrained, and a model card newer than
its model is not re-exported, so rerunning a comparison after adding a recipe only does the new work.
"""
from __future__ import annotations

import json
import os
import sys
import time

from kws_zoo import rundir
from kws_zoo.core.errors import RecipeError, RunDirError
from kws_zoo.core.files import atomic_write_json, atomic_write_text
from kws_zoo.evaluate.plots import plot_comparison
from kws_zoo.models import get_entry
from kws_zoo.recipe import Recipe, load_recipe, save_recipe, with_epochs
from kws_zoo.train import copy_training, holds_other_recipe, train, training_finished, training_key
from kws_zoo.workflows.compress_run import compress_run
from kws_zoo.workflows.export_run import export_run

# Row keys, in table order. None marks a value the run does not have (no FSDD eval, no callgrind).
COLUMNS = ("name", "model", "family", "frontend", "params", "inference_params", "trainable_params", "macs",
           "multiplications_avoided", "flash_bytes", "arena_bytes", "tflm_invoke_ms_host",
           "instructions_per_invoke", "accuracy_float", "accuracy_tflm_int8", "test_examples", "fsdd_float",
           "fsdd_tflm_int8", "fsdd_float_closed_set", "fsdd_tflm_int8_closed_set", "fsdd_examples", "epochs",
           "train_seconds", "compression", "accuracy_pruned", "accuracy_qat", "sparsity", "flash_bytes_lut",
           "levels", "extra_tflm_int8", "run_dir")
# Model card fields copied into a row; a card from an older export_run without them is re-exported.
CARD_KEYS = ("params", "inference_params", "trainable_params", "macs", "multiplications_avoided", "flash_bytes",
             "arena_bytes", "tflm_invoke_ms_host", "test_examples", "accuracy")


def run_dir_for(recipe: Recipe, out_dir: str) -> str:
    # The epoch budget is part of the name: the cosine schedule depends on it, so runs of one recipe at
    # two budgets are different runs and must not resume each other.
    return os.path.join(out_dir, f"{recipe.name}_e{recipe.schedule.epochs}")


def _fresh_card(run_dir: str, recipe: Recipe, callgrind: bool) -> dict | None:
    """The existing model card if it describes the current model.keras and has every field asked for."""
    path = os.path.join(run_dir, rundir.EXPORT_DIR, rundir.MODEL_CARD)
    models = [os.path.join(run_dir, name) for name in (rundir.MODEL, rundir.COMPRESSED_MODEL)]
    if not os.path.exists(path) or os.path.getmtime(path) < max(os.path.getmtime(m) for m in models
                                                                 if os.path.exists(m)):
        return None
    with open(path) as f:
        card = json.load(f)
    wanted = CARD_KEYS + (("instructions_per_invoke",) if callgrind else ())
    extra = {cfg.display_name for cfg in recipe.extra_eval}
    if recipe.compress.active:
        wanted += ("compress",)
    return card if all(k in card for k in wanted) and extra <= set(card.get("extra_eval", {})) else None


def frontend_summary(recipe: Recipe) -> str:
    f = recipe.frontend
    if f.kind == "raw":
        return f"raw {f.sample_rate // 1000} kHz"
    bins = f.num_mfcc if f.kind == "mfcc" else f.num_mels
    return f"{f.kind} {bins}, {f.window_ms:g}/{f.hop_ms:g} ms"


def make_row(recipe: Recipe, run_dir: str, card: dict) -> dict:
    history = (rundir.read_checkpoint_state(run_dir) or {"history": []})["history"]
    fsdd = card.get("extra_eval", {}).get("fsdd", {})
    row = {
        "name": recipe.name, "model": recipe.model, "family": get_entry(recipe.model).family,
        "frontend": frontend_summary(recipe),
        **{k: card[k] for k in CARD_KEYS if k != "accuracy"},
        "instructions_per_invoke": card.get("instructions_per_invoke"),
        "accuracy_float": card["accuracy"]["float"], "accuracy_tflm_int8": card["accuracy"]["tflm_int8"],
        "fsdd_float": fsdd.get("float"), "fsdd_tflm_int8": fsdd.get("tflm_int8"),
        "fsdd_float_closed_set": fsdd.get("float_closed_set"),
        "fsdd_tflm_int8_closed_set": fsdd.get("tflm_int8_closed_set"), "fsdd_examples": fsdd.get("examples"),
        "epochs": len(history), "train_seconds": round(sum(h["seconds"] for h in history), 1),
        **compression_columns(card.get("compress")), "run_dir": run_dir,
        "extra_tflm_int8": {name: r["tflm_int8"] for name, r in card.get("extra_eval", {}).items()},
    }
    return {k: row[k] for k in COLUMNS}


def compression_columns(entry: dict | None) -> dict:
    """The compression stage's figures (None for an uncompressed run): accuracy after pruning and after QAT (Keras,
    test split), mean weight sparsity of the int8 .tflite, its flash with TFLM's LUT compression, and TFLM int8
    accuracy per DSNN level."""
    if entry is None:
        return {"compression": None, "accuracy_pruned": None, "accuracy_qat": None, "sparsity": None,
                "flash_bytes_lut": None, "levels": None}
    return {"compression": describe_compression(entry), "accuracy_pruned": entry["accuracy"].get("pruned"),
            "accuracy_qat": entry["accuracy"].get("qat"), "sparsity": entry["sparsity"]["mean"],
            "flash_bytes_lut": entry["flash_bytes_lut"],
            "levels": {k: v["tflm_int8"] for k, v in entry["levels"].items()} if "levels" in entry else None}


def describe_compression(entry: dict) -> str:
    parts = [] if entry["method"] == "none" else [entry["method"]]
    if entry.get("qat"):
        parts.append(f"QAT w{entry['qat']['weight_bits']}a{entry['qat']['activation_bits']}")
    return " + ".join(parts)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"compare: {message}", file=sys.stderr, flush=True)


def compare(recipes, out_dir: str, epochs: int | None = None, callgrind: bool = False,
            progress: bool = True) -> list[dict]:
    """Trains (or resumes) and exports each recipe into out_dir/<name>_e<epochs>; writes compare.json,
    compare.md and compare.png into out_dir; returns one row per recipe (keys: COLUMNS).

    recipes: Recipe instances, recipe files, or built-in recipe names.
    """
    loaded = [with_epochs(r if isinstance(r, Recipe) else load_recipe(r), epochs) for r in recipes]
    names = [r.name for r in loaded]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RecipeError(f"recipe names must be distinct (they name the run dirs): {duplicates}")
    os.makedirs(out_dir, exist_ok=True)
    # trained: training key -> a finished run dir of it, shared by compress variants (also those of earlier runs)
    rows, trained = [], finished_trainings(out_dir)
    for i, recipe in enumerate(loaded, 1):
        tag = f"[{i}/{len(loaded)}] {recipe.name}"
        run_dir = run_dir_for(recipe, out_dir)
        key = training_key(recipe.training_dict())
        if key in trained and trained[key] != run_dir:  # a compress variant: that training, this recipe.json
            if not training_finished(run_dir, recipe):
                _say(progress, f"{tag}: same training as {trained[key]}, copied; only the compression stage runs")
            copy_training(trained[key], run_dir, recipe)
        if training_finished(run_dir, recipe):
            if holds_other_recipe(run_dir, recipe):
                raise RunDirError(f"{run_dir}: holds a run of a different recipe; move it away or use another --out")
            save_recipe(recipe, os.path.join(run_dir, rundir.RECIPE))  # same training; e.g. new extra_eval sets
            _say(progress, f"{tag}: trained already ({recipe.schedule.epochs} epochs) in {run_dir}")
        else:
            done = (rundir.read_checkpoint_state(run_dir) or {"epoch": -1})["epoch"] + 1
            _say(progress, f"{tag}: training {recipe.model}, epochs {done + 1}..{recipe.schedule.epochs} -> {run_dir}")
            train(recipe, run_dir, progress=progress)
        trained.setdefault(key, run_dir)
        if recipe.compress.active:
            _say(progress, f"{tag}: compression stage ({describe_compression(_settings(recipe))})")
            compress_run(run_dir, recipe, progress=progress)
        card = _fresh_card(run_dir, recipe, callgrind)
        if card is None:
            _say(progress, f"{tag}: exporting int8 and verifying on TFLM" + (" (+ callgrind)" if callgrind else ""))
            start = time.time()
            card = export_run(run_dir, progress=progress, callgrind=callgrind)
            _say(progress, f"{tag}: exported in {time.time() - start:.0f} s")
        else:
            _say(progress, f"{tag}: model card up to date, not re-exported")
        rows.append(make_row(recipe, run_dir, card))
    write_outputs(rows, out_dir, epochs=epochs, callgrind=callgrind)
    _say(progress, f"wrote {os.path.join(out_dir, 'compare.md')}, compare.json, compare.png")
    return rows


def finished_trainings(out_dir: str) -> dict[str, str]:
    """{training key: run dir} of the finished trainings already in out_dir: per key, a run without a compression
    stage if there is one, else the first by name."""
    found: dict[str, tuple[bool, str]] = {}
    for entry in sorted(os.listdir(out_dir)):
        run_dir = os.path.join(out_dir, entry)
        if entry.endswith(".partial") or not os.path.isfile(os.path.join(run_dir, rundir.RECIPE)):
            continue
        try:
            recipe = load_recipe(os.path.join(run_dir, rundir.RECIPE))
        except RecipeError:
            continue  # written by another version: not reused
        key = training_key(recipe.training_dict())
        if training_finished(run_dir, recipe) and (key not in found or found[key][0] > recipe.compress.active):
            found[key] = (recipe.compress.active, run_dir)
    return {key: run_dir for key, (_, run_dir) in found.items()}


def _settings(recipe: Recipe) -> dict:
    qat = recipe.compress.qat
    return {"method": recipe.compress.method,
            "qat": None if qat is None else {"weight_bits": qat.weight_bits, "activation_bits": qat.activation_bits}}


def write_outputs(rows: list[dict], out_dir: str, epochs: int | None, callgrind: bool) -> None:
    atomic_write_json(os.path.join(out_dir, "compare.json"),
                      {"epochs_override": epochs, "callgrind": callgrind, "columns": list(COLUMNS), "rows": rows})
    atomic_write_text(os.path.join(out_dir, "compare.md"), markdown_table(rows) + "\n")
    plot_comparison(rows, os.path.join(out_dir, "compare.png"))


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def _fsdd(row: dict, runtime: str) -> str:
    if row[f"fsdd_{runtime}"] is None:
        return "–"
    closed = row[f"fsdd_{runtime}_closed_set"]
    return _pct(row[f"fsdd_{runtime}"]) + (f" [{_pct(closed)}]" if closed is not None else "")


def _extra_columns(rows: list[dict]) -> list:
    """A TFLM int8 accuracy column for each extra evaluation set but FSDD (which has its own), e.g. real speech."""
    names = sorted({name for r in rows for name in r.get("extra_tflm_int8") or {} if name != "fsdd"})
    return [(f"{name} TFLM int8", lambda r, n=name: _pct((r.get("extra_tflm_int8") or {}).get(n))) for name in names]


def markdown_table(rows: list[dict]) -> str:
    """One line per row. The callgrind column appears only when some row was measured with it."""
    with_instr = any(r["instructions_per_invoke"] is not None for r in rows)
    cols = [("name", lambda r: r["name"]), ("model", lambda r: r["model"]), ("frontend", lambda r: r["frontend"]),
            ("params train / infer", lambda r: f"{r['params']:,} / {r['inference_params']:,}"),
            ("trainable", lambda r: f"{r['trainable_params']:,}"), ("MACs", lambda r: f"{r['macs']:,}"),
            ("mults avoided (ternary)", lambda r: f"{r['multiplications_avoided']:,}"),
            ("flash B", lambda r: f"{r['flash_bytes']:,}"), ("arena B", lambda r: f"{r['arena_bytes']:,}"),
            ("TFLM invoke ms (host)", lambda r: f"{r['tflm_invoke_ms_host']:.2f}")]
    if with_instr:
        cols.append(("instr / invoke", lambda r: "–" if r["instructions_per_invoke"] is None
                     else f"{r['instructions_per_invoke']:,}"))
    cols += [("test acc float", lambda r: _pct(r["accuracy_float"])),
             ("test acc TFLM int8", lambda r: _pct(r["accuracy_tflm_int8"])),
             ("FSDD float [closed]", lambda r: _fsdd(r, "float")),
             ("FSDD TFLM int8 [closed]", lambda r: _fsdd(r, "tflm_int8")),
             *_extra_columns(rows),
             ("epochs", lambda r: str(r["epochs"])), ("train s", lambda r: f"{r['train_seconds']:.0f}")]
    if any(r["compression"] for r in rows):
        cols += [("compression", lambda r: r["compression"] or "–"),
                 ("acc pruned", lambda r: _pct(r["accuracy_pruned"])),
                 ("acc QAT (Keras)", lambda r: _pct(r["accuracy_qat"])),
                 ("weight sparsity (.tflite)", lambda r: _pct(r["sparsity"])),
                 ("flash LUT B", lambda r: "–" if r["flash_bytes_lut"] is None else f"{r['flash_bytes_lut']:,}"),
                 ("DSNN levels: TFLM int8", lambda r: "–" if r["levels"] is None else
                  ", ".join(f"{k}: {_pct(v)}" for k, v in r["levels"].items()))]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r) for _, fmt in cols) + " |" for r in rows]
    return "\n".join(lines)
