"""Export a trained run for a device: int8 .tflite verified on TFLM, C array, op resolver, model card.

The card's accuracies are measured here on the run's own test split (unseen voices for the synthetic
corpus): float Keras, int8 on LiteRT and int8 on the real TFLite Micro interpreter (the reference).
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np

from kws_zoo.data.pipeline import features_for
from kws_zoo.evaluate.accuracy import classification_report
from kws_zoo.evaluate.plots import plot_confusion
from kws_zoo.device.flatbuffer import quant_params
from kws_zoo.export.tflite import to_tflite_float, to_tflite_int8
from kws_zoo.rundir import METADATA
from kws_zoo.models.saving import load_keras
from kws_zoo.core.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from kws_zoo.models.profile import count_macs
from kws_zoo.device.flatbuffer import tflite_ops
from kws_zoo.layers.ternary_pointwise import ternary_layers, ternary_multiplications_avoided
from kws_zoo.export.ternary import to_tflite_int8_ternary
from kws_zoo.recipe import load_recipe
from kws_zoo.export.reparam import reparameterize
from kws_zoo.train import prepare_data
from kws_zoo.core.files import atomic_save_keras

REPRESENTATIVE_EXAMPLES = 500


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _representative(features: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return features[rng.permutation(len(features))[:REPRESENTATIVE_EXAMPLES]]


def export_run(run_dir: str, out_dir: str | None = None, progress: bool = True, callgrind: bool = False) -> dict:
    from kws_zoo.device.c_array import compile_check, write_c_array
    from kws_zoo.device.op_resolver import write_op_resolver
    from kws_zoo.device.verify import verify_on_tflm

    out_dir = out_dir or os.path.join(run_dir, "export")
    model_path = os.path.join(run_dir, "model.keras")
    if not os.path.exists(model_path):
        raise FileNotFoundError(f"{run_dir}: no model.keras (has training finished? run `kws-zoo train` again "
                                "to resume)")
    recipe = load_recipe(os.path.join(run_dir, "recipe.json"))
    model = load_keras(model_path)
    os.makedirs(out_dir, exist_ok=True)

    data = prepare_data(recipe, progress)
    rng_seed = recipe.seed
    train_features = features_for(_representative(data.waveforms["train"], rng_seed), recipe.frontend,
                                  background=data.background, seed=rng_seed)
    test_features = features_for(data.waveforms["test"], recipe.frontend, background=data.background,
                                 seed=rng_seed)
    test_labels = data.targets["test"]

    float_pred = model.predict(test_features, batch_size=256, verbose=0).argmax(axis=1)
    # The device runs the inference form: branches merged, BN folded, custom layers made standard
    # (reparameterize checks it numerically against the training form).
    inference = reparameterize(model)
    atomic_save_keras(inference, os.path.join(out_dir, "model_inference.keras"))
    float_bytes = to_tflite_float(inference)
    ternary = ternary_layers(model)
    if ternary:  # literal -1/0/+1 int8 weights, exactly the matrices regenerated from their seeds
        int8_bytes = to_tflite_int8_ternary(model, train_features, num_samples=REPRESENTATIVE_EXAMPLES)
    else:
        int8_bytes = to_tflite_int8(inference, train_features, num_samples=REPRESENTATIVE_EXAMPLES)
    atomic_write_bytes(os.path.join(out_dir, "model_float.tflite"), float_bytes)
    atomic_write_bytes(os.path.join(out_dir, "model_int8.tflite"), int8_bytes)

    check = verify_on_tflm(int8_bytes, test_features, test_labels, progress=progress)
    from kws_zoo.device.runtime import TflmModel

    tflm_pred = TflmModel(int8_bytes, arena_size=check["arena_size"]).predict(test_features).argmax(axis=1)
    tflm_report = classification_report(test_labels, tflm_pred, data.labels)
    plot_confusion(tflm_report, os.path.join(out_dir, "confusion_tflm_int8.png"),
                   f"{recipe.name}: TFLM int8, test split, accuracy {tflm_report['accuracy']:.1%}")
    atomic_write_json(os.path.join(out_dir, "report_tflm_int8.json"), tflm_report)

    c_name = "".join(ch if ch.isalnum() else "_" for ch in recipe.name) + "_model"
    cc_path, h_path = write_c_array(int8_bytes, out_dir, c_name, arena_bytes=check["arena_bytes"])
    resolver_path = write_op_resolver(int8_bytes, out_dir, c_name)
    compile_check(cc_path)

    in_scale, in_zp, out_scale, out_zp = quant_params(int8_bytes)
    with open(os.path.join(run_dir, METADATA)) as f:
        meta = json.load(f)
    card = {
        "name": recipe.name, "model": recipe.model, "model_overrides": recipe.model_overrides,
        "params": int(model.count_params()), "trainable_params": _trainable(model),
        "inference_params": int(inference.count_params()), "macs": int(count_macs(inference)),
        "multiplications_avoided": int(ternary_multiplications_avoided(model, model.input_shape[1:]))
        if ternary else 0,
        "flash_bytes": len(int8_bytes), "arena_bytes": check["arena_bytes"],
        "tflm_invoke_ms_host": round(check["tflm_invoke_ms"], 3),
        "ops": sorted(set(tflite_ops(int8_bytes))),
        "test_examples": int(len(test_labels)),
        "accuracy": {"float": float(np.mean(float_pred == test_labels)),
                     "litert_int8": check["litert_accuracy"], "tflm_int8": check["tflm_accuracy"]},
        "tflm_litert_top1_agreement": check["top1_agreement"], "tflm_litert_max_lsb_diff": check["max_lsb_diff"],
        "labels": list(data.labels), "frontend": recipe.frontend.to_dict(), "clip_ms": recipe.clip_ms,
        "input": {"shape": list(model.input_shape[1:]), "dtype": "int8", "scale": in_scale, "zero_point": in_zp},
        "output": {"dtype": "int8", "scale": out_scale, "zero_point": out_zp},
        "files": {"tflite_int8": "model_int8.tflite", "tflite_float": "model_float.tflite",
                  "c_source": os.path.basename(cc_path), "c_header": os.path.basename(h_path),
                  "op_resolver": os.path.basename(resolver_path), "confusion_png": "confusion_tflm_int8.png"},
        "data": recipe.data.to_dict(),
    }
    if callgrind:
        from kws_zoo.device.callgrind import instructions_per_invoke

        card["instructions_per_invoke"] = int(instructions_per_invoke(int8_bytes))
    extra = _extra_evaluations(recipe, model, int8_bytes, data.labels, check["arena_size"], out_dir, progress)
    if extra:
        card["extra_eval"] = extra
    atomic_write_json(os.path.join(out_dir, METADATA), meta)
    atomic_write_json(os.path.join(out_dir, "model_card.json"), card)
    atomic_write_text(os.path.join(out_dir, "model_card.md"), format_card(card, markdown=True))
    shutil.copy(os.path.join(run_dir, "recipe.json"), os.path.join(out_dir, "recipe.json"))
    return card


def _extra_evaluations(recipe, model, int8_bytes, labels, arena_size, out_dir, progress) -> dict:
    """Accuracy on each of the recipe's extra evaluation sets (e.g. real FSDD speech), float and TFLM int8."""
    from kws_zoo.evaluate.accuracy import evaluate_arrays
    from kws_zoo.device.runtime import TflmModel

    results = {}
    for cfg in recipe.extra_eval:
        waves, targets, data_labels, background = evaluate_arrays(cfg, recipe.clip_samples, "test", progress)
        feats = features_for(waves, recipe.frontend, background=background, seed=recipe.seed)
        name = cfg.kind
        row = {}
        for runtime, run in (("float", lambda x: model.predict(x, batch_size=256, verbose=0)),
                             ("tflm_int8", TflmModel(int8_bytes, arena_size=arena_size).predict)):
            from kws_zoo.evaluate.accuracy import report_from_scores

            report = report_from_scores(run(feats), targets, data_labels, labels)
            row[runtime] = report["accuracy"]
            if "closed_set_accuracy" in report:
                row[f"{runtime}_closed_set"] = report["closed_set_accuracy"]
            if runtime == "tflm_int8":
                plot_confusion(report, os.path.join(out_dir, f"confusion_{cfg.kind}_tflm_int8.png"),
                               f"{recipe.name} on {cfg.kind}: TFLM int8, accuracy {report['accuracy']:.1%}")
        row["examples"] = int(len(targets))
        results[name] = row
    return results


def format_card(card: dict, markdown: bool = False) -> str:
    acc = card["accuracy"]
    rows = [("model", f"{card['model']} {card['model_overrides'] or ''}".strip()),
            ("params (training / inference form)", f"{card['params']:,} / {card['inference_params']:,}"),
            ("MACs / inference", f"{card['macs']:,}"),
            ("flash (int8 .tflite)", f"{card['flash_bytes']:,} bytes"),
            ("TFLM arena (measured)", f"{card['arena_bytes']:,} bytes"),
            ("TFLM invoke on host", f"{card['tflm_invoke_ms_host']} ms"),
            ("test examples", f"{card['test_examples']:,}"),
            ("accuracy float", f"{acc['float']:.2%}"), ("accuracy LiteRT int8", f"{acc['litert_int8']:.2%}"),
            ("accuracy TFLM int8", f"{acc['tflm_int8']:.2%}"),
            ("TFLM vs LiteRT top-1 agreement", f"{card['tflm_litert_top1_agreement']:.2%}"),
            ("input", f"int8 {card['input']['shape']} scale {card['input']['scale']:.6g} "
                      f"zero point {card['input']['zero_point']}"),
            ("frontend", ", ".join(f"{k}={v}" for k, v in card["frontend"].items())),
            ("labels", ", ".join(card["labels"])), ("ops", ", ".join(card["ops"]))]
    if card.get("multiplications_avoided"):
        rows.append(("multiplications avoided (ternary)", f"{card['multiplications_avoided']:,}"))
    if "instructions_per_invoke" in card:
        rows.append(("instructions / invoke (callgrind)", f"{card['instructions_per_invoke']:,}"))
    for name, row in card.get("extra_eval", {}).items():
        closed = (f"; closed set {row['float_closed_set']:.2%} / {row['tflm_int8_closed_set']:.2%}"
                  if "float_closed_set" in row else "")
        rows.append((f"accuracy on {name}", f"float {row['float']:.2%}, TFLM int8 {row['tflm_int8']:.2%}{closed} "
                                           f"({row['examples']} examples)"))
    if markdown:
        return "\n".join([f"# Model card: {card['name']}", "", "| | |", "|---|---|",
                          *(f"| {k} | {v} |" for k, v in rows), ""])
    return "\n".join(f"{k:>32}: {v}" for k, v in rows)
