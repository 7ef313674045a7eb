"""What the seed-regenerated ternary kernel (KWS_TERNARY_1X1) buys and costs against the int8-constant form of the
same model, both built into the C++ example on the host against TFLM: flash, arena, instructions per invoke
(callgrind, inside MicroInterpreter::Invoke), and a bit-exactness check of their outputs on the same inputs.

`kws-zoo ternary-cost MODEL` (a run directory of a ternary model, or a pretrained name).
"""
from __future__ import annotations

import os
import subprocess
import tempfile

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.errors import DeviceError
from kws_zoo.device import host_build
from kws_zoo.device.callgrind import command_instructions_per_invoke
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export.ternary_op import layer_specs
from kws_zoo.models.saving import load_keras
from kws_zoo.workflows.firmware import write_ternary_op_firmware, write_run_firmware


def ternary_op_cost(run_dir: str, invokes: int = 5, seed: int = 0) -> dict:
    root = host_build.tflm_root()
    if root is None:
        raise DeviceError(host_build.SKIP_REASON)
    specs = layer_specs(load_keras(os.path.join(run_dir, rundir.MODEL)))
    if not specs:
        raise DeviceError(f"{run_dir}: the model has no ternary layers")
    folders = {"constant": os.path.join(run_dir, rundir.FIRMWARE_DIR),
               "ternary_op": os.path.join(run_dir, rundir.TERNARY_OP_FIRMWARE_DIR)}
    if not os.path.isdir(folders["constant"]):
        write_run_firmware(run_dir, folders["constant"])
    if not os.path.isdir(folders["ternary_op"]):
        write_ternary_op_firmware(run_dir, folders["ternary_op"])
    name = os.path.basename(os.path.abspath(run_dir))
    build = host_build.build({f"{name}.{form}": folder for form, folder in folders.items()}, root)
    with open(os.path.join(run_dir, rundir.EXPORT_DIR, rundir.TFLITE_INT8), "rb") as f:
        constant_bytes = f.read()
    with open(os.path.join(run_dir, rundir.EXPORT_DIR, rundir.TFLITE_INT8_TERNARY_OP), "rb") as f:
        op_bytes = f.read()
    shape = TflmModel(constant_bytes).input_shape[1:]
    inputs = np.random.default_rng(seed).integers(-128, 128, (invokes, *shape), dtype=np.int8)
    row = {"model": name, "ternary_layers": len(specs), "matrix_entries": int(sum(s.matrix.size for s in specs)),
           "invokes": invokes}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        features, out = os.path.join(tmp, "in.i8"), os.path.join(tmp, "out.i8")
        inputs.tofile(features)
        for form, model_bytes in (("constant", constant_bytes), ("ternary_op", op_bytes)):
            example = host_build.example(build, f"{name}.{form}")
            command = [example, "--features", features, "--out", out]
            subprocess.run(command, check=True, capture_output=True)
            outputs[form] = np.fromfile(out, np.int8)
            row[form] = {"flash_bytes": len(model_bytes),
                         "arena_bytes_cpp": host_build.arena_used(build, f"{name}.{form}"),
                         "instructions_per_invoke": command_instructions_per_invoke(command, invokes)}
    row["bit_exact"] = bool(np.array_equal(outputs["constant"], outputs["ternary_op"]))
    row["flash_saved_bytes"] = row["constant"]["flash_bytes"] - row["ternary_op"]["flash_bytes"]
    return row


def format_cost(row: dict) -> str:
    c, t = row["constant"], row["ternary_op"]
    lines = [f"{row['model']}: {row['ternary_layers']} ternary 1x1 convs, {row['matrix_entries']:,} matrix entries; "
             f"outputs bit-exact on {row['invokes']} random inputs: {'yes' if row['bit_exact'] else 'NO'}",
             "| form | flash (.tflite) | arena (C++ TFLM) | instructions / invoke |", "|---|---:|---:|---:|"]
    for label, r in (("int8 constants (CONV_2D)", c), ("seed-regenerated (KWS_TERNARY_1X1)", t)):
        lines.append(f"| {label} | {r['flash_bytes']:,} B | {r['arena_bytes_cpp']:,} B | "
                     f"{r['instructions_per_invoke']:,.0f} |")
    ratio = t["instructions_per_invoke"] / c["instructions_per_invoke"]
    lines.append(f"flash saved: {row['flash_saved_bytes']:,} B; instructions x{ratio:.2f}")
    return "\n".join(lines)
