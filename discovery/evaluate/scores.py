"""Unit scores against annotations, and the silence detector's balanced accuracy.

- `unit_scores`: discovered units against annotations, frame by frame (10 ms grid;
  a frame takes its nearest window's unit, or its segment's at the segment level):
  NMI, V-measure, homogeneity, completeness, purity and coverage. Scored over
  annotated (sound) frames, with "no unit" as one more predicted class, so a method
  cannot score well by leaving hard frames out; coverage says how many annotated
  frames got a unit at all.
- The silence detector, by balanced accuracy (the mean of the recall of silence and
  of sound), measured two ways that differ a lot and so never share a name:
  `silence_balanced_accuracy_windows` (per window: a window is silence in truth when
  at most `window_sound_fraction` of it is annotated sound, as in training; the
  figure of the model cards, `silence_scores`) and `silence_balanced_accuracy_frames`
  (per 10 ms frame: each frame takes its nearest window's call and is silence in
  truth outside every annotated interval, so frames at the edges of sounds, inside
  windows called silence, count against it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Sequence

import numpy as np
from sklearn import metrics

from discovery.frontend.annotations import Annotation, interval_values
from discovery.config import SILENCE_THRESHOLD, PipelineConfig, SilenceConfig
from discovery.errors import ParameterError
from discovery.frontend.audio import PathLike

if TYPE_CHECKING:
    from discovery.nn.vae import VAE

# Frame step of the unit scores, in seconds.
SCORE_STEP_S = 0.01
NO_UNIT = -1


def frame_units(start_s: np.ndarray, end_s: np.ndarray, unit: np.ndarray,
                times: np.ndarray) -> np.ndarray:
    """The unit at each time: that of the window whose centre is nearest.

    Args:
        start_s, end_s, unit: (n,) one recording's windows, sorted by start.
        times: (m,) sorted time points in seconds.

    Returns:
        (m,) int units (-1 where the nearest window is silence or noise).
    """
    unit = np.asarray(unit)
    if len(unit) == 0:
        return np.full(len(times), NO_UNIT)
    if len(unit) == 1:
        return np.full(len(times), unit[0])
    centres = (np.asarray(start_s) + np.asarray(end_s)) / 2
    index = np.clip(np.searchsorted(centres, times), 1, len(centres) - 1)
    left_nearer = np.abs(times - centres[index - 1]) <= np.abs(centres[index] - times)
    return unit[np.where(left_nearer, index - 1, index)]


def interval_units(start_s: np.ndarray, end_s: np.ndarray, unit: np.ndarray,
                   times: np.ndarray) -> np.ndarray:
    """The unit at each time: that of the segment holding it, -1 outside every segment.

    Args:
        start_s, end_s, unit: (n,) one recording's segments, sorted, not overlapping.
        times: (m,) time points in seconds.

    Returns:
        (m,) int units.
    """
    return interval_values(np.asarray(start_s, float), np.asarray(end_s, float),
                           np.asarray(unit, dtype=np.int64), times, background=NO_UNIT)


def purity(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of frames whose predicted cluster's majority label is their own.

    Args:
        truth: (n,) true label of each frame.
        predicted: (n,) predicted cluster of each frame.

    Returns:
        float in [0, 1]; 0 for no frames.
    """
    table = metrics.cluster.contingency_matrix(truth, predicted)
    return float(table.max(axis=0).sum() / max(table.sum(), 1))


def window_silence_truth(annotation: Annotation, start_s: np.ndarray, end_s: np.ndarray, *,
                         window_sound_fraction: float,
                         valid_fraction: Optional[np.ndarray] = None) -> np.ndarray:
    """Which windows are silence according to an annotation: the training targets' rule.

    A window is silence when at most `window_sound_fraction` of it is annotated sound;
    zero padding past the end of a recording counts as silence (`dataset.silence_targets`).

    Args:
        annotation: the recording's labelled intervals.
        start_s, end_s: (n,) float. Window bounds in seconds (end of the real frames).
        window_sound_fraction: float in [0, 1]. Most sound a silent window holds.
        valid_fraction: (n,) float in [0, 1] or None. Share of each window that is real
            audio, not padding (`n_valid / window_frames`); None for no padding.

    Returns:
        (n,) bool, True for silence.
    """
    sound = annotation.coverage(start_s, end_s)
    if valid_fraction is not None:
        sound = sound * np.asarray(valid_fraction, dtype=float)
    return sound <= window_sound_fraction


def _balanced_accuracy(truth: np.ndarray, guess: np.ndarray) -> float:
    """Balanced accuracy of boolean calls; NaN unless the truth holds both classes."""
    if not 0 < truth.sum() < len(truth):
        return float("nan")
    return float(metrics.balanced_accuracy_score(truth, guess))


def unit_scores(recordings: Sequence[dict], *,
                window_sound_fraction: float = SilenceConfig.window_sound_fraction
                ) -> Dict[str, float]:
    """Score units and the silence detector against annotations over several recordings.

    Args:
        recordings: one dict per annotated recording with keys `annotation`
            (`Annotation`), `duration_s`, and the recording's windows `start_s`,
            `end_s`, `unit` (-1 silence or noise) and `silence` (bool, the window was
            called silence); optionally `valid_fraction` ((n,) share of each window
            that is real audio, not padding; see `window_silence_truth`), and
            `segments`, a dict of the recording's segments' `start_s`, `end_s` and
            `unit`: then each frame takes the unit of the segment holding it, and
            frames outside every segment are the ones called silence.
        window_sound_fraction: float in [0, 1]. A window is silence in truth when at
            most this share of it is annotated sound; pass the model's
            `SilenceConfig.window_sound_fraction`. Defaults to 0.2.

    Returns:
        {"nmi", "v_measure", "homogeneity", "completeness", "purity", "coverage",
        "silence_balanced_accuracy_windows", "silence_balanced_accuracy_frames",
        "n_frames", "n_windows", "n_labels", "n_units"}; see the module docstring for
        the two silence measures (NaN when the truth holds only silence or only
        sound). `n_frames` counts the labelled frames the unit scores use,
        `n_windows` the windows the per-window silence measure uses.

    Raises:
        ParameterError: no recording, or the annotations hold no labelled interval.
    """
    truths, predictions, is_sound, said_silence = [], [], [], []
    window_truths, window_calls = [], []
    for item in recordings:
        annotation: Annotation = item["annotation"]
        times = np.arange(0.0, item["duration_s"], SCORE_STEP_S) + SCORE_STEP_S / 2
        labels = annotation.frame_labels(times, background="")
        called = np.asarray(item["silence"]).astype(bool)
        segments = item.get("segments")
        if segments is None:
            units = frame_units(item["start_s"], item["end_s"], item["unit"], times)
            silent = frame_units(item["start_s"], item["end_s"], called.astype(int),
                                 times).astype(bool)
        else:
            units = interval_units(segments["start_s"], segments["end_s"],
                                   segments["unit"], times)
            silent = interval_units(segments["start_s"], segments["end_s"],
                                    np.zeros(len(segments["unit"]), int), times) < 0
        truths.append(labels)
        predictions.append(units)
        is_sound.append(labels != "")
        said_silence.append(silent)
        window_truths.append(window_silence_truth(
            annotation, item["start_s"], item["end_s"],
            window_sound_fraction=window_sound_fraction,
            valid_fraction=item.get("valid_fraction")))
        window_calls.append(called)
    if not truths:
        raise ParameterError("No annotated recordings to score.")
    truth = np.concatenate(truths)
    predicted = np.concatenate(predictions)
    sound = np.concatenate(is_sound)
    window_truth = np.concatenate(window_truths)
    scores = {
        "silence_balanced_accuracy_windows": _balanced_accuracy(
            window_truth, np.concatenate(window_calls)),
        "silence_balanced_accuracy_frames": _balanced_accuracy(
            ~sound, np.concatenate(said_silence)),
        "coverage": float(np.mean(predicted[sound] != NO_UNIT)) if sound.any() else 0.0,
    }
    truth, predicted = truth[sound].astype(str), predicted[sound]
    if len(truth) == 0:
        raise ParameterError("The annotations hold no labelled intervals to score.")
    homogeneity, completeness, v_measure = metrics.homogeneity_completeness_v_measure(
        truth, predicted)
    scores.update({
        "nmi": float(metrics.normalized_mutual_info_score(truth, predicted)),
        "v_measure": float(v_measure), "homogeneity": float(homogeneity),
        "completeness": float(completeness), "purity": purity(truth, predicted),
        "n_frames": int(len(truth)), "n_windows": int(len(window_truth)),
        "n_labels": int(len(np.unique(truth))),
        "n_units": int(len(np.unique(predicted[predicted != NO_UNIT]))),
    })
    return scores


def silence_scores(paths: Sequence[PathLike], *, model: VAE,
                   config: PipelineConfig) -> Dict[str, float]:
    """`silence_balanced_accuracy_windows` of a model's detector, per recording and over all.

    Balanced accuracy per window, the model cards' figure: a window is silence in truth
    when at most `window_sound_fraction` of it is annotated sound (the training
    targets, `dataset.silence_targets`); the detector says silence when
    P(silence) >= `SILENCE_THRESHOLD` (0.5).

    Args:
        paths: recordings, each with an annotation beside it.
        model: a bundle's `VAE`.
        config: the bundle's settings, which cut the recordings into the model's
            windows.

    Returns:
        {recording file name: balanced accuracy, ..., "all": over every window}.

    Raises:
        ParameterError: a recording has no annotation beside it.
    """
    from pathlib import Path

    from discovery.dataset import silence_targets
    from discovery.frontend.recording import analyse

    scores, truths, guesses = {}, [], []
    for path in paths:
        result = analyse(path, config)
        truth, from_annotation = silence_targets(path, result, config)
        if not from_annotation:
            raise ParameterError(f"{path}: no annotation beside it to score the silence "
                                 "detector against.")
        _, silence = model.embed(result.windows.values)
        truths.append(truth.astype(bool))
        guesses.append(silence >= SILENCE_THRESHOLD)
        scores[Path(path).name] = float(metrics.balanced_accuracy_score(truths[-1],
                                                                        guesses[-1]))
    scores["all"] = float(metrics.balanced_accuracy_score(np.concatenate(truths),
                                                          np.concatenate(guesses)))
    return scores
