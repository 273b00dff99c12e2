"""Command line: `discovery SUBCOMMAND ...`. Each subcommand builds configs and calls one
function of the package; errors a user can cause print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Optional, Sequence

from discovery import __version__
from discovery.errors import DiscoveryError, ParameterError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse's own usage errors also exit 2, with a one-line message."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_feature_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("feature settings (override the preset)")
    group.add_argument("--features", default="default", metavar="NAME",
                       help="named feature settings: default, fbank26, seed-v4 "
                            "(default: %(default)s)")
    group.add_argument("--config", type=Path, metavar="JSON",
                       help="a config.json (as in a model bundle) to take every setting from")
    group.add_argument("--sample-rate", type=int, metavar="HZ")
    group.add_argument("--fmin", type=float, metavar="HZ", help="lower band limit")
    group.add_argument("--fmax", type=float, metavar="HZ", help="upper band limit")
    group.add_argument("--window-seconds", type=float, metavar="S")
    group.add_argument("--window-hop-seconds", type=float, metavar="S")


def _given_windows(windows, args):
    """`windows` with the `--window-seconds` and `--window-hop-seconds` given."""
    return windows.replace(**{name: value for name, value in (
        ("window_seconds", args.window_seconds), ("hop_seconds", args.window_hop_seconds))
        if value is not None})


def _pipeline_config(args):
    from discovery.config import (FEATURE_PRESETS, ModelConfig, PipelineConfig,
                                  SegmentConfig, SilenceConfig, TrainConfig, WindowConfig)
    from discovery.errors import ParameterError

    if args.config is not None:
        try:
            config = PipelineConfig.from_json(Path(args.config).read_text())
        except OSError as error:
            raise ParameterError(f"{args.config}: cannot read config ({error.strerror})."
                                 ) from None
        features, windows = config.features, config.windows
    else:
        if args.features not in FEATURE_PRESETS:
            raise ParameterError(f"Invalid value for `--features`: expected one of "
                                 f"{sorted(FEATURE_PRESETS)}, received {args.features!r}.")
        config = None
        features, windows = FEATURE_PRESETS[args.features], WindowConfig()
    features = features.replace(**{name: value for name, value in (
        ("sample_rate", args.sample_rate), ("fmin", args.fmin), ("fmax", args.fmax))
        if value is not None})
    return PipelineConfig(features=features, windows=_given_windows(windows, args),
                          model=config.model if config else ModelConfig(),
                          silence=config.silence if config else SilenceConfig(),
                          segments=config.segments if config else SegmentConfig(),
                          training=config.training if config else TrainConfig())


def _report_failures(failures) -> int:
    for failure in failures:
        print(f"discovery: error: {failure.message}", file=sys.stderr)
    return EXIT_USAGE if failures else 0


def _command_line() -> str:
    return "discovery " + " ".join(sys.argv[1:])


def _run_features(args) -> int:
    from discovery.pipeline import write_features

    written, failures = write_features(args.inputs, args.out, _pipeline_config(args),
                                       overwrite=args.overwrite, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {len(written)} feature file(s) to {args.out}", file=sys.stderr)
    return _report_failures(failures)


def _run_train(args) -> int:
    from discovery import training
    from discovery.nn import get_preset

    config = get_preset(args.preset)
    config = config.replace(training=config.training.replace(**{
        name: value for name, value in (("epochs", args.epochs),
                                        ("batch_size", args.batch_size),
                                        ("seed", args.seed), ("warp", args.warp))
        if value is not None}), windows=_given_windows(config.windows, args))
    result = training.train(args.inputs, args.out, config, progress=not args.quiet,
                            command=_command_line(), overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote the model bundle to {result.bundle_dir} in {result.seconds:.0f} s; "
              f"TensorBoard: tensorboard --logdir {Path(args.out) / 'logs'}",
              file=sys.stderr)
    return _report_failures(result.failures)


def _run_info(args) -> int:
    from discovery.bundle import Bundle
    from discovery.nn import build_vae, get_preset

    if args.model is not None:
        bundle = Bundle.load(args.model)
        model, config = bundle.model, bundle.config
    else:
        config = get_preset(args.preset)
        model = build_vae(config)
    for part in (model.encoder, model.decoder, model.silence_head):
        part.summary(print_fn=lambda line, *rest: print(line))
    print(f"encoder parameters: {model.encoder.count_params():,}")
    print(f"total parameters: {model.count_params():,}")
    print(config.to_json())
    return 0


def _run_export(args) -> int:
    from discovery.bundle import Bundle

    out = Bundle.load(args.model).export(args.out, format=args.format)
    print(f"exported {args.model} to {out} ({args.format})", file=sys.stderr)
    return 0


def _run_embed(args) -> int:
    from discovery.pipeline import write_embeddings, write_store

    if args.engine == "ray":
        out, done, failures = write_store(args.inputs, args.out, bundle=args.model,
                                          hop_seconds=args.hop_seconds,
                                          address=args.address, workers=args.workers,
                                          overwrite=args.overwrite,
                                          progress=not args.quiet)
        if not args.quiet:
            where = (f"on {done.workers} Ray worker(s) across "
                     f"{done.cluster.get('nodes', 1)} node(s)" if done.n_embedded else "")
            print(f"embedded {done.n_embedded} recording(s) {where}; {done.n_skipped} "
                  f"already in the store; wrote {out}".replace("  ", " "),
                  file=sys.stderr)
        return _report_failures(failures)
    _refuse_ray_options(args)

    windows, out, failures = write_embeddings(args.inputs, args.out, bundle=args.model,
                                              overwrite=args.overwrite,
                                              hop_seconds=args.hop_seconds,
                                              progress=not args.quiet)
    if out is not None and not args.quiet:
        print(f"wrote {len(windows)} windows of {len(windows.files)} recording(s) to {out}",
              file=sys.stderr)
    return _report_failures(failures)


def _run_run(args) -> int:
    from discovery.config import ClusterConfig
    from discovery.pipeline import run

    config = ClusterConfig(method=args.method, n_clusters=args.clusters,
                           min_cluster_size=args.min_cluster_size, reduction=args.reduction,
                           level=args.level, segment_features=args.segment_features)
    if args.engine != "ray":
        _refuse_ray_options(args)
    summary = run(args.inputs, args.out, bundle=args.model, config=config,
                  engine=args.engine, address=args.address, workers=args.workers,
                  embeddings=args.embeddings, overwrite=args.overwrite,
                  progress=not args.quiet, command=_command_line())
    if not args.quiet:
        grain = (f"{summary.n_segments} segments, " if summary.n_segments is not None
                 else "")
        print(f"found {summary.n_units} units, {summary.n_occurrences} occurrences in "
              f"{summary.n_recordings} recording(s) ({grain}{summary.n_windows} windows) in "
              f"{summary.timings['total_s']:.1f} s; open {Path(args.out) / 'report.html'}",
              file=sys.stderr)
        if summary.scores:
            print("scores against annotations: " + ", ".join(
                f"{k} {summary.scores[k]:.3f}" for k in ("nmi", "v_measure", "purity",
                                                           "coverage")), file=sys.stderr)
    return _report_failures(summary.failures)


def _refuse_ray_options(args) -> None:
    for option, value in (("--address", args.address), ("--workers", args.workers)):
        if value is not None:
            raise ParameterError(f"{option} {value}: only with --engine ray.")


def _add_engine_options(parser) -> None:
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: in this process (default); ray: on a Ray cluster "
                             "(pip install -e \".[ray]\"), writing a Parquet store "
                             "DIR/embeddings/")
    parser.add_argument("--address", metavar="ADDR",
                        help="the Ray cluster's address (HOST:PORT, or auto); default: "
                             "start a local Ray on this machine")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="Ray workers, one CPU (or GPU) each (default: all of the "
                             "cluster's)")


def _run_pairs(args) -> int:
    from discovery.pipeline import pairs

    summary = pairs(args.inputs, args.out, label_regex=args.label_regex, bundle=args.model,
                    n_pairs=args.pairs, prefix_frames=args.prefix_frames, seed=args.seed,
                    hop_seconds=args.hop_seconds, overwrite=args.overwrite,
                    progress=not args.quiet)
    if not args.quiet:
        for name in summary.results:
            for mode, scores in summary.results[name].items():
                print(f"{name:7s} {mode:11s} ROC-AUC {scores['roc_auc']:.3f}  "
                      f"KL {scores['kl']:.3f}  EER {scores['equal_error_rate']:.3f}",
                      file=sys.stderr)
        print(f"wrote {summary.out_dir / 'pairs.json'} and {summary.out_dir / 'pairs.png'}",
              file=sys.stderr)
    return _report_failures(summary.failures)


def _run_abx(args) -> int:
    from discovery.pipeline import abx

    scores, failures = abx(args.inputs, args.out, label_regex=args.label_regex,
                           speaker_regex=args.speaker_regex, bundle=args.model,
                           n_triplets=args.triplets, seed=args.seed,
                           hop_seconds=args.hop_seconds, speaker=args.speaker,
                           tokens=args.tokens, overwrite=args.overwrite,
                           progress=not args.quiet)
    counts = scores["n_triplets"]
    spans = "; tokens trimmed to their sound" if args.tokens == "sound" else ""
    print(f"ABX error (%), {counts['within']} triplets within and {counts['across']} "
          f"across speaker{spans}; lower is better")
    print(f"{'representation':16s} {'within':>7s} {'across':>7s}")
    for name, errors in scores.items():
        if name != "n_triplets":
            print(f"{name:16s} {100 * errors['within']:7.1f} {100 * errors['across']:7.1f}")
    if not args.quiet:
        print(f"wrote {Path(args.out) / 'abx.json'}", file=sys.stderr)
    return _report_failures(failures)


def _siamese_settings(args):
    from discovery.config import SiameseConfig

    return SiameseConfig(**{name: value for name, value in (
        ("epochs", getattr(args, "epochs", None)), ("seed", getattr(args, "seed", None)),
        ("cross_voice_epochs", getattr(args, "cross_voice_epochs", None)),
        ("cross_voice_rounds", getattr(args, "cross_voice_rounds", None)),
        ("warp", getattr(args, "warp", None)))
        if value is not None})


def _run_tune(args) -> int:
    from discovery.tuning import tune

    result = tune(args.inputs, args.out, bundle=args.model,
                  settings=_siamese_settings(args), progress=not args.quiet,
                  command=_command_line(), overwrite=args.overwrite)
    if not args.quiet:
        after = result.history.get("val_pair_roc_auc", [float("nan")])[-1]
        print(f"wrote the fine-tuned bundle to {result.bundle_dir} in {result.seconds:.0f} s "
              f"({len(result.mined)} mined pairs"
              + (f", {len(result.cross)} across voices" if result.cross is not None else "")
              + f"; held-out pairs' ROC-AUC "
              f"{result.pair_roc_auc_before:.3f} -> {after:.3f}); TensorBoard: "
              f"tensorboard --logdir {Path(args.out) / 'logs'}", file=sys.stderr)
    return _report_failures(result.failures)


def _run_mine(args) -> int:
    from discovery.pipeline import mine

    report, failures = mine(args.inputs, args.out, bundle=args.model,
                            label_regex=args.label_regex, speaker_regex=args.speaker_regex,
                            across_voices=args.across_voices, overwrite=args.overwrite,
                            progress=not args.quiet)
    line = (f"mined {report['n_pairs']} pairs among {report['n_segments']} segments of "
            f"{report['n_recordings']} recordings ({report['n_aligned_frames']} aligned "
            "frames)")
    if report["n_voices"] is not None:
        line += f" across {report['n_voices']} voices"
    if report.get("precision") is not None:
        line += f"; precision {report['precision']:.3f}"
    if report.get("across_speaker_share") is not None:
        line += f"; across speaker {report['across_speaker_share']:.3f}"
        if report.get("across_speaker_precision") is not None:
            line += f" (precision {report['across_speaker_precision']:.3f})"
    print(line)
    if not args.quiet:
        print(f"wrote {Path(args.out) / 'mined_pairs.npz'} and "
              f"{Path(args.out) / 'mining.json'}", file=sys.stderr)
    return _report_failures(failures)


MODEL_HELP = ("a model bundle folder, or a shipped bundle by name: default (speech and "
              "sounds up to 8 kHz; the default) or birdsong (32 kHz songbirds)")
HOP_HELP = ("seconds between the model's windows, a whole number of feature hops "
            "(default: the model's own)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="discovery",
                     description="Find recurring sound units in recordings, without labels.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    features = commands.add_parser(
        "features", help="compute features, windows and silence targets per recording",
        description="Write one .npz per recording: normalised features (frames x "
                    "features), window times and silence targets.")
    features.add_argument("inputs", nargs="+", metavar="INPUT",
                          help="audio files or folders (searched recursively)")
    features.add_argument("--out", required=True, type=Path, metavar="DIR")
    features.add_argument("--overwrite", action="store_true",
                          help="replace feature files that already exist")
    features.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_feature_options(features)
    features.set_defaults(run=_run_features)

    train = commands.add_parser(
        "train", help="train a model on recordings and write a model bundle",
        description="Train the VAE on recordings (annotations beside them give silence "
                    "targets) and write DIR/model.keras, config.json, MODEL_CARD.md, "
                    "TensorBoard logs under DIR/logs. Run it again on the same DIR to "
                    "resume an interrupted run; a DIR that holds a finished bundle is "
                    "refused unless --overwrite.")
    train.add_argument("inputs", nargs="+", metavar="INPUT")
    train.add_argument("--out", required=True, type=Path, metavar="DIR")
    train.add_argument("--preset", default="default",
                       help="model and feature settings: default, birdsong, seed-v4, "
                            "tiny (default: %(default)s)")
    train.add_argument("--epochs", type=int, metavar="N")
    train.add_argument("--batch-size", type=int, metavar="N")
    train.add_argument("--seed", type=int, metavar="N", help="makes the run deterministic")
    train.add_argument("--window-seconds", type=float, metavar="S",
                       help="the model's window length (default: the preset's)")
    train.add_argument("--window-hop-seconds", type=float, metavar="S",
                       help="seconds between training windows, and the model's own hop "
                            "when it embeds (default: the preset's)")
    train.add_argument("--warp", type=float, metavar="F",
                       help="largest frequency warp of each training window, in [0, "
                            "0.5]: voices the data does not hold (default: the preset's)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a finished model bundle in DIR (and its logs and "
                            "training state); DIR must hold nothing else")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(run=_run_train)

    tune = commands.add_parser(
        "tune", help="fine-tune a model bundle on sound pairs mined without labels",
        description="The Siamese stage: cut the recordings into segments, match "
                    "segments of different recordings by DTW (no labels), and fine-tune "
                    "the model so that the windows each match aligns embed alike "
                    "(InfoNCE), keeping its VAE loss and silence head; then mine again, "
                    "with the tuned encoder and only between recordings of different "
                    "voices, and train on both sets of pairs. Writes a new "
                    "bundle into DIR, TensorBoard logs under DIR/logs (each loss term, "
                    "the held-out pairs' ROC-AUC per epoch) and the mined pairs under "
                    "DIR/checkpoints. Run it again on the same DIR, with the same "
                    "inputs, model and settings, to resume an interrupted run.")
    tune.add_argument("inputs", nargs="+", metavar="INPUT")
    tune.add_argument("--out", required=True, type=Path, metavar="DIR")
    tune.add_argument("--model", metavar="DIR|NAME",
                      help="the bundle to start from (default: the shipped default); "
                           "it is not changed")
    tune.add_argument("--epochs", type=int, metavar="N",
                      help="epochs on the pairs mined on cepstra (default: 9)")
    tune.add_argument("--cross-voice-epochs", type=int, metavar="N",
                      help="epochs of the second round, on pairs mined again across "
                           "voices with the tuned encoder (default: 3; 0 skips it)")
    tune.add_argument("--cross-voice-rounds", type=int, metavar="N",
                      help="rounds of mining across voices, each with the encoder "
                           "tuned so far and followed by --cross-voice-epochs epochs "
                           "(default: 1); the model each round but the last ended with "
                           "is kept under DIR/checkpoints/round-N")
    tune.add_argument("--warp", type=float, metavar="F",
                      help="largest frequency warp of a pair's second window, a stand-in "
                           "for another voice: its mel axis is stretched or squeezed by "
                           "a factor in [1 - F, 1 + F] (default: 0.1; 0 turns it off)")
    tune.add_argument("--seed", type=int, metavar="N")
    tune.add_argument("--overwrite", action="store_true",
                      help="replace a model bundle in DIR (and its logs)")
    tune.add_argument("--quiet", action="store_true")
    tune.set_defaults(run=_run_tune)

    mine = commands.add_parser(
        "mine", help="the sound pairs `tune` would learn from, and their precision",
        description="Match segments of different recordings by DTW, as `tune` does, "
                    "and write DIR/mined_pairs.npz and DIR/mining.json. With "
                    "--label-regex (and --speaker-regex) the file names score the pairs: "
                    "the share of pairs of one label (and across speakers); the labels "
                    "never choose a pair. --across-voices mines as tune's second round "
                    "does.")
    mine.add_argument("inputs", nargs="+", metavar="INPUT")
    mine.add_argument("--out", required=True, type=Path, metavar="DIR")
    mine.add_argument("--model", metavar="DIR|NAME", help=MODEL_HELP)
    mine.add_argument("--label-regex", metavar="REGEX",
                      help="a label from each file name, to score the pairs")
    mine.add_argument("--speaker-regex", metavar="REGEX",
                      help="a speaker from each file name, to count pairs across speakers")
    mine.add_argument("--across-voices", action="store_true",
                      help="mine as tune's second round does: on the model's frame "
                           "embeddings, only between recordings of different voices")
    mine.add_argument("--overwrite", action="store_true")
    mine.add_argument("--quiet", action="store_true")
    mine.set_defaults(run=_run_mine)

    info = commands.add_parser("info", help="print a model's layers and settings")
    source = info.add_mutually_exclusive_group()
    source.add_argument("--model", metavar="DIR|NAME",
                        help="a model bundle, or a shipped one by name (default, birdsong)")
    source.add_argument("--preset", default="default", help="a preset (default: %(default)s)")
    info.set_defaults(run=_run_info)

    export = commands.add_parser(
        "export", help="export a model bundle as a TensorFlow SavedModel or .keras file",
        description="SavedModel: a serving signature embed(windows) -> {z_mean, silence}, "
                    "loadable with tf.saved_model.load without discovery installed.")
    export.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    export.add_argument("--out", required=True, type=Path, metavar="PATH")
    export.add_argument("--format", choices=("savedmodel", "keras"), default="savedmodel")
    export.set_defaults(run=_run_export)

    embed = commands.add_parser(
        "embed", help="embed every window of the recordings with a model bundle",
        description="Write DIR/embeddings.npz: one row per window with file, start_s, "
                    "end_s, embedding (z_mean) and silence (probability).")
    embed.add_argument("inputs", nargs="+", metavar="INPUT")
    embed.add_argument("--out", required=True, type=Path, metavar="DIR")
    embed.add_argument("--model", metavar="DIR|NAME", help=MODEL_HELP)
    embed.add_argument("--hop-seconds", type=float, metavar="S",
                       help="seconds between windows, a whole number of feature hops "
                            "(e.g. 0.01 or 0.02 for DTW alignment; default: the "
                            "model's own); the model is not retrained")
    embed.add_argument("--overwrite", action="store_true",
                       help="replace an existing DIR/embeddings.npz (with --engine ray: "
                            "start DIR/embeddings/ again; without it a rerun adds only "
                            "the recordings not yet there)")
    _add_engine_options(embed)
    embed.add_argument("--quiet", action="store_true")
    embed.set_defaults(run=_run_embed)

    run = commands.add_parser(
        "run", help="the main job: find the units in recordings and write a report",
        description="Embed every window with a model bundle, cut the recordings into "
                    "segments (sounds between silences: syllables, calls, words), "
                    "cluster the segments (or the windows) into units, and write "
                    "units.csv, embeddings.npz, segments.npz, report.html, Raven and "
                    "Audacity tables per recording, run.json, and scores.json where an "
                    "annotation (same name, .csv) sits beside a recording.")
    run.add_argument("inputs", nargs="*", metavar="INPUT")
    run.add_argument("--out", required=True, type=Path, metavar="DIR")
    run.add_argument("--embeddings", type=Path, metavar="STORE",
                     help="cluster the windows of an embedding store (DIR/embeddings "
                          "from `discovery embed --engine ray`) instead of embedding "
                          "recordings")
    run.add_argument("--model", metavar="DIR|NAME", help=MODEL_HELP)
    run.add_argument("--method", choices=("hdbscan", "kmeans"), default="hdbscan",
                     help="density-based discovery (finds the number of units) or "
                          "k-means (default: %(default)s)")
    run.add_argument("--level", choices=("segments", "windows"), default="segments",
                     help="a unit per segment (syllable, call, word) or per window, "
                          "runs of windows merged (default: %(default)s)")
    run.add_argument("--segment-features", choices=("image", "model"), default="image",
                     help="segments only: each segment's spectrogram resized to the "
                          "model's window (image) or the model's embedding of the "
                          "windows at its centre (model) (default: %(default)s)")
    run.add_argument("--reduction", choices=("umap", "pca"), default="umap",
                     help="reduction before clustering: to 10 dimensions for windows, "
                          "2 for segments (default: %(default)s)")
    run.add_argument("--clusters", type=int, metavar="K",
                     help="k for k-means (default: chosen by silhouette)")
    run.add_argument("--min-cluster-size", type=int, metavar="N",
                     help="HDBSCAN's smallest unit, in windows or segments (default: "
                          "from their number)")
    _add_engine_options(run)
    run.add_argument("--overwrite", action="store_true",
                     help="replace the outputs of an earlier `discovery run` in DIR (a "
                          "folder holding anything else is refused)")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(run=_run_run)

    abx = commands.add_parser(
        "abx", help="ABX discriminability of log-mel, MFCC and the model's embeddings",
        description="Each file is one token (a word, a syllable); its label and speaker "
                    "come from its name. Seeded triplets A, B, X (A and X one label, B "
                    "another), within speaker and across speaker (X from another "
                    "speaker than A and B), scored by DTW over L2-normalised frames "
                    "divided by the path length. Writes abx.json and prints a table.")
    abx.add_argument("inputs", nargs="+", metavar="INPUT")
    abx.add_argument("--label-regex", required=True, metavar="REGEX",
                     help="the label from each file name: the first group, else the match")
    abx.add_argument("--speaker-regex", required=True, metavar="REGEX",
                     help="the speaker from each file name, likewise")
    abx.add_argument("--out", required=True, type=Path, metavar="DIR")
    abx.add_argument("--model", metavar="DIR|NAME", help=MODEL_HELP)
    abx.add_argument("--triplets", type=int, default=2000, metavar="N",
                     help="triplets of each kind (default: %(default)s)")
    abx.add_argument("--seed", type=int, default=0)
    abx.add_argument("--hop-seconds", type=float, metavar="S",
                     help=HOP_HELP)
    abx.add_argument("--speaker", metavar="NAME",
                     help="only triplets whose A and B are this speaker's (one the model "
                          "never saw); X is theirs within speaker, another's across")
    abx.add_argument("--tokens", choices=("whole", "sound"), default="whole",
                     help="whole: each file (default); sound: each file from its first "
                          "segment's start to its last one's end (the energy-based "
                          "segments `run` cuts), the same frames for every "
                          "representation")
    abx.add_argument("--overwrite", action="store_true", help="replace DIR/abx.json")
    abx.add_argument("--quiet", action="store_true")
    abx.set_defaults(run=_run_abx)

    pairs = commands.add_parser(
        "pairs", help="Siamese-pair DTW evaluation of features and embeddings",
        description="Label files by name, draw balanced duplicate and non-duplicate "
                    "pairs, and compare DTW distance distributions on raw features and "
                    "on windowed embeddings. Writes pairs.json and pairs.png.")
    pairs.add_argument("inputs", nargs="+", metavar="INPUT")
    pairs.add_argument("--label-regex", required=True, metavar="REGEX",
                       help="label from the file name: the first group, e.g. '^(\\d)_'")
    pairs.add_argument("--out", required=True, type=Path, metavar="DIR")
    pairs.add_argument("--model", metavar="DIR|NAME", help=MODEL_HELP)
    pairs.add_argument("--pairs", type=int, default=1000, metavar="N",
                       help="pairs of each kind (default: %(default)s)")
    pairs.add_argument("--prefix-frames", type=int, metavar="K",
                       help="also score the first K frames with an open end")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--hop-seconds", type=float, metavar="S",
                       help=HOP_HELP)
    pairs.add_argument("--overwrite", action="store_true",
                       help="replace an existing pairs.json and pairs.png in DIR")
    pairs.add_argument("--quiet", action="store_true")
    pairs.set_defaults(run=_run_pairs)
    return parser


def _quiet_libraries() -> None:
    """Keep TensorFlow's and absl's C++ log lines off the terminal (set
    TF_CPP_MIN_LOG_LEVEL to see them); must run before TensorFlow is imported, since
    its C++ logging reads the variable once, when the library loads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the process's stderr closed for the import alone.

    TensorFlow 2.21 writes its oneDNN notice (and absl's "before InitializeLog" line)
    from C++ before it reads TF_CPP_MIN_LOG_LEVEL, so the variable cannot stop them.
    A failed import raises as usual once stderr is back.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                importlib.import_module("tensorflow")
            except ImportError:
                pass  # the command's own import reports it, with stderr back
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # A warning for the user (a truncated file) is one line, like an error.
    print(f"discovery: warning: {message}", file=sys.stderr)


def _terminate(signum, frame):
    # SIGTERM (kill, a job scheduler's time limit) cleans up exactly like Ctrl-C.
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _import_tensorflow_quietly()
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return args.run(args)
    except DiscoveryError as error:
        print(f"discovery: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        # A file the user named cannot be read or written (permissions, a full disk):
        # one line, not a traceback.
        if error.filename is None:
            raise
        print(f"discovery: error: {error.filename}: {error.strerror or error}",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("discovery: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
