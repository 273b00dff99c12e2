"""Score the energy-based silence targets against annotated recordings.

For each recording with an annotation beside it, every frame (and every window) is
called sound or silence by `discovery.silence`, and compared with the annotation:
time inside a labelled interval is sound, everything else silence. Prints balanced
accuracy per recording and over all frames.

    python scripts/score_silence.py ../shared/data/recordings
    python scripts/score_silence.py ../shared/data/bfsongrepo --sample-rate 32000 --fmin 500 --fmax 10000
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from discovery.frontend import annotations, audio, recording
from discovery.config import FeatureConfig, PipelineConfig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--fmin", type=float, default=0.0)
    parser.add_argument("--fmax", type=float, default=None)
    args = parser.parse_args(argv)

    features = FeatureConfig(sample_rate=args.sample_rate, fmin=args.fmin, fmax=args.fmax)
    config = PipelineConfig(features=features)
    frame_truth, frame_guess, window_truth, window_guess = [], [], [], []
    print(f"{'recording':45s} {'frames':>7s} {'frame BA':>9s} {'window BA':>10s}")
    for path in audio.find_audio_files(args.inputs):
        annotation = annotations.find_annotation(path)
        if annotation is None:
            continue
        result = recording.analyse(path, config)
        centres = result.features.frame_starts + features.frame_seconds / 2
        truth = annotation.frame_labels(centres, background="") != ""
        coverage = annotation.coverage(result.windows.start_s, result.windows.end_s)
        # A window is silent in truth when at most the same fraction of it is sound.
        window_true_silence = coverage <= config.silence.window_sound_fraction
        frame_truth.append(truth)
        frame_guess.append(result.frame_sound)
        window_truth.append(~window_true_silence)
        window_guess.append(~result.window_silence)
        print(f"{path.name:45s} {len(truth):7d} "
              f"{balanced_accuracy_score(truth, result.frame_sound):9.4f} "
              f"{balanced_accuracy_score(~window_true_silence, ~result.window_silence):10.4f}")
    if not frame_truth:
        print("no annotated recordings found", file=sys.stderr)
        return 2
    frames = balanced_accuracy_score(np.concatenate(frame_truth), np.concatenate(frame_guess))
    windows = balanced_accuracy_score(np.concatenate(window_truth),
                                      np.concatenate(window_guess))
    print(f"{'all':45s} {sum(map(len, frame_truth)):7d} {frames:9.4f} {windows:10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
