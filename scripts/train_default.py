"""Train the shipped models, `models/default/` and `models/birdsong/`, reproducibly.

default  : the FSDD subset (2,000 spoken digits, 4 speakers) and two of the three
           annotated long recordings in ../shared/data, whose annotations give the
           silence targets; the third recording, rec_03, is held out to score the
           silence detector on audio arrangements it never saw.
birdsong : the eight Bengalese finch songs in ../shared/data/bfsongrepo, copied without
           their annotations, so training sees no label and no hand-made boundary:
           the silence targets are the energy-based ones. The annotations only score
           the silence detector afterwards.

Seeded; one command each:

    python scripts/train_default.py                       # writes models/default
    python scripts/train_default.py --model birdsong      # writes models/birdsong
    python scripts/train_default.py --epochs 2 --out /tmp/quick    # a quick check

Training logs and checkpoints stay in `runs/train-<model>/` (`<out>-training/` when
`--out` is given); only the bundle (`model.keras`, `config.json`, `MODEL_CARD.md`) is
copied into `--out`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
# Relative to the repository's root, so the model card names the data portably.
SHARED_RELATIVE = Path("..", "shared", "data")


def default_data(work: Path) -> tuple:
    """(training inputs, annotated recordings to score, a note on the scores)."""
    recordings = sorted((SHARED / "recordings").glob("rec_*.wav"))
    inputs = [SHARED_RELATIVE / "fsdd"] + [SHARED_RELATIVE / "recordings" / p.name
                                           for p in recordings if p.stem != "rec_03"]
    note = ("rec_01 and rec_02 were in the training data; rec_03 was held out (its "
            "utterances are FSDD files that were, in isolation, part of the training data).")
    return inputs, recordings, note


def birdsong_data(work: Path) -> tuple:
    """The finch songs without their annotations, copied under `work`."""
    songs = sorted((SHARED / "bfsongrepo").glob("*.wav"))
    unlabelled = work / "songs-without-annotations"
    unlabelled.mkdir(parents=True, exist_ok=True)
    for song in songs:
        shutil.copy2(song, unlabelled / song.name)
    note = ("Training saw the songs without their annotations (energy-based silence "
            "targets), so every figure here is a comparison with boundaries the model "
            "never saw.")
    return [unlabelled], songs, note


# Each shipped bundle is trained from the preset of its own name.
MODELS = {"default": default_data, "birdsong": birdsong_data}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="default")
    parser.add_argument("--out", type=Path, help="default: models/<model>")
    parser.add_argument("--work", type=Path,
                        help="default: runs/train-<model>, or <out>-training with --out")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = (args.out or ROOT / "models" / args.model).resolve()
    # Relative to the repository's root (the working folder below), so the model card
    # names the copied songs portably.
    if args.work:
        work = args.work.resolve()
    elif args.out:  # a trial run must not resume from, or overwrite, the real one
        work = out.with_name(out.name + "-training")
    else:
        work = Path("runs", f"train-{args.model}")
    if not SHARED.is_dir():
        print(f"{SHARED}: the shared data is needed to train the shipped models",
              file=sys.stderr)
        return 2

    from discovery import bundle, training
    from discovery.evaluate import silence_scores
    from discovery.nn import get_preset

    data = MODELS[args.model]
    config = get_preset(args.model)
    changes = {"seed": args.seed}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    config = config.replace(training=config.training.replace(**changes))
    os.chdir(ROOT)
    inputs, scored, note = data(work)
    command = "python scripts/train_default.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    # The script's own work folder: a rerun retrains from scratch, seeded.
    result = training.train(inputs, work, config, command=command.strip(), overwrite=True)
    trained = bundle.Bundle.load(work)
    scores = silence_scores(scored, model=trained.model, config=trained.config)
    card = (work / bundle.CARD_FILE).read_text()
    card += ("\n## Silence detector on the annotated recordings\n\n"
             "`silence_balanced_accuracy_windows`: balanced accuracy of P(silence) >= 0.5 "
             "per window against the annotations (a window is silence when at most 20 % of "
             "it is annotated sound), the measure of that name in a run's scores.json. "
             f"{note}\n\n| recording | silence_balanced_accuracy_windows |\n|---|---|\n")
    card += "".join(f"| {name} | {value:.4f} |\n" for name, value in scores.items())
    card += (f"\nTrained on {platform.machine()} with {os.cpu_count()} CPU cores "
             f"({platform.processor() or 'CPU'}), no GPU; Python {platform.python_version()}.\n")
    (work / bundle.CARD_FILE).write_text(card)
    out.mkdir(parents=True, exist_ok=True)
    for name in (bundle.MODEL_FILE, bundle.CONFIG_FILE, bundle.CARD_FILE):
        shutil.copy2(work / name, out / name)
    print(f"wrote {out} in {result.seconds:.0f} s; silence_balanced_accuracy_windows: "
          + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
