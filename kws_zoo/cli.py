"""The `kws-zoo` command. Each subcommand is a thin layer over a library function.

Expected failures (bad audio, bad recipe, missing model) print one line `kws-zoo: error: ...` and exit 2;
a traceback means a bug. KWS_ZOO_DEBUG=1 shows tracebacks for every error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


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
    from kws_zoo.datasets.synthetic import make_data_command

    make_data_command(args)


def _cmd_train(args) -> None:
    from kws_zoo.recipe import load_recipe
    from kws_zoo.train import check_data_paths, train

    recipe = load_recipe(args.recipe)
    if args.epochs is not None:
        recipe = recipe.replace(schedule=recipe.schedule.__class__(**{**recipe.schedule.__dict__,
                                                                       "epochs": args.epochs}))
    check_data_paths(recipe, where=args.recipe)  # names the recipe file; train() checks again for library callers
    run_dir = args.out or os.path.join("runs", recipe.name)
    summary = train(recipe, run_dir, restart=args.restart, progress=not args.quiet)
    print(json.dumps(summary, indent=2) if args.json else
          f"trained {recipe.name}: best validation accuracy {summary['best_val_accuracy']:.2%} "
          f"(epoch {summary['best_epoch']}), {summary['params']} params -> {run_dir}")


def _cmd_evaluate(args) -> None:
    from kws_zoo.evaluate import evaluate_model, format_report

    report = evaluate_model(args.model, data=args.data, split=args.split, runtime=args.runtime,
                            plot=args.plot, progress=not args.json)
    print(json.dumps(report, indent=2) if args.json else format_report(report))


def _cmd_export(args) -> None:
    from kws_zoo.deploy import export_run, format_card

    card = export_run(args.run_dir, out_dir=args.out, progress=not args.json, callgrind=args.callgrind)
    print(json.dumps(card, indent=2) if args.json else format_card(card))


def _cmd_compare(args) -> None:
    import contextlib

    from kws_zoo.compare import compare, markdown_table

    # With --json, stdout carries only the JSON; training's own messages go to stderr with the progress.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        rows = compare(args.recipes, args.out, epochs=args.epochs, callgrind=args.callgrind)
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))


def _cmd_predict(args) -> None:
    from kws_zoo.audio import AudioError, fit_length, read_wav
    from kws_zoo.inference import load_predictor

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
    from kws_zoo.audio import read_wav
    from kws_zoo.detector import DetectorConfig
    from kws_zoo.long_audio import stream_features
    from kws_zoo.streaming_runtime import load_streamer

    streamer = load_streamer(args.model, runtime=args.runtime)
    detector = streamer.detector(DetectorConfig(args.threshold, args.smoothing_ms, args.refractory_ms))
    audio = read_wav(args.wav, streamer.frontend.sample_rate)
    for d in detector.run(streamer.posteriors(stream_features(audio, streamer.frontend))):
        print(json.dumps(d.to_dict()) if args.json else f"{d.time_s:9.2f} s  {d.label:<12} {d.score:.3f}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws-zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("make-data", help="generate the synthetic TTS corpus (GSC layout)")
    from kws_zoo.datasets.synthetic import add_make_data_arguments

    add_make_data_arguments(p)
    p.set_defaults(func=_cmd_make_data)

    p = sub.add_parser("train", help="train a recipe (a JSON file or a built-in recipe name)")
    p.add_argument("recipe")
    p.add_argument("--out", help="run directory (default runs/<recipe name>)")
    p.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    p.add_argument("--restart", action="store_true", help="discard the run directory's checkpoint")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, per-class precision/recall, confusion matrix")
    p.add_argument("model", help="run/export directory, .keras, SavedModel or .tflite")
    p.add_argument("--data", default="recipe",
                   help="'recipe' (the model's own data), 'fsdd' (real speech), or a dataset directory")
    p.add_argument("--split", default="test", help="train, validation, test, or all (every split)")
    p.add_argument("--runtime", choices=["tflm", "litert"], default="tflm", help="runtime for .tflite models")
    p.add_argument("--plot", help="write the confusion matrix PNG here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("export", help="int8 TFLite, TFLM verification, C array, op resolver, model card")
    p.add_argument("run_dir")
    p.add_argument("--out", help="export directory (default RUN_DIR/export)")
    p.add_argument("--callgrind", action="store_true",
                   help="also count instructions per invoke inside MicroInterpreter::Invoke (valgrind)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("compare", help="train (or resume) and export several recipes; table of cost and accuracy")
    p.add_argument("recipes", nargs="+", help="recipe files or built-in recipe names")
    p.add_argument("--out", default=os.path.join("runs", "compare"),
                   help="runs go to OUT/<recipe>_e<epochs>; compare.md/.json/.png to OUT")
    p.add_argument("--epochs", type=int, help="same epoch budget for every recipe (overrides each recipe's)")
    p.add_argument("--callgrind", action="store_true", help="also count instructions per invoke (slow)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of the Markdown table")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("predict", help="label and score per WAV file")
    p.add_argument("model")
    p.add_argument("wavs", nargs="+")
    p.add_argument("--runtime", choices=["tflm", "litert"], default="tflm")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("stream", help="continuous detection over a long WAV with a streaming model")
    p.add_argument("model", help="run/export directory or .keras of a streamable model, or a streaming .tflite "
                                 "(python -m kws_zoo.stream_deploy RUN_DIR writes one)")
    p.add_argument("wav")
    p.add_argument("--runtime", choices=["keras", "tflm"], default="keras",
                   help="keras: float streaming graph; tflm: int8 streaming .tflite on the TFLM interpreter")
    p.add_argument("--threshold", type=float, default=0.8, help="smoothed posterior that fires a detection")
    p.add_argument("--smoothing-ms", type=float, default=200.0, help="posteriors averaged over this much audio")
    p.add_argument("--refractory-ms", type=float, default=1000.0, help="silence after a detection")
    p.add_argument("--json", action="store_true", help="JSON lines: time_s, label, score")
    p.set_defaults(func=_cmd_stream)

    # Streaming deployment and its reports: each module owns its arguments (also runnable with python -m).
    from kws_zoo import long_audio, stream_deploy, stream_drift, streaming_cost

    for name, module, text in (
            ("stream-export", stream_deploy, "int8 streaming .tflite (external and internal state), checked on TFLM"),
            ("long-audio", long_audio, "false rejects and false accepts per hour over a long test stream, DET PNG"),
            ("stream-drift", stream_drift, "both int8 streaming forms on TFLM for minutes vs the whole-window model"),
            ("stream-cost", streaming_cost, "MACs and weight bytes per second, arena and state: streaming vs not")):
        p = sub.add_parser(name, help=text, description=module.__doc__.splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    from kws_zoo.errors import USER_ERRORS

    try:
        args.func(args)
    except USER_ERRORS as err:
        if os.environ.get("KWS_ZOO_DEBUG"):
            raise
        print(f"kws-zoo: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("kws-zoo: interrupted (finished checkpoints are kept; run again to resume)", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
