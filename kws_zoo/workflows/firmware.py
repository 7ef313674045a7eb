"""The firmware folder of a run (kws_zoo.device.firmware): the whole-window int8 model of RUN/export, or the
internal-state streaming model of RUN/stream, with its labels, frontend and an arena measured on TFLM now."""
from __future__ import annotations

import os

from kws_zoo import rundir
from kws_zoo.core.errors import RunDirError
from kws_zoo.device.firmware import write_firmware
from kws_zoo.device.runtime import TflmModel

FIRMWARE_DIR = "firmware"  # in a run directory (and a pretrained archive): the whole-window model's folder
STREAM_FIRMWARE_DIR = "firmware_stream"  # the internal-state streaming model's


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
