"""Command line: `discovery SUBCOMMAND ...`. Each subcommand builds configs and calls one
function of the package; errors a user can cause print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from discovery import __version__
from discovery.errors import DiscoveryError

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


def _pipeline_config(args) -> "PipelineConfig":
    from discovery.config import (FEATURE_PRESETS, ModelConfig, PipelineConfig,
                                  SilenceConfig, TrainConfig, WindowConfig, pipeline_for)
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
    windows = windows.replace(**{name: value for name, value in (
        ("window_seconds", args.window_seconds), ("hop_seconds", args.window_hop_seconds))
        if value is not None})
    model = (config.model if config else ModelConfig()).replace(
        **pipeline_for(features, windows))
    return PipelineConfig(features=features, windows=windows, model=model,
                          silence=config.silence if config else SilenceConfig(),
                          training=config.training if config else TrainConfig())


def _report_failures(failures) -> int:
    for failure in failures:
        print(f"discovery: error: {failure.message}", file=sys.stderr)
    return EXIT_USAGE if failures else 0


def _run_features(args) -> int:
    from discovery import audio, files, recording

    config = _pipeline_config(args)
    paths = audio.find_audio_files(args.inputs)
    outputs = dict(zip(paths, files.output_paths(paths, args.out, ".npz")))
    config_json = config.to_json()

    def work(path: Path):
        result = recording.analyse(path, config)
        arrays = result.to_arrays()
        arrays["config"] = config_json
        files.save_npz(outputs[path], arrays)
        return outputs[path]

    results, failures = files.for_each_file(paths, work, description="features",
                                            progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {len(results)} feature file(s) to {args.out}", file=sys.stderr)
    return _report_failures(failures)


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
    features.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_feature_options(features)
    features.set_defaults(run=_run_features)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args)
    except DiscoveryError as error:
        print(f"discovery: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("discovery: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
