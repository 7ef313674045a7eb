"""Publishing a finished run as a pretrained model: its firmware folder(s), one reproducible archive, and its
record in the registry (kws_zoo/hub/pretrained.json), every figure read from the run's own cards.

The archive is a run directory without checkpoints and logs (kws_zoo.json, recipe.json, labels.txt, model.keras,
train_summary.json, export/, stream/ when streamed, firmware/), so every command that takes a run takes it. Members
are sorted with zero times and owners; model.keras is saved anew without its optimizer (Keras stamps the date in
it, so each release of a run has its own hash).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile

from kws_zoo import rundir
from kws_zoo.compress.qat import qat_scope
from kws_zoo.core.errors import ConfigError, RunDirError
from kws_zoo.core.files import atomic_write_bytes, atomic_write_json
from kws_zoo.hub import registry as hub_registry
from kws_zoo.hub.registry import RELEASE_BASE_URL, RELEASE_FOLDER, PretrainedEntry, registry
from kws_zoo.models.registry import get_entry
from kws_zoo.models.saving import load_keras
from kws_zoo.layers.ternary_pointwise import ternary_layers
from kws_zoo.rundir import FIRMWARE_DIR, STREAM_FIRMWARE_DIR, TERNARY_OP_FIRMWARE_DIR
from kws_zoo.workflows.firmware import write_run_firmware, write_ternary_op_firmware

_TAG = re.compile(r"[a-z0-9][a-z0-9_]*")
RUN_FILES = (rundir.METADATA, rundir.RECIPE, rundir.LABELS, rundir.MODEL, rundir.TRAIN_SUMMARY)
# Not the float .tflite nor the inference .keras: nothing reads them back, and they would double the download.
EXPORT_FILES = (rundir.METADATA, rundir.RECIPE, rundir.TFLITE_INT8, rundir.MODEL_CARD, rundir.MODEL_CARD_MD,
                rundir.TFLM_REPORT, rundir.TFLM_CONFUSION)
STREAM_FILES = (rundir.METADATA, rundir.STREAM_CARD, rundir.STREAM_WINDOW,
                *(rundir.stream_model_file(f) for f in rundir.STREAM_FORMS))


def check_name(name: str) -> str:
    """'<registered architecture>.<tag>' (the tag: lower-case letters, digits, underscores)."""
    architecture, _, tag = name.partition(".")
    if not _TAG.fullmatch(tag):
        raise ConfigError(f"pretrained name {name!r} must be <architecture>.<tag>, tag of [a-z0-9_]")
    get_entry(architecture)
    return architecture


def release_run(run_dir: str, name: str, out_dir: str = RELEASE_FOLDER, license: str = "Apache-2.0",
                description: str = "", registry_path: str | None = None,
                base_url: str = RELEASE_BASE_URL) -> PretrainedEntry:
    architecture = check_name(name)
    card_path = os.path.join(run_dir, rundir.EXPORT_DIR, rundir.MODEL_CARD)
    if not os.path.isfile(card_path):
        raise RunDirError(f"{run_dir}: no {rundir.EXPORT_DIR}/{rundir.MODEL_CARD}; run `kws-zoo export {run_dir}` "
                          "first")
    with open(card_path) as f:
        card = json.load(f)
    streamed = os.path.isfile(os.path.join(run_dir, rundir.STREAM_DIR, rundir.STREAM_CARD))
    firmware = write_run_firmware(run_dir, os.path.join(run_dir, FIRMWARE_DIR), stream=False)
    stream_firmware = (write_run_firmware(run_dir, os.path.join(run_dir, STREAM_FIRMWARE_DIR), stream=True)
                       if streamed else {"arena_bytes_measured": 0})
    model = keras_without_optimizer(run_dir)
    ternary = bool(ternary_layers(model))
    if ternary:
        write_ternary_op_firmware(run_dir, os.path.join(run_dir, TERNARY_OP_FIRMWARE_DIR))
    members = release_members(run_dir, streamed, ternary)
    replace = {rundir.MODEL: model_file_bytes(model)}
    if rundir.COMPRESSED_MODEL in members:
        with qat_scope():
            replace[rundir.COMPRESSED_MODEL] = model_file_bytes(load_keras(os.path.join(run_dir,
                                                                                      rundir.COMPRESSED_MODEL)))
    data = archive_bytes(run_dir, members, replace=replace)
    file = f"{name}.tar.gz"
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_bytes(os.path.join(out_dir, file), data)
    entry = PretrainedEntry(
        name=name, architecture=architecture, file=file, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
        urls=(f"{base_url.rstrip('/')}/{file}",), labels=tuple(card["labels"]), frontend=card["frontend"],
        clip_ms=card["clip_ms"], license=license, recipe=card["name"], forms=release_forms(card, streamed, ternary),
        params=card["params"], macs=card["macs"], flash_bytes=card["flash_bytes"],
        arena_bytes=firmware["arena_bytes_measured"], metrics=card_metrics(card), description=description,
        stream_arena_bytes=stream_firmware["arena_bytes_measured"])
    update_registry(entry, registry_path)
    return entry


def release_forms(card: dict, streamed: bool, ternary: bool) -> tuple[str, ...]:
    forms = ["keras", "int8", "firmware"] + (["ternary_op", "firmware_ternary_op"] if ternary else [])
    if (card.get("compress") or {}).get("qat"):
        forms.append("qat")
    if streamed:
        forms += ["stream_internal", "stream_external", "firmware_stream"]
    return tuple(forms)


def card_metrics(card: dict) -> dict:
    """Accuracy per evaluation set, TFLM int8 (the figure that holds on the device), and float on the test split."""
    metrics = {"synthetic_test": card["accuracy"]["tflm_int8"], "synthetic_test_float": card["accuracy"]["float"]}
    for name, row in card.get("extra_eval", {}).items():
        metrics[name] = row["tflm_int8"]
        if "tflm_int8_closed_set" in row:
            metrics[f"{name}_closed_set"] = row["tflm_int8_closed_set"]
    return metrics


def release_members(run_dir: str, streamed: bool, ternary: bool) -> list[str]:
    wanted = [*RUN_FILES, *(f"{rundir.EXPORT_DIR}/{f}" for f in EXPORT_FILES)]
    if os.path.isfile(os.path.join(run_dir, rundir.COMPRESSED_MODEL)):  # QAT / pruned: the weights int8 came from
        wanted += [rundir.COMPRESSED_MODEL, rundir.COMPRESS_SUMMARY]
    if streamed:
        wanted += [f"{rundir.STREAM_DIR}/{f}" for f in STREAM_FILES]
    if ternary:
        wanted.append(f"{rundir.EXPORT_DIR}/{rundir.TFLITE_INT8_TERNARY_OP}")
    folders = [FIRMWARE_DIR] + ([STREAM_FIRMWARE_DIR] if streamed else []) + ([TERNARY_OP_FIRMWARE_DIR] if ternary
                                                                             else [])
    wanted += [f"{d}/{f}" for d in folders for f in sorted(os.listdir(os.path.join(run_dir, d)))]
    missing = [m for m in wanted if not os.path.isfile(os.path.join(run_dir, m))]
    if missing:
        raise RunDirError(f"{run_dir}: cannot release, missing {missing}")
    return sorted(wanted)


def keras_without_optimizer(run_dir: str):
    """The run's model loaded without compiling: saved again it has no optimizer slots (a third of the file; a
    fine-tune starts a new optimizer)."""
    return load_keras(os.path.join(run_dir, rundir.MODEL))


def model_file_bytes(model) -> bytes:
    """The .keras bytes of a model (saved under the caller's custom-object scope, e.g. QAT's)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, rundir.MODEL)
        model.save(path)  # loaded uncompiled: no optimizer to save
        with open(path, "rb") as f:
            return f.read()


def archive_bytes(run_dir: str, members: list[str], replace: dict[str, bytes] | None = None) -> bytes:
    """A .tar.gz of the members; `replace` gives other bytes for some of them."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if replace and member in replace:
                data = replace[member]
            else:
                with open(os.path.join(run_dir, member), "rb") as f:
                    data = f.read()
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def update_registry(entry: PretrainedEntry, registry_path: str | None = None) -> None:
    entries = dict(registry(registry_path))
    entries[entry.name] = entry
    records = [entries[n].to_dict() for n in sorted(entries)]
    atomic_write_json(registry_path or hub_registry.registry_file(), {"models": records})


