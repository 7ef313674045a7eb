"""The `kws-zoo` command. Each subcommand parses its arguments, calls one library function and prints.

Expected failures (bad audio, bad recipe, missing model) print one line `kws-zoo: error: ...` and exit 2;
a traceback means a bug. KWS_ZOO_DEBUG=1 shows tracebacks for every error.

Every library import sits inside the subcommand that needs it: they load TensorFlow (5-7 s), and
`kws-zoo --help` and `kws-zoo SUBCOMMAND --help` must answer without it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
from pathlib import Path

from kws_zoo.core.errors import USER_ERRORS, AudioError, ConfigError
from kws_zoo.data.splits import SPEAKER_HALVES
from kws_zoo.data.synthetic.defaults import (DEFAULT_ENGINES, DEFAULT_SPEAKERS, ENGINES, WORD_SET_NAMES,
                                             default_corpus_dir)

# The runtimes' own modules load TensorFlow, so the choices are spelled here; the library checks them again.
RUNTIMES = ("tflm", "litert")
FEATURE_KINDS = ("log_mel", "mfcc", "micro")  # the frontends that run in TensorFlow (make-data --features)
STREAM_RUNTIMES = ("keras", "tflm")


def _cmd_list(args) -> None:
    from kws_zoo.models import get_entry, list_models

    rows = []
    for name in list_models(args.pattern):
        e = get_entry(name)
        rows.append({"name": name, "family": e.family, "streamable": e.streamable, "description": e.description})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:<24} {r['family']:<12} {r['description']}")


def _cmd_make_data(args) -> None:
    from kws_zoo.data.synthetic.corpus import make_corpus, words_from_spec

    words, engines = words_from_spec(args.words), tuple(e.strip() for e in args.engines.split(","))
    if args.runner == "beam":
        return _make_data_beam(args, words, engines)
    beam_only = [flag for flag, value in (("--beam-workers", args.beam_workers), ("--beam-args", args.beam_args),
                                          ("--shards", args.shards), ("--augment-copies", args.augment_copies),
                                          ("--features", args.features)) if value]
    if beam_only:
        raise ConfigError(f"{', '.join(beam_only)}: only with --runner beam")
    out = args.out or default_corpus_dir()
    card = make_corpus(out, words, speakers=args.speakers, takes=args.takes, seed=args.seed,
                       workers=args.workers, progress=not args.no_progress, engines=engines)
    print(f"{out}: {card['num_clips']} clips, {card['num_speakers']} speakers, "
          f"splits {card['counts_per_split']}; card at {Path(out) / 'card.md'}")


def _train_local_workers(args, recipe, run_dir: str) -> dict:
    """`train --workers N`: the same command as N local workers (kws_zoo.workflows.local_workers); the chief's
    summary."""
    import shutil

    from kws_zoo.rundir import TRAIN_SUMMARY
    from kws_zoo.workflows.local_workers import run_local_workers

    if args.restart:  # once, here: a restarted worker must resume, not start over
        shutil.rmtree(run_dir, ignore_errors=True)
    train_args = [args.recipe, "--out", run_dir, "--strategy", "multi_worker"] + (["--quiet"] if args.quiet else [])
    train_args += ["--epochs", str(recipe.schedule.epochs), "--backup-every", str(recipe.distribute.backup_every_steps)]
    restarts = run_local_workers(train_args, run_dir, args.workers)
    with open(os.path.join(run_dir, TRAIN_SUMMARY)) as f:
        return dict(json.load(f), restarts=restarts)


def _cmd_bench_input(args) -> None:
    from kws_zoo.recipe import load_recipe
    from kws_zoo.workflows.bench_input import ablate_input, bench_input

    if args.ablate:
        result = ablate_input(load_recipe(args.recipe), repeats=args.repeats, progress=not args.quiet)
        if args.json:
            print(json.dumps(result, indent=2))
            return
        print(f"{result['recipe']}: input alone, clips/s, median of {result['repeats']} epochs (and microseconds "
              "per clip each augmentation costs)")
        for name, rate in result["input_alone_clips_per_s"].items():
            cost = result["us_per_clip"].get(name.removeprefix("no "))
            print(f"  {name:<16} {rate:>8.1f}" + (f"   {cost:>6.1f} us" if name.startswith("no ") else ""))
        return
    result = bench_input(load_recipe(args.recipe), repeats=args.repeats, progress=not args.quiet)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['recipe']}: {result['train_clips']} training clips, batch {result['batch_size']}; median of "
          f"{result['repeats']} epochs each")
    for key in ("input_alone", "model_alone", "model_steps_alone", "end_to_end"):
        print(f"  {key.replace('_', ' '):<17} {result[key + '_clips_per_s']:>8.1f} clips/s")
    print(f"  end to end is {result['end_to_end_of_model_alone']:.0%} of model alone; an epoch with validation "
          f"takes {result['epoch_with_validation_s']:.1f} s")
    busy = ", ".join(f"{key.replace('_', ' ')} {statistics.median(v):.2f}"
                     for key, v in result["runs_cores_busy"].items())
    print(f"  cores busy (median): {busy}")


def _make_data_beam(args, words: tuple[str, ...], engines: tuple[str, ...]) -> None:
    from kws_zoo.data.frontends import FrontendConfig
    from kws_zoo.data.synthetic.beam_corpus import make_beam_corpus

    out = args.out or default_corpus_dir().with_name("synthetic_beam")
    frontend = None if not args.features else FrontendConfig.micro() if args.features == "micro" else \
        FrontendConfig(kind=args.features)
    manifest = make_beam_corpus(out, words, speakers=args.speakers, takes=args.takes, seed=args.seed,
                                engines=engines, workers=args.beam_workers or args.workers,
                                beam_args=args.beam_args or "", shards=args.shards,
                                augment_copies=args.augment_copies or 0, frontend=frontend,
                                progress=not args.no_progress)
    print(f"{out}: {manifest['clips']} clips, {manifest['background']} background files, {manifest['copies']} "
          f"augmented copies in {len(manifest['shards'])} TFRecord shard(s); as folders: "
          f"kws-zoo unpack-corpus {out} --out DIR")


def _cmd_unpack_corpus(args) -> None:
    from kws_zoo.data.synthetic.corpus_records import unpack_beam_corpus

    card = unpack_beam_corpus(args.records, args.out, progress=not args.no_progress)
    print(f"{args.out}: {card['num_clips']} clips, {card['num_speakers']} speakers, "
          f"splits {card['counts_per_split']}; card at {Path(args.out) / 'card.md'}")


def _cmd_rooms(args) -> None:
    from kws_zoo.data.synthetic.rooms import make_room_copy

    corpus = args.corpus or default_corpus_dir()
    card = make_room_copy(corpus, args.out, copies=args.copies, seed=args.seed, workers=args.workers,
                          progress=not args.no_progress)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        print(f"{args.out}: {card['clips']} training clips of {corpus} through simulated rooms and microphones "
              f"({card['copies']} per clip); add it to a recipe's data.extra_train")


def _cmd_train(args) -> None:
    from kws_zoo.core.errors import RecipeError
    from kws_zoo.recipe import load_recipe, with_distribute, with_epochs
    from kws_zoo.rundir import default_run_dir
    from kws_zoo.train import check_data_paths, copy_training, train

    from kws_zoo.workflows.wakeword.config import is_wakeword_recipe

    if is_wakeword_recipe(args.recipe):  # a wake-word recipe trains through its own flow
        if args.workers or args.strategy or args.backup_every is not None:
            raise RecipeError(f"{args.recipe}: a wake-word build trains on one process; --workers, --strategy and "
                              "--backup-every are for ordinary recipes")
        args.phrase, args.preset, args.esphome, args.rounds, args.target_fa_per_hour = None, None, None, None, None
        args.test_hours = args.positives = args.negatives = None
        args.workers = 2
        return _cmd_wakeword(args)
    recipe = with_distribute(with_epochs(load_recipe(args.recipe), args.epochs),
                             "multi_worker" if args.workers else args.strategy, args.backup_every)
    check_data_paths(recipe, where=args.recipe)  # names the recipe file; train() checks again for library callers
    run_dir = args.out or default_run_dir(recipe.name)
    if args.start_from:
        copy_training(args.start_from, run_dir, recipe)
    if args.workers:
        summary = _train_local_workers(args, recipe, run_dir)
    else:
        summary = train(recipe, run_dir, restart=args.restart, progress=not args.quiet)
    if recipe.compress.active:  # the recipe's compression stage runs on the trained model, in the same run dir
        from kws_zoo.workflows.compress_run import compress_run

        summary["compress"] = compress_run(run_dir, recipe, progress=not args.quiet)
    print(json.dumps(summary, indent=2) if args.json else
          f"trained {recipe.name}: best validation accuracy {summary['best_val_accuracy']:.2%} "
          f"(epoch {summary['best_epoch']}), {summary['params']} params -> {run_dir}")
    if "compress" in summary and not args.json:
        stages = ", ".join(f"{k} {v:.2%}" for k, v in summary["compress"]["accuracy"].items())
        print(f"compressed ({recipe.compress.method}{', QAT' if recipe.compress.qat else ''}): test accuracy "
              f"after each stage: {stages}")


def _cmd_wakeword(args) -> None:
    import dataclasses

    from kws_zoo.workflows.wakeword.config import WakewordConfig, load_wakeword
    from kws_zoo.workflows.wakeword.run import run_wakeword

    if (args.phrase is None) == (args.recipe is None):
        from kws_zoo.core.errors import ConfigError

        raise ConfigError("wakeword: give a PHRASE or --recipe FILE (one of them)")
    if args.recipe:
        cfg = load_wakeword(args.recipe)
    else:
        cfg = WakewordConfig(phrase=args.phrase)
    overrides = {k: v for k, v in (("preset", args.preset), ("esphome", args.esphome), ("rounds", args.rounds),
                                   ("epochs", args.epochs),
                                   ("target_fa_per_hour", args.target_fa_per_hour), ("test_hours", args.test_hours),
                                   ("positives_dir", args.positives), ("negatives_dir", args.negatives))
                 if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    from kws_zoo.data.synthetic.phrases import phrase_slug

    out = args.out or os.path.join("runs", f"wakeword_{phrase_slug(cfg.phrase)}_{cfg.preset}")
    card = run_wakeword(cfg, out, workers=args.workers, progress=not args.json)
    if args.json:
        print(json.dumps(card, indent=2))
        return
    from kws_zoo.workflows.wakeword.run import card_markdown

    print(card_markdown(card))
    print(f"-> {os.path.join(out, 'final')}")


def _cmd_wakeword_cost(args) -> None:
    from kws_zoo.workflows.wakeword.config import PRESETS
    from kws_zoo.workflows.wakeword.run import preset_cost

    rows = [preset_cost(p) for p in (args.presets or sorted(PRESETS))]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'preset':<18} {'step':>5} {'flash':>9} {'arena':>9} {'state':>7} {'vars':>4} {'instr/s':>9}  ESPHome")
    for r in rows:
        print(f"{r['preset']:<18} {10 * r['frames_per_step']:>3}ms {r['flash_bytes']:>9,} {r['arena_bytes']:>9,} "
              f"{r['state_bytes']:>7,} {r['resource_variables']:>4} {r['instructions_per_second'] / 1e6:>8.2f}M  "
              f"{'fits' if not r['esphome_problems'] else '; '.join(r['esphome_problems'])}")


def _cmd_evaluate(args) -> None:
    from kws_zoo.evaluate.accuracy import evaluate_model, format_report

    report = evaluate_model(args.model, data=args.data, split=args.split, runtime=args.runtime,
                            plot=args.plot, progress=not args.json, speakers=args.speakers)
    print(json.dumps(report, indent=2) if args.json else format_report(report))


def _cmd_pseudo_label(args) -> None:
    from kws_zoo.workflows.pseudo_label import pseudo_label

    summary = pseudo_label(args.model, args.data, args.out, threshold=args.threshold, speakers=args.speakers,
                           runtime=args.runtime, progress=not args.json)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    agree = summary.get("agreement_with_folder_labels")
    print(f"kept {summary['kept']} of {summary['candidates']} recordings at p >= {summary['threshold']:g} -> "
          f"{args.out}" + (f"; agreement with the folder's own labels {agree:.1%} (diagnostic)" if agree else ""))
    print("per label: " + ", ".join(f"{k} {v}" for k, v in summary["kept_per_label"].items()))


def _cmd_teacher(args) -> None:
    from kws_zoo.workflows.teacher import train_teacher

    summary = train_teacher(args.recipe, args.out, copies=args.copies, epochs=args.epochs, progress=not args.json)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
        return
    print(f"teacher {summary['recipe']} -> {args.out}: test {summary['test_accuracy']:.2%}, validation "
          f"{summary['validation_accuracy']:.2%} (epoch {summary['best_epoch']} of {summary['epochs']})")


def _cmd_export(args) -> None:
    from kws_zoo.core.errors import ConfigError
    from kws_zoo.workflows.export_run import export_run, format_card
    from kws_zoo.workflows.firmware import write_run_firmware

    if args.pretrained:  # released models are exported already; their files in the cache stay as verified
        if not args.firmware:
            raise ConfigError(f"{args.pretrained} is a pretrained model, exported when released: its files are in "
                              f"{args.run_dir}; `--firmware DIR` writes its firmware folder")
    else:
        card = export_run(args.run_dir, out_dir=args.out, progress=not args.json, callgrind=args.callgrind)
        print(json.dumps(card, indent=2) if args.json else format_card(card))
    if args.firmware:
        folder = write_run_firmware(args.run_dir, args.firmware, stream=args.stream)
        if args.json and args.pretrained:
            print(json.dumps(folder, indent=2))
        elif not args.json:
            print(f"firmware folder {args.firmware}: {', '.join(folder['model_data'])}, {folder['op_resolver']}, "
                  f"{folder['readme']}; arena {folder['arena_bytes_measured']:,} bytes measured, "
                  f"{folder['arena_bytes']:,} to allocate; flash {folder['flash_bytes']:,} bytes")


def _cmd_pretrained(args) -> None:
    from kws_zoo import hub
    from kws_zoo.core.errors import ConfigError
    from kws_zoo.hub.listing import entry_details, pretrained_table
    from kws_zoo.hub.registry import registry_file

    if args.action == "list":
        entries = [hub.pretrained_entry(n) for n in hub.list_pretrained(args.name or "*")]
        print(json.dumps([e.to_dict() for e in entries], indent=2) if args.json else pretrained_table(entries))
    elif args.action == "info":
        entry = hub.pretrained_entry(_required_name(args))
        print(json.dumps(entry.to_dict(), indent=2) if args.json else entry_details(entry))
    elif args.action == "download":
        folder = hub.download(_required_name(args), progress=not args.json)
        print(json.dumps({"name": args.name, "path": folder}) if args.json else folder)
    else:
        from kws_zoo.workflows.release import release_run

        if not args.run_dir:
            raise ConfigError("pretrained release needs --run RUN_DIR")
        entry = release_run(args.run_dir, _required_name(args), license=args.license, description=args.description)
        print(json.dumps(entry.to_dict(), indent=2) if args.json else f"{entry.name}: {entry.file} "
              f"({entry.size:,} bytes, sha256 {entry.sha256}) -> {registry_file()}")


def _required_name(args) -> str:
    from kws_zoo.core.errors import ConfigError

    if not args.name:
        raise ConfigError(f"pretrained {args.action} needs a NAME (see `kws-zoo pretrained list`)")
    return args.name


def _cmd_compare(args) -> None:
    from kws_zoo.rundir import default_run_dir
    from kws_zoo.workflows.compare import compare, markdown_table

    # With --json, stdout carries only the JSON; training's own messages go to stderr with the progress.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        rows = compare(args.recipes, args.out or default_run_dir("compare"), epochs=args.epochs,
                       callgrind=args.callgrind)
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))


def _cmd_predict(args) -> None:
    from kws_zoo.data.audio import fit_length, read_wav
    from kws_zoo.evaluate.predictor import load_predictor

    predictor = load_predictor(args.model, runtime=args.runtime)
    failures = 0
    for path in args.wavs:
        try:
            wave = fit_length(read_wav(path, predictor.frontend.sample_rate), predictor.clip_samples)
        except AudioError as err:
            failures += 1
            print(f"kws-zoo: error: {err}", file=sys.stderr)
            continue
        probs = predictor.predict_waveforms(wave[None])[0]
        top = int(probs.argmax())
        row = {"file": path, "label": predictor.labels[top], "score": round(float(probs[top]), 4)}
        print(json.dumps(row) if args.json else f"{path}\t{row['label']}\t{row['score']:.3f}")
    if failures:
        raise SystemExit(2)


def _cmd_stream(args) -> None:
    from kws_zoo.data.audio import read_wav
    from kws_zoo.data.frontends import stream_features
    from kws_zoo.evaluate.detector import DetectorConfig
    from kws_zoo.evaluate.streamer import load_streamer

    streamer = load_streamer(args.model, runtime=args.runtime)
    detector = streamer.detector(DetectorConfig(args.threshold, args.smoothing_ms, args.refractory_ms))
    audio = read_wav(args.wav, streamer.frontend.sample_rate)
    for d in detector.run(streamer.posteriors(stream_features(audio, streamer.frontend))):
        print(json.dumps(d.to_dict()) if args.json else f"{d.time_s:9.2f} s  {d.label:<12} {d.score:.3f}")


def _cmd_stream_export(args) -> None:
    from kws_zoo.workflows.stream_export import export_streaming_run

    print(json.dumps(export_streaming_run(args.run_dir, args.out), indent=2))


def _cmd_long_audio(args) -> None:
    from kws_zoo.evaluate.long_audio import evaluate_run, format_rows
    from kws_zoo.rundir import long_audio_dir

    out = args.out or long_audio_dir(args.run_dir, args.runtime)
    report = evaluate_run(args.run_dir, out, minutes=args.minutes, seed=args.seed, runtime=args.runtime,
                          progress=not args.json, save_wav=args.save_wav)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(format_rows(report["rows"]))
    print(f"DET curve: {report['det_png']}")


def _cmd_stream_drift(args) -> None:
    from kws_zoo.evaluate.drift import check_drift, format_report

    report = check_drift(args.run_dir, minutes=args.minutes, every_s=args.every_s, seed=args.seed,
                         progress=not args.json)
    print(json.dumps(report, indent=2) if args.json else format_report(report))


def _cmd_stream_cost(args) -> None:
    from kws_zoo.workflows.stream_cost import cost_of_presets, summary_table

    reports = cost_of_presets(args.models, args.hop_ms, progress=not args.json)
    print(json.dumps(reports, indent=2) if args.json else summary_table(reports))


def _cmd_ternary_cost(args) -> None:
    from kws_zoo.workflows.ternary_cost import format_cost, ternary_op_cost

    row = ternary_op_cost(args.run_dir, invokes=args.invokes)
    print(json.dumps(row, indent=2) if args.json else format_cost(row))


def _speakers(text: str) -> int | None:
    if text.lower() in ("all", "none"):
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _json_flag(parser, text: str = "print the result as JSON") -> None:
    parser.add_argument("--json", action="store_true", help=text)


def _add_parsers(sub) -> None:
    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*")
    _json_flag(p)
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("make-data", help="generate the synthetic TTS corpus (GSC layout)",
                       description="Generate the synthetic keyword corpus (GSC layout).")
    p.add_argument("--out", default=None, help=f"output directory (default {default_corpus_dir()})")
    p.add_argument("--words", default="gsc35",
                   help=f"{' or '.join(WORD_SET_NAMES)}, or a comma-separated list (default gsc35)")
    p.add_argument("--speakers", type=_speakers, default=DEFAULT_SPEAKERS,
                   help=f"number of TTS speakers, or 'all' (default {DEFAULT_SPEAKERS})")
    p.add_argument("--takes", type=int, default=1, help="utterances per word and speaker (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes (output does not depend on it)")
    p.add_argument("--engines", default=",".join(DEFAULT_ENGINES),
                   help=f"comma list from {','.join(ENGINES)} (default {','.join(DEFAULT_ENGINES)})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("Apache Beam (pip install 'kws_zoo[scale]'; docs/scale.md)")
    g.add_argument("--runner", choices=("local", "beam"), default="local",
                   help="local: the process pool, GSC folders (default); beam: a Beam pipeline writing sharded "
                        "TFRecords of the same files")
    g.add_argument("--beam-workers", type=int, help="DirectRunner processes (default --workers)")
    g.add_argument("--beam-args", metavar="ARGS", help="Beam pipeline options, passed through (write it with =), "
                   "e.g. --beam-args=\"--runner=FlinkRunner --flink_master=HOST:8081\"")
    g.add_argument("--shards", type=int, help="TFRecord files (default one per 1000 records)")
    g.add_argument("--augment-copies", type=int, metavar="K", help="K augmented copies of every training clip")
    g.add_argument("--features", choices=FEATURE_KINDS, help="also store every clip's features (default settings)")
    p.set_defaults(func=_cmd_make_data)

    p = sub.add_parser("unpack-corpus", help="write a TFRecord corpus (make-data --runner beam) as GSC folders",
                       description="Write the corpus a Beam pipeline made (make-data --runner beam) as make-data's "
                                   "folders: the same files, lists and card; augmented copies in OUT/_augmented.")
    p.add_argument("records", help="the directory of TFRecord shards and beam_corpus.json")
    p.add_argument("--out", required=True, help="output directory (GSC layout)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_unpack_corpus)

    p = sub.add_parser("rooms", help="a copy of a corpus's training clips through simulated rooms and microphones",
                       description="Write room-and-microphone versions (pyroomacoustics rooms, audiomentations "
                                   "channel) of every training-split clip of a GSC-layout corpus, for extra_train.")
    p.add_argument("corpus", nargs="?", help=f"source corpus (default {default_corpus_dir()})")
    p.add_argument("--out", required=True, help="output directory (GSC layout)")
    p.add_argument("--copies", type=int, default=1, help="versions per clip (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes (output does not depend on it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _json_flag(p)
    p.set_defaults(func=_cmd_rooms)

    p = sub.add_parser("train", help="train a recipe (a JSON file or a built-in recipe name)")
    p.add_argument("recipe")
    p.add_argument("--out", help="run directory (default runs/<recipe name>)")
    p.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    p.add_argument("--restart", action="store_true", help="discard the run directory's checkpoint")
    p.add_argument("--from", dest="start_from", metavar="RUN",
                   help="start from RUN's finished training (same recipe apart from name and compress section): "
                        "only the compression stage runs")
    p.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"),
                   help="tf.distribute strategy (default: the recipe's distribute.strategy); multi_worker reads "
                        "TF_CONFIG")
    p.add_argument("--backup-every", type=int, metavar="STEPS",
                   help="mid-epoch backup every STEPS training steps (default: the recipe's; 0: per epoch only)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="N local worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy), restarted together "
                        "from the last backup if one fails")
    p.add_argument("--quiet", action="store_true")
    _json_flag(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("bench-input", help="clips/s of the input pipeline alone, the model step alone and "
                                           "training end to end, for a recipe")
    p.add_argument("recipe", help="a recipe JSON file or a built-in recipe name")
    p.add_argument("--ablate", action="store_true", help="instead: the input alone with each augmentation switched "
                                                         "off in turn (what each costs per clip)")
    p.add_argument("--repeats", type=_positive_int, default=3, help="epochs timed per figure, taken in turn; the "
                                                                     "median is reported (default 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench_input)

    p = sub.add_parser("wakeword", help="a custom wake word from text: corpus, training with hard-negative mining, "
                                        "FRR vs FA/h through TFLM, ESPHome manifest and firmware",
                       description="Synthesizes the phrase with every TTS voice, builds close-sounding, general and "
                                   "background negatives, trains a streaming model on TFLM's micro frontend (rounds "
                                   "with hard-negative mining), picks the cut-off for the target false accepts per "
                                   "hour on validation streams and reports test streams through TFLM. Resumes.")
    p.add_argument("phrase", nargs="?", help='the wake phrase, e.g. "hey zoo"')
    p.add_argument("--recipe", help='a wake-word recipe JSON ({"kind": "wakeword", "phrase": ...})')
    p.add_argument("--out", help="build folder (default runs/wakeword_<phrase>_<preset>)")
    p.add_argument("--preset", help="matchboxnet_wake (default), repcnn_wake, repcnn_wake_plain, repcnn_s, "
                                    "repcnn_s_plain, bc_resnet_1")
    p.add_argument("--no-esphome", dest="esphome", action="store_false", default=None,
                   help="build even if the preset does not fit ESPHome's micro_wake_word (no manifest then)")
    p.add_argument("--rounds", type=int, help="trainings, with hard-negative mining between them (default 2)")
    p.add_argument("--epochs", type=int, help="epochs per round (default: the preset's)")
    p.add_argument("--target-fa-per-hour", type=float, help="false accepts per hour to choose the cut-off for "
                                                            "(default 0.5)")
    p.add_argument("--test-hours", type=float, help="hours of test streams (default 5)")
    p.add_argument("--positives", help="a folder of your own recordings of the phrase (16 kHz WAV)")
    p.add_argument("--negatives", help="a folder of your own recordings that must not trigger (16 kHz WAV)")
    p.add_argument("--workers", type=int, default=2, help="TTS worker processes")
    _json_flag(p)
    p.set_defaults(func=_cmd_wakeword)

    p = sub.add_parser("wakeword-cost", help="flash, arena, state and instructions per second of audio of the "
                                             "wake-word presets in their ESPHome form (untrained; callgrind)")
    p.add_argument("presets", nargs="*", help="presets (default: all)")
    _json_flag(p)
    p.set_defaults(func=_cmd_wakeword_cost)

    p = sub.add_parser("evaluate", help="accuracy, per-class precision/recall, confusion matrix")
    p.add_argument("model", help="run/export directory, .keras, SavedModel or .tflite")
    p.add_argument("--data", default="recipe",
                   help="'recipe' (the model's own data), 'fsdd' (real speech), or a dataset directory")
    p.add_argument("--split", default="test", help="train, validation, test, or all (every split)")
    p.add_argument("--speakers", choices=SPEAKER_HALVES, default="all",
                   help="score one half of the speakers only (the other half may have trained the model)")
    p.add_argument("--runtime", choices=RUNTIMES, default="tflm", help="runtime for .tflite models")
    p.add_argument("--plot", help="write the confusion matrix PNG here")
    _json_flag(p, "print the report as JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("pseudo-label", help="a teacher's confident labels for unlabelled recordings (self-training)")
    p.add_argument("model", help="the teacher: run/export directory, .keras, SavedModel or .tflite")
    p.add_argument("--data", required=True,
                   help="recordings: a dataset directory (its labels are not used) or 'fsdd'")
    p.add_argument("--out", required=True, help="manifest to write (JSON); recipes add it with extra_train")
    p.add_argument("--threshold", type=float, default=0.9, help="keep answers at least this probable (default 0.9)")
    p.add_argument("--speakers", choices=SPEAKER_HALVES, default="all", help="label one half of the speakers only")
    p.add_argument("--runtime", choices=RUNTIMES, default="keras", help="runtime for .tflite teachers")
    _json_flag(p, "print the summary as JSON")
    p.set_defaults(func=_cmd_pseudo_label)

    p = sub.add_parser("teacher", help="a speech_embedding classifier trained on a recipe's data (self-training "
                       "teacher; not a device model)")
    p.add_argument("recipe", help="recipe file or built-in recipe name: its data, augmentation and seed are used")
    p.add_argument("--out", required=True, help="teacher folder (model.keras, kws_zoo.json, cached embeddings)")
    p.add_argument("--copies", type=int, default=2, help="augmented copies of the training clips (default 2)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    _json_flag(p, "print the summary as JSON")
    p.set_defaults(func=_cmd_teacher)

    p = sub.add_parser("export", help="int8 TFLite, TFLM verification, C array, op resolver, model card")
    p.add_argument("run_dir", help="run directory, or a pretrained name (with --firmware)")
    p.add_argument("--out", help="export directory (default RUN_DIR/export)")
    p.add_argument("--firmware", metavar="DIR", help="also write the firmware folder: model_data.cc/.h, op "
                                                     "resolver, measured arena, README")
    p.add_argument("--stream", action="store_true", help="the firmware folder of the internal-state streaming "
                                                         "model (RUN/stream, from `kws-zoo stream-export`)")
    p.add_argument("--callgrind", action="store_true",
                   help="also count instructions per invoke inside MicroInterpreter::Invoke (valgrind)")
    _json_flag(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("pretrained", help="released models: list, info NAME, download NAME (verified, cached); "
                                          "release (maintainers)")
    p.add_argument("action", choices=("list", "info", "download", "release"))
    p.add_argument("name", nargs="?", help="pretrained name, e.g. ds_cnn.synthetic12 (a pattern for list)")
    p.add_argument("--run", dest="run_dir", help="release: the finished, exported run to publish")
    p.add_argument("--license", default="Apache-2.0", help="release: the model's license (default Apache-2.0)")
    p.add_argument("--description", default="", help="release: one line for the registry")
    _json_flag(p)
    p.set_defaults(func=_cmd_pretrained)

    p = sub.add_parser("compare", help="train (or resume) and export several recipes; table of cost and accuracy")
    p.add_argument("recipes", nargs="+", help="recipe files or built-in recipe names")
    p.add_argument("--out", help="runs go to OUT/<recipe>_e<epochs>; compare.md/.json/.png to OUT "
                                 "(default runs/compare)")
    p.add_argument("--epochs", type=int, help="same epoch budget for every recipe (overrides each recipe's)")
    p.add_argument("--callgrind", action="store_true", help="also count instructions per invoke (slow)")
    _json_flag(p, "print the rows as JSON instead of the Markdown table")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("predict", help="label and score per WAV file")
    p.add_argument("model")
    p.add_argument("wavs", nargs="+")
    p.add_argument("--runtime", choices=RUNTIMES, default="tflm")
    _json_flag(p, "JSON lines")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("stream", help="continuous detection over a long WAV with a streaming model")
    p.add_argument("model", help="run/export directory or .keras of a streamable model, or a streaming .tflite "
                                 "(`kws-zoo stream-export RUN_DIR` writes one)")
    p.add_argument("wav")
    p.add_argument("--runtime", choices=STREAM_RUNTIMES, default="keras",
                   help="keras: float streaming graph; tflm: int8 streaming .tflite on the TFLM interpreter")
    p.add_argument("--threshold", type=float, default=0.8, help="smoothed posterior that fires a detection")
    p.add_argument("--smoothing-ms", type=float, default=200.0, help="posteriors averaged over this much audio")
    p.add_argument("--refractory-ms", type=float, default=1000.0, help="silence after a detection")
    _json_flag(p, "JSON lines: time_s, label, score")
    p.set_defaults(func=_cmd_stream)

    p = sub.add_parser("stream-export", help="int8 streaming .tflite (external and internal state), checked on TFLM",
                       description="Export a trained streamable run as int8 streaming .tflite files (RUN_DIR/stream).")
    p.add_argument("run_dir", help="a trained run of a streamable model")
    p.add_argument("--out", help="default RUN_DIR/stream")
    p.set_defaults(func=_cmd_stream_export)

    p = sub.add_parser("long-audio", help="false rejects and false accepts per hour over a long test stream, DET PNG",
                       description="Long-audio evaluation: false rejects and false accepts per hour of a streaming "
                                   "detector.")
    p.add_argument("run_dir", help="a trained run of a streamable model (tflm: after stream-export)")
    p.add_argument("--out", help="default RUN_DIR/long_audio[_tflm]")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the test stream")
    p.add_argument("--seed", type=int, default=0, help="placement of utterances, gaps and SNRs")
    p.add_argument("--runtime", choices=STREAM_RUNTIMES, default="keras",
                   help="keras: float streaming graph; tflm: int8 external-state .tflite on TFLM")
    p.add_argument("--save-wav", action="store_true", help="also write OUT/stream.wav and OUT/events.json")
    _json_flag(p, "print report.json instead of the table")
    p.set_defaults(func=_cmd_long_audio)

    p = sub.add_parser("stream-drift", help="both int8 streaming forms on TFLM for minutes vs the whole-window model",
                       description="Drift check of the int8 streaming models on the TFLM interpreter over a long "
                                   "stream of audio.")
    p.add_argument("run_dir", help="a run exported with `kws-zoo stream-export`")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--every-s", type=float, default=1.0, help="compare with the whole window this often")
    p.add_argument("--seed", type=int, default=1, help="test stream seed")
    _json_flag(p)
    p.set_defaults(func=_cmd_stream_drift)

    p = sub.add_parser("stream-cost", help="MACs and weight bytes per second, arena and state: streaming vs not",
                       description="What streaming saves: MACs and weight reads per second of audio, TFLM arena "
                                   "and state bytes, per form.")
    p.add_argument("models", nargs="*", help="streamable presets (default: every streamable one)")
    p.add_argument("--hop-ms", type=float, help="feature hop (default 20 ms for ~50 frames, else 10 ms)")
    _json_flag(p)
    p.set_defaults(func=_cmd_stream_cost)


def _resolve_pretrained(args) -> None:
    """A MODEL or RUN_DIR argument that names a released model becomes its verified folder in the cache."""
    args.pretrained = None
    if args.command == "pretrained":
        return
    for attr in ("model", "run_dir"):
        value = getattr(args, attr, None)
        if not value or os.path.exists(value) or "." not in value or value.endswith((".keras", ".tflite", ".json")):
            continue
        from kws_zoo import hub

        if hub.is_pretrained_name(value):
            args.pretrained = value
            setattr(args, attr, hub.download(value, progress=not getattr(args, "json", False)))


def _add_firmware_parsers(sub) -> None:
    p = sub.add_parser("ternary-cost", help="the seed-regenerated ternary kernel vs int8 constants on the host TFLM "
                                            "build: flash, arena, instructions per invoke, bit-exactness")
    p.add_argument("run_dir", metavar="MODEL", help="run directory of a ternary model, or a pretrained name")
    p.add_argument("--invokes", type=int, default=5, help="random inputs run and counted (default 5)")
    _json_flag(p)
    p.set_defaults(func=_cmd_ternary_cost)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws-zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_parsers(sub)
    _add_firmware_parsers(sub)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        _resolve_pretrained(args)
        args.func(args)
    except USER_ERRORS as err:
        if os.environ.get("KWS_ZOO_DEBUG"):
            raise
        print(f"kws-zoo: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("kws-zoo: interrupted (finished checkpoints are kept; run again to resume)", file=sys.stderr)
        raise SystemExit(130) from None
