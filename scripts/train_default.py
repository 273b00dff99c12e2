"""Train the shipped models, `models/default/` and `models/birdsong/`, reproducibly.

default  : stage 1, the VAE: the FSDD subset (2,000 spoken digits, 4 speakers) and two
           of the three annotated long recordings in ../shared/data, whose
           annotations give the silence targets; the third recording, rec_03, is
           held out to score the silence detector on audio arrangements it never
           saw. Stage 2, `discovery tune`: the Siamese stage on the FSDD clips, pairs
           mined without labels, then mined again across voices with the tuned
           encoder (the long recordings are left out: they are copies of the clips,
           and a copy is no pair worth learning from).
birdsong : the eight Bengalese finch songs in ../shared/data/bfsongrepo, copied without
           their annotations, so training sees no label and no hand-made boundary:
           the silence targets are the energy-based ones. The annotations only score
           the silence detector afterwards.

Seeded; one command each:

    python scripts/train_default.py                       # writes models/default
    python scripts/train_default.py --model birdsong      # writes models/birdsong
    python scripts/train_default.py --epochs 2 --tune-epochs 1 --cross-voice-epochs 1 --out /tmp/quick
    python scripts/train_default.py --stage1 DIR     # stage 2 only, from a stage-1 bundle

Training logs and checkpoints stay in `runs/train-<model>/` (`<out>-training/` when
`--out` is given); only the bundle (`model.keras`, `config.json`, `MODEL_CARD.md`) is
copied into `--out`. Run again after a kill, the stage that was cut resumes at its last
finished epoch (stage 1 kept when stage 2 was cut); a finished run is trained again
from scratch.
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


def _finished(folder: Path) -> bool:
    """Whether `folder` holds a finished bundle (trained again from scratch); a killed
    run's folder resumes instead."""
    return (folder / "model.keras").is_file()


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


def abx_section(stage1: Path, final: Path, work: Path) -> str:
    """The card's ABX table: both stages beside log-mel and MFCC on the same triplets."""
    from discovery.pipeline import abx

    results = {}
    for name, model in (("stage 1 (VAE)", stage1), ("this model", final)):
        results[name], _ = abx([SHARED_RELATIVE / "fsdd"], work / f"abx-{model.name}",
                               label_regex=r"^(\d)_", speaker_regex=r"^\d_([a-z]+)_",
                               bundle=model, overwrite=True, progress=False)
    rows = [("log-mel", results["this model"]["log-mel"]),
            ("MFCC with deltas", results["this model"]["mfcc"])]
    rows += [(name, result["model"]) for name, result in results.items()]
    counts = results["this model"]["n_triplets"]
    text = ("\n## ABX error on the shared FSDD\n\n"
            "`discovery abx ../shared/data/fsdd --label-regex '^(\\d)_' --speaker-regex "
            f"'^\\d_([a-z]+)_'`: {counts['within']} triplets within and {counts['across']} "
            "across speaker, seed 0, DTW over L2-normalised frames divided by the path "
            "length; lower is better. These speakers were in the training data; "
            "docs/benchmarks.md holds the leave-one-speaker-out figures.\n\n"
            "| representation | within speaker (%) | across speaker (%) |\n|---|---|---|\n")
    return text + "".join(f"| {name} | {100 * r['within']:.1f} | {100 * r['across']:.1f} |\n"
                          for name, r in rows)


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
    parser.add_argument("--tune-epochs", type=int, default=None,
                        help="default model: epochs of the Siamese stage")
    parser.add_argument("--cross-voice-epochs", type=int, default=None,
                        help="default model: epochs of the Siamese stage's second round")
    parser.add_argument("--cross-voice-rounds", type=int, default=None,
                        help="default model: rounds mined across voices")
    parser.add_argument("--stage1", type=Path,
                        help="default model: tune this stage-1 bundle instead of training one")
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
    seconds = 0.0
    from discovery.tuning import interrupted

    tuned = work.with_name(work.name + "-tuned")
    if args.stage1 is None and not (args.model == "default" and _finished(work)
                                    and interrupted(tuned)):
        # The script's own work folder: a rerun after a finished run retrains from
        # scratch, seeded; after a killed one it resumes at the last finished epoch.
        # A finished stage 1 whose stage 2 was cut is kept, and stage 2 resumes.
        seconds += training.train(inputs, work, config, command=command.strip(),
                                  overwrite=_finished(work)).seconds
    stage1 = args.stage1.resolve() if args.stage1 else work
    final = stage1
    if args.model == "default":
        from discovery.config import SiameseConfig
        from discovery.tuning import tune

        settings = SiameseConfig(seed=args.seed)
        if args.tune_epochs is not None:
            settings = settings.replace(epochs=args.tune_epochs)
        if args.cross_voice_epochs is not None:
            settings = settings.replace(cross_voice_epochs=args.cross_voice_epochs)
        if args.cross_voice_rounds is not None:
            settings = settings.replace(cross_voice_rounds=args.cross_voice_rounds)
        final = tuned
        seconds += tune([SHARED_RELATIVE / "fsdd"], final, bundle=stage1, settings=settings,
                        command=command.strip(), overwrite=_finished(final)).seconds
    trained = bundle.Bundle.load(final)
    scores = silence_scores(scored, model=trained.model, config=trained.config)
    work = final
    card = (work / bundle.CARD_FILE).read_text()
    # A stage-1 card written by this script carries its own silence and machine notes;
    # the final card gets them once, for the final model.
    if "\n## Silence detector" in card and "\n## Siamese stage" in card:
        card = (card[:card.index("\n## Silence detector")]
                + card[card.index("\n## Siamese stage"):])
    card += ("\n## Silence detector on the annotated recordings\n\n"
             "`silence_balanced_accuracy_windows`: balanced accuracy of P(silence) >= 0.5 "
             "per window against the annotations (a window is silence when at most 20 % of "
             "it is annotated sound), the measure of that name in a run's scores.json. "
             f"{note}\n\n| recording | silence_balanced_accuracy_windows |\n|---|---|\n")
    card += "".join(f"| {name} | {value:.4f} |\n" for name, value in scores.items())
    if args.model == "default":
        card += abx_section(stage1, final, final.with_name(final.name + "-abx"))
    card += (f"\nTrained on {platform.machine()} with {os.cpu_count()} CPU cores "
             f"({platform.processor() or 'CPU'}), no GPU; Python {platform.python_version()}.\n")
    (work / bundle.CARD_FILE).write_text(card)
    out.mkdir(parents=True, exist_ok=True)
    for name in (bundle.MODEL_FILE, bundle.CONFIG_FILE, bundle.CARD_FILE):
        shutil.copy2(work / name, out / name)
    print(f"wrote {out} in {seconds:.0f} s; silence_balanced_accuracy_windows: "
          + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
