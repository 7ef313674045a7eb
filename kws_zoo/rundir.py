"""The run-directory contract: every file name training, export and streaming export write, and one typed
record for the `kws_zoo.json` that sits beside every model form (labels, frontend, clip, streaming geometry).

    RUN_DIR/            recipe.json  kws_zoo.json  labels.txt  model.keras  checkpoint.json  train_summary.json
                        best.weights.h5  ckpt-epochNNNN/  tensorboard/
                        model_compressed.keras  compress_summary.json  dsnn_bn_stats.npz  dsnn_ranks.npz  (compress)
      export/           kws_zoo.json  recipe.json  model_int8.tflite  model_float.tflite  model_inference.keras
                        model_int8_lut.tflite  model_int8_sparsityNN.tflite   (compressed runs)
                        model_int8_ternary_op.tflite   (ternary runs, `kws-zoo pretrained release`)
                        model_card.json/.md  report_tflm_int8.json  confusion_tflm_int8.png  <name>_model.cc/.h
                        confusion_<extra eval kind>_tflm_int8.png
      firmware/ firmware_stream/ firmware_ternary_op/   model_data.cc/.h, op resolver, README (workflows.firmware)
      stream/           kws_zoo.json  model_window_int8.tflite  model_stream_{external,internal}_int8.tflite
                        stream_card.json  drift.json  drift.png
      long_audio[_tflm]/ report.json  det.png  (stream.wav  events.json)

Only this module, train, evaluate and workflows know these paths.
"""
from __future__ import annotations

import dataclasses
import json
import os

from kws_zoo.core.errors import ModelLoadError
from kws_zoo.core.files import atomic_write_json
from kws_zoo.data.frontends import FrontendConfig

RUNS_ROOT = "runs"  # run directories default to runs/<recipe name>

METADATA = "kws_zoo.json"
RECIPE = "recipe.json"
LABELS = "labels.txt"
MODEL = "model.keras"
CHECKPOINT_STATE = "checkpoint.json"
TRAIN_SUMMARY = "train_summary.json"
BACKUP_DIR = "backup"  # mid-epoch backup (distribute.backup_every_steps): backup/state.json + backup/ckpt*
BACKUP_STATE = "state.json"
BEST_WEIGHTS = "best.weights.h5"  # the best epoch so far by validation accuracy; model.keras gets these
TENSORBOARD_DIR = "tensorboard"
COMPRESSED_MODEL = "model_compressed.keras"  # the compression stage's result (pruned / DSNN / QAT inference form)
COMPRESS_SUMMARY = "compress_summary.json"  # its settings and the accuracy after each stage
DSNN_BN_STATS = "dsnn_bn_stats.npz"  # a DSNN run's BatchNormalization statistics per sparsity level
DSNN_RANKS = "dsnn_ranks.npz"  # ... and the weight ranking its nested masks cut

EXPORT_DIR = "export"
INFERENCE_MODEL = "model_inference.keras"
TFLITE_FLOAT = "model_float.tflite"
TFLITE_INT8 = "model_int8.tflite"
TFLITE_INT8_LUT = "model_int8_lut.tflite"  # the TFLM deployable: LUT weight compression where it pays, trimmed
TFLITE_INT8_TERNARY_OP = "model_int8_ternary_op.tflite"  # ternary 1x1 convs as KWS_TERNARY_1X1 (seed, no matrix)
MODEL_CARD = "model_card.json"
MODEL_CARD_MD = "model_card.md"
TFLM_REPORT = "report_tflm_int8.json"
TFLM_CONFUSION = "confusion_tflm_int8.png"

FIRMWARE_DIR = "firmware"  # the whole-window int8 model's firmware folder (also in a pretrained archive)
STREAM_FIRMWARE_DIR = "firmware_stream"  # the internal-state streaming model's
TERNARY_OP_FIRMWARE_DIR = "firmware_ternary_op"  # the ternary model with KWS_TERNARY_1X1 (matrices from seeds)

STREAM_DIR = "stream"
STREAM_WINDOW = "model_window_int8.tflite"  # the whole-window reference the streaming forms are checked against
STREAM_CARD = "stream_card.json"
STREAM_FORMS = ("external", "internal")
DRIFT_REPORT, DRIFT_PLOT = "drift.json", "drift.png"  # in STREAM_DIR

LONG_AUDIO_REPORT, DET_PLOT = "report.json", "det.png"
LONG_AUDIO_WAV, LONG_AUDIO_EVENTS = "stream.wav", "events.json"  # the test stream and its ground truth, on request


def default_run_dir(recipe_name: str) -> str:
    return os.path.join(RUNS_ROOT, recipe_name)


def sparsity_level_file(level: float) -> str:
    """int8 .tflite of one dynamic-sparsity level in the export folder, e.g. model_int8_sparsity70.tflite."""
    return f"model_int8_sparsity{round(level * 100):02d}.tflite"


def long_audio_dir(run_dir: str | os.PathLike, runtime: str) -> str:
    """Where `kws-zoo long-audio` writes by default: one folder per runtime, so both reports can sit side by side."""
    return os.path.join(run_dir, "long_audio" + ("_tflm" if runtime == "tflm" else ""))


def checkpoint_folder(epoch: int) -> str:
    """Folder of the checkpoint written after `epoch` (from 0); checkpoint.json names the current one."""
    return f"ckpt-epoch{epoch:04d}"


def read_checkpoint_state(run_dir: str | os.PathLike) -> dict | None:
    """The run's checkpoint.json (epoch, best so far, history, current checkpoint folder); None before epoch 1."""
    return _read_json(os.path.join(run_dir, CHECKPOINT_STATE))


def read_backup_state(run_dir: str | os.PathLike) -> dict | None:
    """The run's mid-epoch backup state (epoch, step, folder); None if it has none."""
    return _read_json(os.path.join(run_dir, BACKUP_DIR, BACKUP_STATE))


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def extra_confusion_file(name: str) -> str:
    """Confusion matrix PNG of TFLM int8 on an extra evaluation set (DataConfig.display_name, e.g. 'fsdd')."""
    return f"confusion_{name}_tflm_int8.png"


def c_array_name(run_name: str) -> str:
    """C identifier of the model array in the export folder, and the stem of its .cc/.h and op resolver."""
    return "".join(ch if ch.isalnum() else "_" for ch in run_name) + "_model"


def stream_model_file(form: str) -> str:
    """File name of an int8 streaming form ('external' or 'internal' state)."""
    if form not in STREAM_FORMS:
        raise ValueError(f"unknown streaming form {form!r}; one of {STREAM_FORMS}")
    return f"model_stream_{form}_int8.tflite"


@dataclasses.dataclass(frozen=True)
class StreamingInfo:
    window_frames: int
    frames_per_step: int
    padding: str


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a model file alone does not say: the `kws_zoo.json` beside every run, export and stream folder."""
    labels: tuple[str, ...]
    frontend: FrontendConfig
    clip_ms: int
    model: str
    recipe: str = ""
    streaming: StreamingInfo | None = None

    def to_dict(self) -> dict:
        out = {"labels": list(self.labels), "frontend": self.frontend.to_dict(), "clip_ms": self.clip_ms,
               "model": self.model, "recipe": self.recipe}
        if self.streaming is not None:
            out["streaming"] = dataclasses.asdict(self.streaming)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> ModelInfo:
        streaming = values.get("streaming")
        return cls(labels=tuple(values["labels"]), frontend=FrontendConfig(**values["frontend"]),
                   clip_ms=int(values["clip_ms"]), model=values.get("model", ""), recipe=values.get("recipe", ""),
                   streaming=StreamingInfo(**streaming) if streaming else None)

    @property
    def clip_samples(self) -> int:
        return self.frontend.sample_rate * self.clip_ms // 1000


def find_beside(path: str | os.PathLike, name: str) -> str | None:
    """The file `name` that goes with `path`: in the folder itself (a run, export or stream folder, or the one
    holding a model file), else one level up (a model saved in a sub-folder of a run); None if neither has it."""
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    for candidate in (os.path.join(folder, name), os.path.join(os.path.dirname(folder), name)):
        if os.path.isfile(candidate):
            return candidate
    return None


def info_path(path: str | os.PathLike) -> str:
    """The kws_zoo.json that describes `path` (see find_beside). Raises ModelLoadError."""
    found = find_beside(path, METADATA)
    if found:
        return found
    raise ModelLoadError(f"{path}: no {METADATA} beside the model (labels and frontend are unknown); "
                         "use a run or export directory written by kws-zoo")


def read_info(path: str | os.PathLike) -> ModelInfo:
    """The ModelInfo describing a run/export/stream folder or a model file in one (see info_path)."""
    found = info_path(path)
    try:
        with open(found) as f:
            return ModelInfo.from_dict(json.load(f))
    except (ValueError, KeyError, TypeError) as err:
        raise ModelLoadError(f"{found}: not a kws_zoo model description ({err})") from None


def write_info(folder: str | os.PathLike, info: ModelInfo) -> None:
    atomic_write_json(os.path.join(folder, METADATA), info.to_dict())
