"""`kws-zoo wakeword "hey zoo"`: from text to an ESPHome-ready wake-word model and its card, resumable.

Stages, each kept in OUT and skipped when its output exists (a killed run resumes where it stopped):
  corpus/                 TTS positives and negatives (kws_zoo.workflows.wakeword.corpus)
  round<N>/               training N (two classes: _unknown_ and the phrase), its ESPHome-form int8 model
                          (esphome.tflite), validation streams scored through TFLM (validation.json) and, before
                          the next round, the false triggers mined from training voices' negative audio (mined.json)
  final/                  <slug>.tflite + <slug>.json (ESPHome micro_wake_word v2 manifest), firmware/, test streams
                          through TFLM and through the float model, real recordings, det.png, card.json, card.md
The cut-off and window are chosen on validation streams only (kws_zoo.evaluate.wake.choose); the test streams
are read once, at the end, at that choice.
"""
from __future__ import annotations

import functools
import json
import os

import numpy as np

from kws_zoo import rundir
from kws_zoo.core.errors import ExportError, RunDirError
from kws_zoo.core.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from kws_zoo.data.audio import read_wav
from kws_zoo.data.frontends import FrontendConfig
from kws_zoo.data.synthetic.phrases import phrase_slug
from kws_zoo.device.callgrind import instructions_per_invoke
from kws_zoo.device.firmware import write_firmware
from kws_zoo.device.streaming import TflmStreamingModel
from kws_zoo.evaluate.plots import plot_wake_det
from kws_zoo.evaluate.wake import choose, score, sweep
from kws_zoo.export import esphome
from kws_zoo.export.reparam import reparameterize
from kws_zoo.export.streaming import streaming_spec, to_streaming
from kws_zoo.export.streaming_tflite import to_tflite_streaming
from kws_zoo.models import create_model
from kws_zoo.models.saving import load_keras
from kws_zoo.recipe import Recipe, recipe_from_dict
from kws_zoo.train import prepare_data, train, training_finished
from kws_zoo.workflows.stream_export import calibration_streams
from kws_zoo.workflows.wakeword import mining, streams
from kws_zoo.workflows.wakeword.config import PRESETS, REAL_WAKE_WORDS, SHARED, WakewordConfig
from kws_zoo.workflows.wakeword.corpus import build_corpus, check_inputs

CONFIG = "wakeword.json"
LATENCY_S = 1.0  # a detection up to this long after the phrase ends still counts as its detection
WARMUP_S = 1.0  # training features from a settled micro frontend, as in the streams (FrontendConfig.warmup_s)


def round_recipe(cfg: WakewordConfig, corpus: str, round_no: int) -> Recipe:
    background = [d for d in cfg.real_background if os.path.isdir(d)]
    return recipe_from_dict({
        "name": f"wake_{phrase_slug(cfg.phrase)}_{cfg.preset}_r{round_no}", "model": cfg.model,
        "data": {"kind": "gsc", "path": os.path.abspath(corpus), "words": [phrase_slug(cfg.phrase)],
                 "one_negative_class": True, "unknown_pct": 100000, "silence_pct": 25, "seed": cfg.seed,
                 "background_dirs": [os.path.abspath(d) for d in background]},
        "frontend": FrontendConfig.micro().to_dict() | {"warmup_s": WARMUP_S},
        "feature_norm": False,
        "schedule": {"epochs": cfg.epochs_per_round, "batch_size": 100, "learning_rate": 0.003,
                     "negative_weight": cfg.negative_weight},
        "seed": cfg.seed}, where=f"wake-word round {round_no}")


def _claim(out: str, cfg: WakewordConfig) -> None:
    path = os.path.join(out, CONFIG)
    if os.path.exists(path):
        with open(path) as f:
            theirs = json.load(f)
        if theirs != cfg.to_dict():
            raise RunDirError(f"{out} holds another wake-word build ({path} differs); use another --out")
        return
    os.makedirs(out, exist_ok=True)
    atomic_write_text(path, json.dumps(cfg.to_dict(), indent=2) + "\n")


def preset_form(model_name: str) -> tuple[bytes, int]:
    """(ESPHome-form int8 .tflite, frames per step) of an untrained preset, converted as a build converts it (random
    calibration): its ops, shapes, arena and cost are those of a trained one."""
    model = create_model(model_name, input_shape=FrontendConfig.micro().output_shape(16000), num_classes=2)
    stream = to_streaming(esphome.with_wake_probability(reparameterize(model)), "internal")
    spec = streaming_spec(model)
    frames = np.random.default_rng(0).uniform(0, 25, (2, 3 * spec.window_frames, 40))
    return to_tflite_streaming(stream, esphome.anchor_input_range(frames), output_type="uint8"), spec.frames_per_step


def preset_cost(preset: str, invokes: int = 30) -> dict:
    """Flash, TFLM arena, state, resource variables, ESPHome problems and callgrind instructions per second of audio
    of a wake-word preset (`kws-zoo wakeword-cost`)."""
    model_bytes, stride = preset_form(PRESETS[preset][0])
    tflm = TflmStreamingModel(model_bytes)
    per_invoke = instructions_per_invoke(model_bytes, invokes=invokes)
    return {"preset": preset, "model": PRESETS[preset][0], "frames_per_step": stride, "flash_bytes": len(model_bytes),
            "arena_bytes": tflm.arena_bytes, "state_bytes": tflm.state_bytes,
            "resource_variables": esphome.resource_variables(model_bytes),
            "instructions_per_second": per_invoke * 100.0 / stride,
            "esphome_problems": esphome.model_problems(model_bytes)}


def check_preset(cfg: WakewordConfig) -> None:
    """Before any audio is made: converts the untrained preset as the build will and raises ExportError naming what
    does not fit ESPHome's micro_wake_word (when cfg.esphome)."""
    if not cfg.esphome:
        return
    model_bytes, _ = preset_form(cfg.model)
    try:
        esphome.check_model(model_bytes, f"preset {cfg.preset} ({cfg.model})")
    except ExportError as err:
        raise ExportError(f"{err}; build it anyway with --no-esphome (\"esphome\": false), "
                          "without a manifest") from None


def export_esphome(run_dir: str, recipe: Recipe, progress: bool, strict: bool = True
                   ) -> tuple[bytes, object, object]:
    """(ESPHome-form int8 .tflite, float wake-probability Keras model, streaming spec) of a trained round."""
    model = load_keras(os.path.join(run_dir, rundir.MODEL))
    labels = rundir.read_info(run_dir).labels
    binary = esphome.with_wake_probability(reparameterize(model), wake_index=list(labels).index(recipe.data.words[0]))
    spec = streaming_spec(model)
    path = os.path.join(run_dir, "esphome.tflite")
    if not os.path.exists(path):
        calibration = calibration_streams(recipe, prepare_data(recipe, progress), 240)
        calibration = esphome.anchor_input_range(calibration)
        stream = to_streaming(binary, "internal")
        model_bytes = to_tflite_streaming(stream, calibration, max_steps=calibration.shape[0] * calibration.shape[1],
                                          output_type="uint8")
        if strict:
            esphome.check_model(model_bytes, path)
        atomic_write_bytes(path, model_bytes)
    with open(path, "rb") as f:
        return f.read(), binary, spec


def _tflm_runner(model_bytes: bytes):
    model = TflmStreamingModel(model_bytes)
    return lambda audio, events: streams.tflm_scores(model, audio, events)


def _cached_json(path: str, make) -> dict:
    """A stage's result: read from `path` if an earlier run wrote it, else made and written atomically."""
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    result = make()
    atomic_write_json(path, result)
    return result


def run_wakeword(cfg: WakewordConfig, out: str, *, workers: int = 2, progress: bool = True) -> dict:
    """Builds, trains, mines, evaluates and exports; returns the card (also OUT/final/card.json)."""
    check_inputs(cfg)  # before anything is written: a bad phrase, folder or preset leaves nothing behind
    check_preset(cfg)
    _claim(out, cfg)
    corpus = os.path.join(out, "corpus")
    plan = build_corpus(cfg, corpus, workers=workers, progress=progress)
    slug = plan["label"]
    generated_noise, real_noise = streams.background(corpus, cfg.real_background)
    noises = generated_noise + real_noise
    # Decoded only if a stage that needs them has not run yet (a finished build resumes without reading clips).
    val_clips = functools.cache(lambda: streams.split_clips(corpus, slug, "validation", cfg.seed))
    rounds = []
    for r in range(1, cfg.rounds + 1):
        run_dir = os.path.join(out, f"round{r}")
        recipe = round_recipe(cfg, corpus, r)
        if not training_finished(run_dir, recipe):
            train(recipe, run_dir, progress=progress)
        model_bytes, binary, spec = export_esphome(run_dir, recipe, progress, strict=cfg.esphome)
        stride = spec.frames_per_step

        def validate():
            scored, _ = streams.run_streams(_tflm_runner(model_bytes), *val_clips(), noises, cfg.validation_hours,
                                            cfg.seed + 1, f"round {r}: validation streams (TFLM)", progress)
            rows = sweep(scored, stride, LATENCY_S)
            return {"rows": rows, "chosen": choose(rows, cfg.target_fa_per_hour)}

        val = _cached_json(os.path.join(run_dir, "validation.json"), validate)
        entry = {"round": r, "validation": val["chosen"]}
        if r < cfg.rounds:
            entry["mined"] = _cached_json(os.path.join(run_dir, "mined.json"),
                                          lambda: _mine(cfg, corpus, slug, model_bytes, noises, r, stride, progress))
        rounds.append(entry)
    return _finish(cfg, out, corpus, plan, rounds, model_bytes, binary, spec, (noises, real_noise), val, progress)


def _mine(cfg, corpus, slug, model_bytes, noises, round_no, stride, progress) -> dict:
    _, train_neg = streams.split_clips(corpus, slug, "train", cfg.seed + round_no)
    model = TflmStreamingModel(model_bytes)
    clips, seconds = [], 0.0
    for audio, events, _ in streams.chunks([], train_neg, noises, cfg.mining_hours, cfg.seed + 100 * round_no):
        scored = streams.tflm_scores(model, audio, events)
        clips += mining.mined_clips(audio, mining.triggers(scored, stride=stride))
        seconds += scored.seconds
    written = mining.write_mined(clips, os.path.join(corpus, f"mined_r{round_no}"), round_no)
    return {"hours": round(seconds / 3600, 3), "triggers": len(clips), "written": written,
            "triggers_per_hour": len(clips) / (seconds / 3600)}


def _finish(cfg, out, corpus, plan, rounds, model_bytes, binary, spec, background, val, progress) -> dict:
    noises, real_noise = background
    final = os.path.join(out, "final")
    os.makedirs(final, exist_ok=True)
    slug, stride = plan["label"], spec.frames_per_step
    chosen = val["chosen"]
    tflm = TflmStreamingModel(model_bytes)
    model_file = f"{slug}.tflite"
    atomic_write_bytes(os.path.join(final, model_file), model_bytes)
    problems = esphome.model_problems(model_bytes)
    manifest = esphome.make_manifest(wake_word=cfg.phrase.title(), model_file=model_file, cutoff=chosen["cutoff"],
                                     window=chosen["window"], arena_bytes=tflm.arena_bytes, author=cfg.author,
                                     website=cfg.website)
    esphome.check_manifest(manifest, arena_bytes=tflm.arena_bytes)
    if not problems:  # a manifest only for a model ESPHome loads (cfg.esphome False builds may not)
        atomic_write_text(os.path.join(final, f"{slug}.json"), esphome.manifest_text(manifest))
    firmware = write_firmware(model_bytes, os.path.join(final, "firmware"), labels=["_unknown_", slug],
                              frontend=FrontendConfig.micro().to_dict(), clip_ms=1000, arena_bytes=tflm.arena_bytes,
                              model_name=slug, frames_per_step=stride, window_frames=spec.window_frames)
    test_clips = functools.cache(lambda: streams.split_clips(corpus, slug, "test", cfg.seed))

    def test_tflm():
        scored, bands = streams.run_streams(_tflm_runner(model_bytes), *test_clips(), noises, cfg.test_hours,
                                            cfg.seed + 2, "test streams (TFLM)", progress)
        at = score(scored, chosen["cutoff_u8"], chosen["window"], stride, LATENCY_S)
        per_band = {f"{lo:g}-{hi:g} dB": score([s for s, b in zip(scored, bands) if b == (lo, hi)],
                                               chosen["cutoff_u8"], chosen["window"], stride, LATENCY_S)
                    for lo, hi in streams.SNR_BANDS if (lo, hi) in bands}
        return {"at_chosen": at, "per_snr_band": per_band,
                "rows": sweep(scored, stride, LATENCY_S, windows=(chosen["window"],))}

    def test_float():
        runner = lambda a, e: streams.float_scores(binary, spec.window_frames, stride, a, e)  # noqa: E731
        hours = cfg.float_compare_hours
        scored, _ = streams.run_streams(runner, *test_clips(), noises, hours, cfg.seed + 2,
                                        "test streams (float Keras)", progress)
        tflm_part, _ = streams.run_streams(_tflm_runner(model_bytes), *test_clips(), noises, hours, cfg.seed + 2,
                                           "same hours (TFLM)", progress)
        return {"hours": hours, "float": score(scored, chosen["cutoff_u8"], chosen["window"], stride, LATENCY_S),
                "tflm": score(tflm_part, chosen["cutoff_u8"], chosen["window"], stride, LATENCY_S),
                "rows": sweep(scored, stride, LATENCY_S, windows=(chosen["window"],))}

    test = _cached_json(os.path.join(final, "test.json"), test_tflm)
    floats = _cached_json(os.path.join(final, "float.json"), test_float) if cfg.float_compare_hours > 0 else None
    real = _cached_json(os.path.join(final, "real.json"),
                        lambda: _real(cfg, model_bytes, real_noise, chosen, stride))
    cost = _cached_json(os.path.join(final, "cost.json"), lambda: {
        "instructions_per_invoke": instructions_per_invoke(model_bytes, invokes=30) if cfg.count_instructions
        else None, "invokes_per_second": 100.0 / stride})
    per_invoke = cost["instructions_per_invoke"]
    cost["instructions_per_second"] = per_invoke * cost["invokes_per_second"] if per_invoke else None
    det = plot_wake_det(test["rows"], floats["rows"] if floats else None, chosen, cfg.target_fa_per_hour,
                        os.path.join(final, "det.png"),
                        f"{cfg.phrase!r} ({cfg.preset}): {test['at_chosen']['hours']:.1f} h "
                        f"of test streams, {test['at_chosen']['events']} phrases")
    card = {"phrase": cfg.phrase, "preset": cfg.preset, "model": cfg.model, "corpus": {
                k: plan[k] for k in ("speakers", "user_positives", "user_negatives")} | {
                "adversarial_phrases": len(plan["adversarial"]), "general_words": len(plan["general"])},
            "rounds": rounds, "target_fa_per_hour": cfg.target_fa_per_hour, "chosen_on_validation": chosen,
            "test_tflm": test["at_chosen"], "test_per_snr_band": test["per_snr_band"],
            "float_vs_tflm": {k: floats[k] for k in ("hours", "float", "tflm")} if floats else None,
            "real": real, "flash_bytes": len(model_bytes), "arena_bytes": tflm.arena_bytes,
            "state_bytes": tflm.state_bytes, "frames_per_step": stride, "window_frames": spec.window_frames,
            "instructions_per_second": cost["instructions_per_second"],
            "instructions_per_invoke": cost["instructions_per_invoke"],
            "manifest": manifest if not problems else None, "firmware": firmware, "det_png": det,
            "esphome_problems": problems}
    atomic_write_json(os.path.join(final, "card.json"), card)
    atomic_write_text(os.path.join(final, "card.md"), card_markdown(card))
    return card


def _real(cfg, model_bytes, real_noise, chosen, stride) -> dict:
    """FA/h on the real speech folders and, for a phrase they hold, FRR on the real wake-word recordings."""
    out = {}
    words = set(cfg.phrase.split())
    speech = streams.wavs_under(cfg.real_speech, exclude_words=words | {phrase_slug(cfg.phrase)})
    model = TflmStreamingModel(model_bytes)
    if speech:
        audio, _ = streams.concatenated([read_wav(p) for p in speech], real_noise, cfg.seed, gap_s=(0.2, 0.8))
        scored = streams.tflm_scores(model, audio, [])
        out["speech"] = score([scored], chosen["cutoff_u8"], chosen["window"], stride, LATENCY_S) | {
            "files": len(speech), "rows": sweep([scored], stride, LATENCY_S, windows=(chosen["window"],))}
    folder = REAL_WAKE_WORDS.get(cfg.phrase)
    if folder:
        paths = streams.wavs_under([os.path.join(SHARED, "real", "mycroft_precise", folder)])
        if paths:
            audio, events = streams.concatenated([read_wav(p) for p in paths], real_noise, cfg.seed)
            scored = streams.tflm_scores(model, audio, events)
            out["wake_word"] = score([scored], chosen["cutoff_u8"], chosen["window"], stride, LATENCY_S) | {
                "files": len(paths), "folder": folder,
                "rows": sweep([scored], stride, LATENCY_S, windows=(chosen["window"],))}
    return out


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def _fa(row) -> str:
    lo, hi = row["fa_per_hour_95"]
    return f"{row['fa_per_hour']:.2f}/h [{lo:.2f}, {hi:.2f}] ({row['false_accepts']} in {row['hours']:.2f} h)"


def card_markdown(card: dict) -> str:
    c, t = card["chosen_on_validation"], card["test_tflm"]
    lines = [f"# Wake word {card['phrase']!r} ({card['preset']}, model {card['model']})", "",
             f"Cut-off {c['cutoff']:.3f} (uint8 {c['cutoff_u8']}), sliding window {c['window']}: "
             "chosen on validation "
             f"streams for <= {card['target_fa_per_hour']} FA/h (validation: FRR {_pct(c['frr'])}, FA {_fa(c)}; "
             f"target {'met' if c['target_met'] else 'NOT met'}).", "",
             "| streams | FRR | false accepts per hour [95% Poisson] |", "|---|---:|---|",
             f"| test, TFLM int8 | {_pct(t['frr'])} ({t['false_rejects']}/{t['events']}) | {_fa(t)} |"]
    for band, row in card["test_per_snr_band"].items():
        lines.append(f"| test, TFLM, SNR {band} | {_pct(row['frr'])} ({row['false_rejects']}/{row['events']}) | "
                     f"{_fa(row)} |")
    if card["float_vs_tflm"]:
        for key in ("float", "tflm"):
            row = card["float_vs_tflm"][key]
            lines.append(f"| first {card['float_vs_tflm']['hours']:g} h, {key} | {_pct(row['frr'])} | {_fa(row)} |")
    for key, row in card["real"].items():
        what = f"real {row.get('folder', 'speech')} ({row['files']} files)"
        lines.append(f"| {what} | {_pct(row['frr']) if row['events'] else '-'} | {_fa(row)} |")
    real_wake = card["real"].get("wake_word", {})
    if real_wake.get("rows"):
        picks = [r for r in real_wake["rows"] if r["cutoff_u8"] in (100, 127, 154, 181, 208, 229, 247)]
        lines += ["", f"Real `{real_wake['folder']}` recordings, FRR by cut-off (window {real_wake['window']}): "
                  + ", ".join(f"{r['cutoff']:.2f}: {_pct(r['frr'])}" for r in picks) + "."]
    lines += ["", "| round | validation FRR | validation FA/h | mined triggers |", "|---:|---:|---|---:|"]
    for r in card["rounds"]:
        v = r["validation"]
        lines.append(f"| {r['round']} | {_pct(v['frr'])} | {_fa(v)} | {r.get('mined', {}).get('written', '-')} |")
    lines += ["", f"Flash {card['flash_bytes']:,} B, arena {card['arena_bytes']:,} B (TFLM, measured), state "
              f"{card['state_bytes']:,} B, {card['frames_per_step']} frames per invoke, " + (
                  f"{card['instructions_per_second'] / 1e6:.2f}M instructions per second of audio (callgrind)."
                  if card["instructions_per_second"] else "instructions not counted."), "",
              (f"ESPHome: `{card['manifest']['model']}` + manifest (tensor_arena_size "
               f"{card['manifest']['micro']['tensor_arena_size']:,})." if card["manifest"] else
               "Not for ESPHome: " + "; ".join(card["esphome_problems"])), "", "![DET](det.png)", ""]
    return "\n".join(lines)
