"""The firmware folder of a run (kws_zoo.device.firmware): the whole-window int8 model of RUN/export, or the
internal-state streaming model of RUN/stream, with its labels, frontend and an arena measured on TFLM now."""
from __future__ import annotations

import os

from kws_zoo import rundir
from kws_zoo.core.errors import DeviceError, RunDirError
from kws_zoo.core.files import atomic_write_bytes
from kws_zoo.device import host_build
from kws_zoo.device.firmware import write_firmware
from kws_zoo.device.runtime import TflmModel
from kws_zoo.export.ternary_op import layer_specs, to_ternary_op
from kws_zoo.models.saving import load_keras



def run_model_file(run_dir: str, stream: bool) -> str:
    folder, file = ((rundir.STREAM_DIR, rundir.stream_model_file("internal")) if stream
                    else (rundir.EXPORT_DIR, rundir.TFLITE_INT8))
    path = os.path.join(run_dir, folder, file)
    if not os.path.isfile(path):
        command = "stream-export" if stream else "export"
        raise RunDirError(f"{run_dir}: no {folder}/{file}; run `kws-zoo {command} {run_dir}` first")
    return path


def write_run_firmware(run_dir: str, out_dir: str, stream: bool = False) -> dict:
    path = run_model_file(run_dir, stream)
    with open(path, "rb") as f:
        model_bytes = f.read()
    info = rundir.read_info(path)
    streaming = info.streaming if stream else None
    arena = TflmModel(model_bytes).arena_bytes
    name = f"{info.recipe or info.model}{' (streaming, internal state)' if stream else ''}"
    return write_firmware(model_bytes, out_dir, labels=info.labels, frontend=info.frontend.to_dict(),
                          clip_ms=info.clip_ms, arena_bytes=arena, model_name=name,
                          frames_per_step=streaming.frames_per_step if streaming else None,
                          window_frames=streaming.window_frames if streaming else None)


def write_ternary_op_firmware(run_dir: str, out_dir: str) -> dict:
    """Writes RUN/export/model_int8_ternary_op.tflite (the int8 export with its ternary convs as the custom op) and
    its firmware folder. The pip interpreter cannot run the op, so the arena is measured on the host build of tflm/
    (needs a TFLM tree, TFLM_ROOT): a first build with the constant form's arena plus the kernel's scratch, then
    the header rewritten with what TFLM used."""
    root = host_build.tflm_root()
    if root is None:
        raise DeviceError(host_build.SKIP_REASON)
    exact_path = run_model_file(run_dir, stream=False)
    with open(exact_path, "rb") as f:
        exact = f.read()
    specs = layer_specs(load_keras(os.path.join(run_dir, rundir.MODEL)))
    if not specs:
        raise DeviceError(f"{run_dir}: the model has no ternary layers")
    model_bytes = to_ternary_op(exact, specs)
    atomic_write_bytes(os.path.join(run_dir, rundir.EXPORT_DIR, rundir.TFLITE_INT8_TERNARY_OP), model_bytes)
    info = rundir.read_info(exact_path)
    scratch = max(4 * s.matrix.size + 4 * s.matrix.shape[1] + 64 for s in specs)
    provisional = TflmModel(exact).arena_bytes + scratch
    settings = dict(labels=info.labels, frontend=info.frontend.to_dict(), clip_ms=info.clip_ms,
                    model_name=f"{info.recipe or info.model} (ternary 1x1 convs as KWS_TERNARY_1X1)")
    write_firmware(model_bytes, out_dir, arena_bytes=provisional, **settings)
    name = f"{os.path.basename(os.path.abspath(run_dir))}.ternary_op"
    measured = host_build.arena_used(host_build.build({name: out_dir}, root), name)
    return write_firmware(model_bytes, out_dir, arena_bytes=measured, **settings)
