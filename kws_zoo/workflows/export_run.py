"""Export a trained run for a device: int8 .tflite verified on TFLM, C array, op resolver, model card.

The card's accuracies are measured here on the run's own test split (unseen voices for the synthetic
corpus): float Keras, int8 on LiteRT and int8 on the real TFLite Micro interpreter (the reference).
"""
from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.compat import keras
from kws_zoo.core.errors import RunDirError
from kws_zoo.core.files import atomic_save_keras, atomic_write_bytes, atomic_write_json, atomic_write_text
from kws_zoo.data.pipeline import features_for
from kws_zoo.device.c_array import compile_check, write_c_array
from kws_zoo.device.callgrind import instructions_per_invoke
from kws_zoo.device.flatbuffer import quant_params, tflite_ops
from kws_zoo.device.op_resolver import write_op_resolver
from kws_zoo.device.runtime import TflmModel
from kws_zoo.device.verify import verify_on_tflm
from kws_zoo.evaluate.accuracy import classification_report, evaluate_arrays, keras_accuracy, report_from_scores
from kws_zoo.evaluate.plots import plot_confusion
from kws_zoo.export.reparam import reparameterize
from kws_zoo.export.ternary import to_tflite_int8_ternary
from kws_zoo.export.tflite import to_tflite_float, to_tflite_int8
from kws_zoo.layers.ternary_pointwise import ternary_layers, ternary_multiplications_avoided
from kws_zoo.models.profile import count_macs
from kws_zoo.models.saving import load_keras
from kws_zoo.recipe import Recipe, load_recipe
from kws_zoo.rundir import ModelInfo
from kws_zoo.train import PreparedData, prepare_data
from kws_zoo.workflows.compress_run import (compressed_summary, deployed_model, dsnn_level, load_compressed,
                                            read_bn_stats, read_ranks)
from kws_zoo.workflows.export_compressed import compressed_int8, compression_card, dsnn_levels

REPRESENTATIVE_EXAMPLES = 500


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedRun:
    """What export reads of a finished run."""
    recipe: Recipe
    recipe_json: bytes  # copied verbatim beside the export
    model: keras.Model
    info: ModelInfo


@dataclasses.dataclass(frozen=True, eq=False)
class ExportFeatures:
    labels: tuple[str, ...]
    calibration: np.ndarray  # up to REPRESENTATIVE_EXAMPLES training clips, for int8 calibration
    test: np.ndarray
    test_labels: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class DeviceForms:
    inference: keras.Model  # branches merged, BN folded, custom layers made standard
    float_bytes: bytes
    int8_bytes: bytes


def export_run(run_dir: str, out_dir: str | None = None, progress: bool = True, callgrind: bool = False) -> dict:
    """Exports RUN_DIR into out_dir (default RUN_DIR/export) and returns the model card."""
    out_dir = out_dir or os.path.join(run_dir, rundir.EXPORT_DIR)
    run = load_run(run_dir)
    os.makedirs(out_dir, exist_ok=True)
    data = prepare_data(run.recipe, progress)
    feats = export_features(run.recipe, data)
    float_accuracy = keras_accuracy(run.model, feats.test, feats.test_labels)
    summary = compressed_summary(run_dir, run.recipe)
    compressed = load_compressed(run_dir) if summary else None
    forms = convert(run.model, feats.calibration,
                    None if compressed is None else deployed_model(run_dir, summary, compressed))
    write_model_files(forms, out_dir)
    # One pass of the test set through TFLM (and LiteRT beside it): the card's numbers and the report's.
    check = verify_on_tflm(forms.int8_bytes, feats.test, feats.test_labels, progress=progress)
    write_tflm_report(check["tflm_top1"], feats, run.recipe.name, out_dir)
    sources = write_device_sources(forms.int8_bytes, check["arena_bytes"], run.recipe.name, out_dir)
    card = model_card(run, forms, feats, float_accuracy, check, sources)
    if callgrind:
        card["instructions_per_invoke"] = int(instructions_per_invoke(forms.int8_bytes))
    if compressed is not None:
        card["compress"] = compression_card(summary, forms.int8_bytes, check["tflm_accuracy"], feats.test, out_dir)
        if summary["compress"]["method"] == "dsnn":
            level_model = functools.partial(dsnn_level, compressed, summary, read_bn_stats(run_dir),
                                            ranks=read_ranks(run_dir))
            card["compress"]["levels"] = dsnn_levels(level_model, summary, feats.calibration, REPRESENTATIVE_EXAMPLES,
                                                     feats.test, feats.test_labels, out_dir)
    extra = _extra_evaluations(run.recipe, run.model, forms.int8_bytes, data.labels, check["arena_size"], out_dir,
                               progress)
    if extra:
        card["extra_eval"] = extra
    rundir.write_info(out_dir, run.info)
    write_card(card, out_dir)
    atomic_write_bytes(os.path.join(out_dir, rundir.RECIPE), run.recipe_json)
    return card


def load_run(run_dir: str) -> TrainedRun:
    model_path = os.path.join(run_dir, rundir.MODEL)
    if not os.path.exists(model_path):
        raise RunDirError(f"{run_dir}: no {rundir.MODEL} (has training finished? run `kws-zoo train` again "
                          "to resume)")
    recipe_path = os.path.join(run_dir, rundir.RECIPE)
    with open(recipe_path, "rb") as f:
        recipe_json = f.read()
    return TrainedRun(load_recipe(recipe_path), recipe_json, load_keras(model_path), rundir.read_info(run_dir))


def _representative(waveforms: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return waveforms[rng.permutation(len(waveforms))[:REPRESENTATIVE_EXAMPLES]]


def export_features(recipe: Recipe, data: PreparedData) -> ExportFeatures:
    """Calibration features from a seeded sample of the training clips; features of the whole test split."""
    def features(waveforms):
        return features_for(waveforms, recipe.frontend, background=data.background, seed=recipe.seed)

    return ExportFeatures(tuple(data.labels), features(_representative(data.waveforms["train"], recipe.seed)),
                          features(data.waveforms["test"]), data.targets["test"])


def convert(model: keras.Model, calibration: np.ndarray, deployed: keras.Model | None = None) -> DeviceForms:
    # The device runs the inference form: branches merged, BN folded, custom layers made standard
    # (reparameterize checks it numerically against the training form). A compressed run deploys the compression
    # stage's model (`deployed`: pruned / DSNN level / QAT, made from that same inference form); the float file
    # stays the reference.
    inference = reparameterize(model)
    if deployed is not None:
        int8_bytes = compressed_int8(deployed, calibration, REPRESENTATIVE_EXAMPLES)
    elif ternary_layers(model):  # literal -1/0/+1 int8 weights, exactly the matrices regenerated from their seeds
        int8_bytes = to_tflite_int8_ternary(model, calibration, num_samples=REPRESENTATIVE_EXAMPLES)
    else:
        int8_bytes = to_tflite_int8(inference, calibration, num_samples=REPRESENTATIVE_EXAMPLES)
    return DeviceForms(inference, to_tflite_float(inference), int8_bytes)


def write_model_files(forms: DeviceForms, out_dir: str) -> None:
    atomic_save_keras(forms.inference, os.path.join(out_dir, rundir.INFERENCE_MODEL))
    atomic_write_bytes(os.path.join(out_dir, rundir.TFLITE_FLOAT), forms.float_bytes)
    atomic_write_bytes(os.path.join(out_dir, rundir.TFLITE_INT8), forms.int8_bytes)


def write_tflm_report(tflm_top1: np.ndarray, feats: ExportFeatures, run_name: str, out_dir: str) -> dict:
    """Per-class report and confusion PNG of TFLM's predictions on the test split."""
    report = classification_report(feats.test_labels, tflm_top1, feats.labels)
    plot_confusion(report, os.path.join(out_dir, rundir.TFLM_CONFUSION),
                   f"{run_name}: TFLM int8, test split, accuracy {report['accuracy']:.1%}")
    atomic_write_json(os.path.join(out_dir, rundir.TFLM_REPORT), report)
    return report


def write_device_sources(int8_bytes: bytes, arena_bytes: int, run_name: str, out_dir: str) -> dict:
    """C array (.cc/.h, compiled once as a check) and op resolver; returns their file names for the card."""
    c_name = rundir.c_array_name(run_name)
    cc_path, h_path = write_c_array(int8_bytes, out_dir, c_name, arena_bytes=arena_bytes)
    resolver_path = write_op_resolver(int8_bytes, out_dir, c_name)
    compile_check(cc_path)
    return {"c_source": os.path.basename(cc_path), "c_header": os.path.basename(h_path),
            "op_resolver": os.path.basename(resolver_path)}


def _trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def model_card(run: TrainedRun, forms: DeviceForms, feats: ExportFeatures, float_accuracy: float, check: dict,
               sources: dict) -> dict:
    recipe, model, int8_bytes = run.recipe, run.model, forms.int8_bytes
    in_scale, in_zp, out_scale, out_zp = quant_params(int8_bytes)
    return {
        "name": recipe.name, "model": recipe.model, "model_overrides": recipe.model_overrides,
        "params": int(model.count_params()), "trainable_params": _trainable(model),
        "inference_params": int(forms.inference.count_params()), "macs": int(count_macs(forms.inference)),
        "multiplications_avoided": int(ternary_multiplications_avoided(model, model.input_shape[1:]))
        if ternary_layers(model) else 0,
        "flash_bytes": len(int8_bytes), "arena_bytes": check["arena_bytes"],
        "tflm_invoke_ms_host": round(check["tflm_invoke_ms"], 3),
        "ops": sorted(set(tflite_ops(int8_bytes))),
        "test_examples": int(len(feats.test_labels)),
        "accuracy": {"float": float_accuracy, "litert_int8": check["litert_accuracy"],
                     "tflm_int8": check["tflm_accuracy"]},
        "tflm_litert_top1_agreement": check["top1_agreement"], "tflm_litert_max_lsb_diff": check["max_lsb_diff"],
        "labels": list(feats.labels), "frontend": recipe.frontend.to_dict(), "clip_ms": recipe.clip_ms,
        "input": {"shape": list(model.input_shape[1:]), "dtype": "int8", "scale": in_scale, "zero_point": in_zp},
        "output": {"dtype": "int8", "scale": out_scale, "zero_point": out_zp},
        "files": {"tflite_int8": rundir.TFLITE_INT8, "tflite_float": rundir.TFLITE_FLOAT, **sources,
                  "confusion_png": rundir.TFLM_CONFUSION},
        "data": recipe.data.to_dict(),
    }


def write_card(card: dict, out_dir: str) -> None:
    atomic_write_json(os.path.join(out_dir, rundir.MODEL_CARD), card)
    atomic_write_text(os.path.join(out_dir, rundir.MODEL_CARD_MD), format_card(card, markdown=True))


def _extra_evaluations(recipe, model, int8_bytes, labels, arena_size, out_dir, progress) -> dict:
    """Accuracy on each of the recipe's extra evaluation sets (e.g. real FSDD speech), float and TFLM int8."""
    if not recipe.extra_eval:
        return {}
    tflm = TflmModel(int8_bytes, arena_size=arena_size)
    runtimes = (("float", lambda x: model.predict(x, batch_size=256, verbose=0)), ("tflm_int8", tflm.predict))
    results = {}
    for cfg in recipe.extra_eval:
        waves, targets, data_labels, background = evaluate_arrays(cfg, recipe.clip_samples, "test", progress)
        feats = features_for(waves, recipe.frontend, background=background, seed=recipe.seed)
        row = {}
        for runtime, run in runtimes:
            report = report_from_scores(run(feats), targets, data_labels, labels)
            row[runtime] = report["accuracy"]
            if "closed_set_accuracy" in report:
                row[f"{runtime}_closed_set"] = report["closed_set_accuracy"]
            if runtime == "tflm_int8":
                row["tflm_int8_recall"] = {name: c["recall"] for name, c in report["per_class"].items()}
                plot_confusion(report, os.path.join(out_dir, rundir.extra_confusion_file(cfg.display_name)),
                               f"{recipe.name} on {cfg.display_name}: TFLM int8, accuracy {report['accuracy']:.1%}")
        row["examples"] = int(len(targets))
        results[cfg.display_name] = row
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
    rows += _compression_rows(card.get("compress"))
    for name, row in card.get("extra_eval", {}).items():
        closed = (f"; closed set {row['float_closed_set']:.2%} / {row['tflm_int8_closed_set']:.2%}"
                  if "float_closed_set" in row else "")
        rows.append((f"accuracy on {name}", f"float {row['float']:.2%}, TFLM int8 {row['tflm_int8']:.2%}{closed} "
                                           f"({row['examples']} examples)"))
    if markdown:
        return "\n".join([f"# Model card: {card['name']}", "", "| | |", "|---|---|",
                          *(f"| {k} | {v} |" for k, v in rows), ""])
    return "\n".join(f"{k:>32}: {v}" for k, v in rows)


def _layer_of(tensor: str) -> str:
    """'m_qat/quant_block0_pw_conv/Conv2D;...' -> 'block0_pw_conv': the Keras layer a .tflite weight came from."""
    parts = tensor.split(";")[0].split("/")
    return (parts[-2] if len(parts) > 1 else parts[0]).removeprefix("quant_")


def _flash(entry: dict) -> str:
    sizes = [entry["flash_bytes"], entry["flash_bytes_trimmed"], entry["flash_bytes_lut"]]
    return " / ".join(f"{b:,}" for b in sizes) + f" bytes ({entry['lut_note']}; arena {entry['arena_bytes_lut']:,} B)"


def _compression_rows(entry: dict | None) -> list[tuple[str, str]]:
    if not entry:
        return []
    qat = entry["qat"]
    bits = f", QAT {qat['weight_bits']}-bit weights / {qat['activation_bits']}-bit activations" if qat else ""
    method = "" if entry["method"] == "none" else entry["method"]
    kept = f" (QAT weights of epoch {entry['qat_epoch']}, best validation)" if entry.get("qat_epoch") else ""
    rows = [("compression", f"{method}{bits}".lstrip(", ") + f", {entry['epochs']} fine-tune epochs{kept}"),
            ("accuracy after each stage", ", ".join(f"{k} {v:.2%}" for k, v in entry["accuracy"].items())),
            ("weight sparsity (int8, mean)", f"{entry['sparsity']['mean']:.1%}"),
            ("sparsity per layer (int8 .tflite)", ", ".join(
                f"{_layer_of(name)} {v:.1%}" for name, v in entry["sparsity"]["per_tensor"].items() if v >= 0.05)
             or "none"),
            ("flash int8 / trimmed for TFLM / LUT + trimmed", _flash(entry))]
    for level, row in entry.get("levels", {}).items():
        rows.append((f"sparsity level {level}", f"TFLM int8 {row['tflm_int8']:.2%}, flash {row['flash_bytes']:,} B, "
                                                f"arena {row['arena_bytes']:,} B"))
    return rows
