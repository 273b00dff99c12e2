"""Leave one speaker out: ABX on a speaker the model never heard.

For each held-out speaker of the shared FSDD subset, as a user would, with the CLI:

    discovery train <the other speakers' clips> --out W/<speaker>/vae      (stage 1)
    discovery tune  <the other speakers' clips> --model W/<speaker>/vae
                    --out W/<speaker>/tuned                                  (stage 2)
    discovery abx   ../shared/data/fsdd --speaker <speaker> --model ...     (both stages)

`abx --speaker` keeps the triplets whose A and B are the held-out speaker's: within
speaker X is theirs too, across speaker X is one of the training speakers'. Log-mel and
MFCC are scored on the same triplets in the same run. The long recordings are left out
of training: they are stitched from the same clips, the held-out speaker's included.

    python scripts/bench_abx_loso.py                       # every speaker, the default recipe
    python scripts/bench_abx_loso.py --speakers george --vae-epochs 2 --tune-epochs 1
    python scripts/bench_abx_loso.py --score-only --tokens sound   # the same bundles again
    python scripts/bench_abx_loso.py --window-seconds 0.16 --window-hop-seconds 0.04 --work W

Two stage-2 recipes compared on the same fold VAEs (stage 1 alone moves a fold's
across-speaker error by several points): train stage 1 once, copy each W/<speaker>/vae
to W2/<speaker>/vae, and tune each copy with its recipe:

    python scripts/bench_abx_loso.py --stage1-only --work W
    python scripts/bench_abx_loso.py --reuse-stage1 --work W
    python scripts/bench_abx_loso.py --reuse-stage1 --warp 0.2 --work W2

Prints a table and writes W/loso.json (W/loso-sound.json with --tokens sound; W:
--work, default runs/abx-loso). A run that
was killed resumes where it stopped when started again: the interrupted `train` or
`tune` goes on from its last finished epoch (a fold's stage 1 is kept while its stage 2
is cut); finished bundles are trained again.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FSDD = ROOT.parent / "shared" / "data" / "fsdd"
LABEL, SPEAKER = r"^(\d)_", r"^\d_([a-z]+)_"


def _discovery(*args) -> float:
    """Run one discovery command; its seconds."""
    started = time.perf_counter()
    # The command a user runs: the entry point installed beside this Python.
    subprocess.run([str(Path(sys.executable).parent / "discovery"), *map(str, args)],
                   check=True)
    return time.perf_counter() - started


def _fresh(folder: Path) -> tuple:
    """`--overwrite` where `folder` holds a finished bundle; none where it holds a run
    that was killed, so that it resumes (`train` and `tune` refuse one begun with
    other settings)."""
    return ("--overwrite",) if (folder / "model.keras").is_file() else ()


def _abx(model: Path, speaker: str, out: Path, triplets: int, tokens: str) -> dict:
    if tokens != "whole":
        out = out.with_name(f"{out.name}-{tokens}")
    _discovery("abx", FSDD, "--label-regex", LABEL, "--speaker-regex", SPEAKER, "--speaker",
               speaker, "--model", model, "--out", out, "--triplets", triplets,
               "--tokens", tokens, "--overwrite", "--quiet")
    return json.loads((out / "abx.json").read_text())["results"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", nargs="*", help="default: every speaker")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "abx-loso")
    parser.add_argument("--vae-epochs", type=int, default=None,
                        help="stage 1 epochs (default: the preset's)")
    parser.add_argument("--window-seconds", type=float, default=None,
                        help="stage 1 `train --window-seconds` (default: the preset's)")
    parser.add_argument("--window-hop-seconds", type=float, default=None,
                        help="stage 1 `train --window-hop-seconds` (default: the preset's)")
    parser.add_argument("--vae-warp", type=float, default=None,
                        help="stage 1 `train --warp` (default: the preset's, none)")
    parser.add_argument("--tune-epochs", type=int, default=None,
                        help="stage 2 epochs (default: the Siamese settings')")
    parser.add_argument("--cross-voice-rounds", type=int, default=None,
                        help="stage 2 rounds mined across voices (default: the Siamese "
                             "settings'); every round's model is scored")
    parser.add_argument("--warp", type=float, default=None,
                        help="stage 2 `tune --warp` (default: the Siamese settings')")
    parser.add_argument("--triplets", type=int, default=2000)
    parser.add_argument("--stage1-only", action="store_true",
                        help="train the stage-1 models and stop")
    parser.add_argument("--reuse-stage1", action="store_true",
                        help="keep a stage-1 bundle already in the work folder")
    parser.add_argument("--score-only", action="store_true",
                        help="train nothing: score the bundles already in the work folder")
    parser.add_argument("--tokens", choices=("whole", "sound"), default="whole",
                        help="abx --tokens: whole files (default) or their sound spans")
    args = parser.parse_args(argv)
    from discovery.tuning import interrupted

    if not FSDD.is_dir():
        print(f"{FSDD} is not present", file=sys.stderr)
        return 2
    clips = sorted(FSDD.glob("*.wav"))
    speakers = sorted({re.match(SPEAKER, p.name).group(1) for p in clips})
    chosen = args.speakers or speakers
    table = {}
    for speaker in chosen:
        work = args.work / speaker
        train_dir = work / "clips"
        train_dir.mkdir(parents=True, exist_ok=True)
        for clip in clips:  # links, not copies: the other speakers' clips only
            if re.match(SPEAKER, clip.name).group(1) != speaker:
                link = train_dir / clip.name
                if not link.exists():
                    link.symlink_to(clip)
        seconds = {}
        stage1 = [] if args.vae_epochs is None else ["--epochs", args.vae_epochs]
        for option, value in (("--window-seconds", args.window_seconds),
                              ("--window-hop-seconds", args.window_hop_seconds),
                              ("--warp", args.vae_warp)):
            stage1 += [] if value is None else [option, value]
        if args.score_only:
            seconds = json.loads((work / "seconds.json").read_text()) if (
                work / "seconds.json").is_file() else {}
        elif (work / "vae" / "model.keras").is_file() and (
                args.reuse_stage1 or interrupted(work / "tuned")):
            # Kept when asked, and when its stage 2 was cut: that resumes on it.
            seconds["stage 1"] = json.loads((work / "vae-seconds.json").read_text())
        else:
            seconds["stage 1"] = _discovery("train", train_dir, "--out", work / "vae",
                                            *_fresh(work / "vae"), "--quiet", *stage1)
            (work / "vae-seconds.json").write_text(json.dumps(seconds["stage 1"]))
        if args.stage1_only:
            continue
        options = [] if args.tune_epochs is None else ["--epochs", args.tune_epochs]
        if args.cross_voice_rounds is not None:
            options += ["--cross-voice-rounds", args.cross_voice_rounds]
        if args.warp is not None:
            options += ["--warp", args.warp]
        if not args.score_only:
            seconds["stage 2"] = _discovery("tune", train_dir, "--model", work / "vae",
                                            "--out", work / "tuned",
                                            *_fresh(work / "tuned"), "--quiet", *options)
            (work / "seconds.json").write_text(json.dumps(seconds))
        before = _abx(work / "vae", speaker, work / "abx-vae", args.triplets, args.tokens)
        table[speaker] = {"log-mel": before["log-mel"], "mfcc": before["mfcc"],
                          "stage 1": before["model"]}
        # The model each round of stage 2 ended with, the last one being the bundle.
        for checkpoint in sorted((work / "tuned" / "checkpoints").glob("round-*"),
                                 key=lambda folder: int(folder.name.split("-")[1])):
            table[speaker][f"stage 2 {checkpoint.name}"] = _abx(
                checkpoint, speaker, work / f"abx-{checkpoint.name}", args.triplets,
                args.tokens)["model"]
        after = _abx(work / "tuned", speaker, work / "abx-tuned", args.triplets, args.tokens)
        table[speaker].update({"stage 2": after["model"], "n_triplets": before["n_triplets"],
                               "seconds": seconds})
        name = "loso.json" if args.tokens == "whole" else f"loso-{args.tokens}.json"
        (args.work / name).write_text(json.dumps(table, indent=2))
        print(f"{speaker}: done in {sum(seconds.values()):.0f} s of training", flush=True)
    rows = [name for name in next(iter(table.values()), {})
            if name not in ("n_triplets", "seconds")]
    print("ABX error (%), held-out speaker; within / across")
    print(f"{'speaker':10s}" + "".join(f"{name:>16s}" for name in rows))
    for speaker, scores in table.items():
        print(f"{speaker:10s}" + "".join(
            f"{100 * scores[n]['within']:8.1f}{100 * scores[n]['across']:8.1f}" for n in rows))
    if len(table) > 1:
        print(f"{'mean':10s}" + "".join(
            f"{100 * sum(s[n]['within'] for s in table.values()) / len(table):8.1f}"
            f"{100 * sum(s[n]['across'] for s in table.values()) / len(table):8.1f}"
            for n in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
