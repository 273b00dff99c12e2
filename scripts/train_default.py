"""Train the shipped default model, `models/default/`, reproducibly.

Data: the FSDD subset (2,000 spoken digits, 4 speakers) and two of the three annotated
long recordings from ../shared/data; the third recording, rec_03, is held out to score
the silence detector on audio arrangements it never saw. Seeded; one command:

    python scripts/train_default.py                  # writes models/default
    python scripts/train_default.py --epochs 2 --out /tmp/quick    # a quick check

Training logs and checkpoints stay in `runs/train-default/`; only the bundle
(`model.keras`, `config.json`, `MODEL_CARD.md`) is copied into `--out`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def silence_scores(model, paths) -> dict:
    """Balanced accuracy of the model's silence detector per annotated recording."""
    from discovery.dataset import silence_targets
    from discovery.recording import analyse

    config = model.pipeline_config
    scores, truths, guesses = {}, [], []
    for path in paths:
        result = analyse(path, config)
        truth, _ = silence_targets(path, result, config)
        _, silence = model.embed(result.windows.values)
        guess = silence >= 0.5
        scores[Path(path).name] = balanced_accuracy_score(truth.astype(bool), guess)
        truths.append(truth.astype(bool))
        guesses.append(guess)
    scores["all"] = balanced_accuracy_score(np.concatenate(truths), np.concatenate(guesses))
    return scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "train-default")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"{SHARED}: the shared data is needed to train the default model",
              file=sys.stderr)
        return 2

    from discovery import bundle, training
    from discovery.nn import get_preset

    config = get_preset("default")
    changes = {"seed": args.seed}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    config = config.replace(training=config.training.replace(**changes))
    recordings = sorted((SHARED / "recordings").glob("rec_*.wav"))
    held_out = [p for p in recordings if p.stem == "rec_03"]
    # Relative to the repository's root, so the model card names them portably.
    inputs = [Path("..", "shared", "data", "fsdd")] + [
        Path("..", "shared", "data", "recordings", p.name)
        for p in recordings if p not in held_out]
    os.chdir(ROOT)
    command = "python scripts/train_default.py " + " ".join(argv or sys.argv[1:])
    result = training.train(inputs, args.work, config, command=command.strip())

    model = bundle.load_model(args.work)
    scores = silence_scores(model, recordings)
    card = (args.work / bundle.CARD_FILE).read_text()
    card += ("\n## Silence detector on the annotated recordings\n\n"
             "Balanced accuracy of P(silence) >= 0.5 per window against the annotations "
             "(a window is silence when at most 20 % of it is annotated speech). rec_01 "
             "and rec_02 were in the training data; rec_03 was held out (its utterances "
             "are FSDD files that were, in isolation, part of the training data).\n\n"
             "| recording | balanced accuracy |\n|---|---|\n")
    card += "".join(f"| {name} | {value:.4f} |\n" for name, value in scores.items())
    card += (f"\nTrained on {platform.machine()} with {os.cpu_count()} CPU cores "
             f"({platform.processor() or 'CPU'}), no GPU; Python {platform.python_version()}.\n")
    (args.work / bundle.CARD_FILE).write_text(card)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (bundle.MODEL_FILE, bundle.CONFIG_FILE, bundle.CARD_FILE):
        shutil.copy2(args.work / name, args.out / name)
    print(f"wrote {args.out} in {result.seconds:.0f} s; silence balanced accuracy: "
          + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
