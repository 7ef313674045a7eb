"""The export of a compressed run (`kws-zoo export` after a recipe's compress stage): int8 of the compressed model,
one int8 per dynamic-sparsity level, sparsity measured on the .tflite, and TFLM's look-up-table weight compression
where low-bit or pruned weights make it pay (verified bit-exact on TFLM)."""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.compat import keras
from kws_zoo.core.files import atomic_write_bytes
from kws_zoo.device.compression import lut_compress, trim_for_tflm, verify_lut
from kws_zoo.device.flatbuffer import weight_sparsity
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export.tflite import to_tflite_int8, to_tflite_int8_qat

LUT_CHECK_EXAMPLES = 64  # inputs on which the LUT-compressed model must equal the plain int8 one, bit for bit


def is_qat(model: keras.Model) -> bool:
    return any(hasattr(layer, "quantize_config") for layer in model.layers)


def compressed_int8(deployed: keras.Model, calibration: np.ndarray, num_samples: int) -> bytes:
    """The int8 .tflite the device runs (`deployed`: compress_run.deployed_model): the QAT model's own ranges, or
    post-training calibration."""
    if is_qat(deployed):
        return to_tflite_int8_qat(deployed, calibration, num_samples)
    return to_tflite_int8(deployed, calibration, num_samples)


def dsnn_levels(level_model: Callable[[float], keras.Model], summary: dict, calibration: np.ndarray,
                num_samples: int, test: np.ndarray, test_labels: np.ndarray, out_dir: str) -> dict:
    """One int8 .tflite per sparsity level from the one set of weights (level_model(level): that level's model,
    compress_run.dsnn_level), each run on TFLM over the test split."""
    rows = {}
    for level in summary["compress"]["dsnn"]["levels"]:
        int8 = to_tflite_int8(level_model(level), calibration, num_samples)
        name = rundir.sparsity_level_file(level)
        atomic_write_bytes(os.path.join(out_dir, name), int8)
        tflm = TflmModel(int8)
        accuracy = float(np.mean(tflm.predict(test, progress=False).argmax(axis=1) == test_labels))
        rows[f"{level:g}"] = {"file": name, "tflm_int8": accuracy, "flash_bytes": len(int8),
                              "arena_bytes": tflm.arena_bytes, "mean_sparsity": _mean(weight_sparsity(int8))}
    return rows


def compression_card(summary: dict, int8_bytes: bytes, tflm_accuracy: float, test: np.ndarray,
                     out_dir: str) -> dict:
    """The card's `compress` entry: settings, accuracy after each stage, sparsity and flash of three files: the int8
    file, the same trimmed for TFLM (kws_zoo.device.compression.trim_for_tflm: no names, one zero point per
    weight tensor; the fair reference), and the TFLM deployable RUN/export/model_int8_lut.tflite (LUT compression
    where it pays, trimmed; its outputs checked bit-identical to the int8 file's on TFLM)."""
    cfg = summary["compress"]
    sparsity = weight_sparsity(int8_bytes)
    lut_bytes, report = lut_compress(int8_bytes)
    lut_bytes = trim_for_tflm(lut_bytes)
    check = verify_lut(int8_bytes, lut_bytes, test[:LUT_CHECK_EXAMPLES])
    atomic_write_bytes(os.path.join(out_dir, rundir.TFLITE_INT8_LUT), lut_bytes)
    return {"method": cfg["method"], "qat": cfg.get("qat"), "epochs": cfg["epochs"],
            "qat_epoch": summary.get("qat_epoch"),
            "accuracy": {**summary["accuracy"], "tflm_int8": tflm_accuracy},
            "sparsity": {"mean": _mean(sparsity), "per_tensor": sparsity},
            "flash_bytes": len(int8_bytes), "flash_bytes_trimmed": len(trim_for_tflm(int8_bytes)),
            "flash_bytes_lut": len(lut_bytes), "lut_note": report.note, "arena_bytes_lut": check["arena_bytes_after"],
            "lut_file": rundir.TFLITE_INT8_LUT, "lut_bit_exact_examples": check["examples"]}


def _mean(values: dict) -> float:
    return float(np.mean(list(values.values()))) if values else 0.0
