"""How good are the units and the embeddings, where some labels exist.

Two evaluations:

- `unit_scores`: discovered units against annotations, frame by frame (10 ms grid):
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
- Siamese pairs (`make_pairs`, `pair_distances`, `separation`): DTW distances of
  duplicate (same label) and non-duplicate pairs of labelled utterances, and how well
  they separate (the seed notebook's KL of the two histograms, its symmetric form,
  Bhattacharyya distance, ROC-AUC, equal error rate).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
from sklearn import metrics

from discovery.annotations import Annotation
from discovery.config import SilenceConfig
from discovery.errors import ParameterError

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


def purity(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of frames whose predicted cluster's majority label is their own."""
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
            that is real audio, not padding; see `window_silence_truth`).
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
        units = frame_units(item["start_s"], item["end_s"], item["unit"], times)
        called = np.asarray(item["silence"]).astype(bool)
        silent = frame_units(item["start_s"], item["end_s"], called.astype(int),
                             times).astype(bool)
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


def silence_scores(model, paths: Sequence) -> Dict[str, float]:
    """`silence_balanced_accuracy_windows` of a model's detector, per recording and over all.

    Balanced accuracy per window, the model cards' figure: a window is silence in truth
    when at most `window_sound_fraction` of it is annotated sound (the training
    targets, `dataset.silence_targets`); the detector says silence when
    P(silence) >= 0.5.

    Args:
        model: a loaded bundle's `VAE` (carries `pipeline_config`).
        paths: recordings, each with an annotation beside it.

    Returns:
        {recording file name: balanced accuracy, ..., "all": over every window}.

    Raises:
        ParameterError: a recording has no annotation beside it.
    """
    from pathlib import Path

    from discovery.dataset import silence_targets
    from discovery.recording import analyse

    config = model.pipeline_config
    scores, truths, guesses = {}, [], []
    for path in paths:
        result = analyse(path, config)
        truth, from_annotation = silence_targets(path, result, config)
        if not from_annotation:
            raise ParameterError(f"{path}: no annotation beside it to score the silence "
                                 "detector against.")
        _, silence = model.embed(result.windows.values)
        truths.append(truth.astype(bool))
        guesses.append(silence >= 0.5)
        scores[Path(path).name] = float(metrics.balanced_accuracy_score(truths[-1],
                                                                        guesses[-1]))
    scores["all"] = float(metrics.balanced_accuracy_score(np.concatenate(truths),
                                                          np.concatenate(guesses)))
    return scores


# ---------------------------------------------------------------- Siamese pairs


def _check_n_pairs(n_pairs) -> None:
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ParameterError(f"Invalid value for `n_pairs`: expected an integer >= 1, "
                             f"received {n_pairs!r}.")


def _check_prefix_frames(prefix_frames) -> None:
    if prefix_frames is not None and (isinstance(prefix_frames, bool) or not isinstance(
            prefix_frames, (int, np.integer)) or prefix_frames < 1):
        raise ParameterError(f"Invalid value for `prefix_frames`: expected an integer >= 1 "
                             f"or None, received {prefix_frames!r}.")


def check_pair_settings(*, n_pairs, prefix_frames) -> None:
    """Check the settings of `siamese_evaluation` before any work.

    Raises:
        ParameterError: `n_pairs` is not an integer >= 1, or `prefix_frames` not an
            integer >= 1 or None.
    """
    _check_n_pairs(n_pairs)
    _check_prefix_frames(prefix_frames)


def _check_pair_labels(labels: np.ndarray, *, what: str, noun: str) -> None:
    """Raise unless `labels` give both duplicate and non-duplicate pairs.

    Args:
        labels: (n,) label of each item.
        what: the argument named in the message, e.g. "`labels`".
        noun: what the items are, plural, e.g. "files".

    Raises:
        ParameterError: fewer than two labels, or no label held by two items.
    """
    names, counts = np.unique(labels, return_counts=True)
    if len(names) < 2:
        raise ParameterError(f"Invalid value for {what}: Siamese pairs need at least two "
                             f"labels, received {len(names)} among {len(labels)} {noun}.")
    if counts.max() < 2:
        raise ParameterError(f"Invalid value for {what}: no two {noun} share a label "
                             f"({len(labels)} {noun}, {len(names)} labels): duplicate "
                             f"pairs need at least two {noun} of one label.")


def make_pairs(labels: Sequence, *, n_pairs: int, seed: int = 0) -> tuple:
    """Seeded, balanced duplicate and non-duplicate pairs of items.

    Args:
        labels: (n,) label of each item.
        n_pairs: int >= 1. Pairs of each kind (fewer duplicates when the data holds
            fewer).
        seed: int. Seeds the choice of pairs. Defaults to 0.

    Returns:
        (duplicates (k, 2) int, non_duplicates (<= n_pairs, 2) int) index pairs, i < j,
        without repeats; 1 <= k <= n_pairs.

    Raises:
        ParameterError: `n_pairs` is not an integer >= 1, the labels hold fewer than
            two labels, or no label is held by two items (no duplicate pair exists).
    """
    labels = np.asarray(labels)
    _check_n_pairs(n_pairs)
    _check_pair_labels(labels, what="`labels`", noun="items")
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    chosen = []
    for mask in (same, ~same):
        candidates = np.flatnonzero(mask)
        pick = rng.choice(candidates, size=min(n_pairs, len(candidates)), replace=False)
        chosen.append(np.stack([i[np.sort(pick)], j[np.sort(pick)]], axis=1))
    return chosen[0], chosen[1]


def histogram_kl(p_values: np.ndarray, q_values: np.ndarray, *, bins: int = 100,
                 smoothing: float = 1e-5) -> float:
    """KL(P || Q) of two samples' histograms on shared bins (the seed's estimate)."""
    low = min(p_values.min(), q_values.min())
    high = max(p_values.max(), q_values.max())
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    p = np.histogram(p_values, edges)[0] + smoothing
    q = np.histogram(q_values, edges)[0] + smoothing
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def bhattacharyya(p_values: np.ndarray, q_values: np.ndarray, *, bins: int = 100) -> float:
    """Bhattacharyya distance of two samples' histograms on shared bins."""
    low = min(p_values.min(), q_values.min())
    high = max(p_values.max(), q_values.max())
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    p = np.histogram(p_values, edges)[0].astype(float)
    q = np.histogram(q_values, edges)[0].astype(float)
    coefficient = np.sum(np.sqrt(p / p.sum() * q / q.sum()))
    return float(-np.log(max(coefficient, 1e-12)))


def separation(duplicate: np.ndarray, non_duplicate: np.ndarray) -> Dict[str, float]:
    """How well distances separate duplicates (small) from non-duplicates (large)."""
    duplicate = np.asarray(duplicate, float)
    non_duplicate = np.asarray(non_duplicate, float)
    truth = np.r_[np.ones(len(duplicate)), np.zeros(len(non_duplicate))]
    score = -np.r_[duplicate, non_duplicate]
    false_positive, true_positive, _ = metrics.roc_curve(truth, score)
    false_negative = 1 - true_positive
    crossing = np.argmin(np.abs(false_negative - false_positive))
    kl = histogram_kl(non_duplicate, duplicate)
    return {
        "kl": kl,
        "symmetric_kl": kl + histogram_kl(duplicate, non_duplicate),
        "bhattacharyya": bhattacharyya(duplicate, non_duplicate),
        "roc_auc": float(metrics.roc_auc_score(truth, score)),
        "equal_error_rate": float((false_positive[crossing] + false_negative[crossing]) / 2),
        "duplicate_mean": float(duplicate.mean()),
        "non_duplicate_mean": float(non_duplicate.mean()),
        "n_duplicate": int(len(duplicate)), "n_non_duplicate": int(len(non_duplicate)),
    }


def pair_distances(sequences: List[np.ndarray], pairs: np.ndarray, *,
                   open_end: bool = False, prefix_frames: Optional[int] = None,
                   normalized: bool = False) -> np.ndarray:
    """DTW distance of each pair of sequences.

    Args:
        sequences: list of (n_i, D) arrays.
        pairs: (k, 2) index pairs.
        open_end: align the first sequence whole to a prefix of the second.
        prefix_frames: int >= 1 or None. Use only the first K frames of the first
            sequence (the seed's prefix case; use with `open_end=True`); None uses
            them all. Defaults to None.
        normalized: divide by the best path's length.

    Returns:
        (k,) distances.

    Raises:
        ParameterError: `prefix_frames` is neither None nor an integer >= 1.
    """
    from discovery.dtw import dtw_distance

    _check_prefix_frames(prefix_frames)
    if len(pairs) == 0:
        return np.zeros(0)
    firsts = [sequences[a] if prefix_frames is None else sequences[a][:prefix_frames]
              for a in pairs[:, 0]]
    seconds = [sequences[b] for b in pairs[:, 1]]
    x, x_lengths = _pad(firsts)
    y, y_lengths = _pad(seconds)
    return np.asarray(dtw_distance(x, y, x_lengths=x_lengths, y_lengths=y_lengths,
                                   open_end=open_end, normalized=normalized))


def _pad(sequences: List[np.ndarray]) -> tuple:
    lengths = np.array([len(s) for s in sequences])
    out = np.zeros((len(sequences), lengths.max(), sequences[0].shape[1]), np.float32)
    for k, sequence in enumerate(sequences):
        out[k, :len(sequence)] = sequence
    return out, lengths


def labels_from_names(paths: Sequence, label_regex: str) -> np.ndarray:
    """Label of each file from its name, for the Siamese pairs: the regex's first group
    (or whole match).

    Call it on the file list before any heavy work: it fails fast when the labels can
    give no pairs.

    Args:
        paths: (n,) the files.
        label_regex: str. Searched in each file name (not the folder).

    Returns:
        (n,) str labels.

    Raises:
        ParameterError: the regex is invalid or does not match a file name, or the
            labels give no duplicate or no non-duplicate pair (fewer than two labels,
            or no two files sharing one).
    """
    import re
    from pathlib import Path

    try:
        pattern = re.compile(label_regex)
    except re.error as error:
        raise ParameterError(f"Invalid value for `label_regex`: {error}, received "
                             f"{label_regex!r}.") from None
    labels = []
    for path in paths:
        match = pattern.search(Path(path).name)
        if match is None:
            raise ParameterError(f"{path}: the file name does not match `label_regex` "
                                 f"{label_regex!r}.")
        labels.append(match.group(1) if pattern.groups else match.group(0))
    labels = np.asarray(labels)
    _check_pair_labels(labels, what=f"`label_regex` {label_regex!r}", noun="files")
    return labels


def siamese_evaluation(recordings: Sequence, labels: np.ndarray, *, n_pairs: int = 1000,
                       prefix_frames: Optional[int] = None, seed: int = 0) -> tuple:
    """DTW separation of duplicate and non-duplicate pairs, on features and embeddings.

    Modes: "normalized" (closed end, divided by the best path's length), "closed"
    (closed end, the plain sum of local costs), "open_end" (the first sequence aligned
    whole to a prefix of the second), and "prefix" when `prefix_frames` is given.

    Args:
        recordings: `embed.RecordingEmbedding` per labelled file (features kept).
        labels: (n,) label per recording.
        n_pairs: int >= 1. Pairs of each kind. Defaults to 1000.
        prefix_frames: int >= 1 or None. Also score the prefix case: the first K
            frames (raw) or the first windows covering them (latent) aligned with an
            open end. Defaults to None (no prefix case).
        seed: int. Seeds the choice of pairs. Defaults to 0.

    Returns:
        (results: {representation: {mode: separation dict}},
         distances: {representation: {mode: (duplicate, non_duplicate)}}).

    Raises:
        ParameterError: before any distance is computed, when `n_pairs` or
            `prefix_frames` is out of range, `labels` does not give one label per
            recording, or the labels give no duplicate or no non-duplicate pair.
    """
    _check_n_pairs(n_pairs)
    _check_prefix_frames(prefix_frames)
    labels = np.asarray(labels)
    if len(labels) != len(recordings):
        raise ParameterError(f"Invalid value for `labels`: expected one per recording "
                             f"({len(recordings)}), received {len(labels)}.")
    _check_pair_labels(labels, what="`labels`", noun="recordings")
    duplicates, non_duplicates = make_pairs(labels, n_pairs=n_pairs, seed=seed)
    representations = {
        "raw": [r.recording.features.values for r in recordings],
        "latent": [r.embedding for r in recordings],
    }
    # "normalized": closed end divided by the best path's length, so a long utterance
    # is not far from everything merely for being long (the seed's dtwalign distances
    # were normalised by length too). The headline mode; the sums follow.
    modes = {"normalized": dict(open_end=False, normalized=True),
             "closed": dict(open_end=False), "open_end": dict(open_end=True)}
    if prefix_frames is not None:
        # The latent prefix: as many windows as start within the first K frames.
        hop_frames = max(1, max((int(np.diff(r.recording.windows.start_frame[:2])[0])
                                 for r in recordings
                                 if len(r.recording.windows.start_frame) > 1), default=1))
        modes["prefix"] = dict(open_end=True, prefix_frames=prefix_frames,
                               latent_prefix=max(1, int(np.ceil(prefix_frames / hop_frames))))
    results, distances = {}, {}
    for name, sequences in representations.items():
        results[name], distances[name] = {}, {}
        for mode, options in modes.items():
            options = dict(options)
            latent_prefix = options.pop("latent_prefix", None)
            if name == "latent" and latent_prefix is not None:
                options["prefix_frames"] = latent_prefix
            pair_sets = [pair_distances(sequences, pairs, **options)
                         for pairs in (duplicates, non_duplicates)]
            distances[name][mode] = tuple(pair_sets)
            results[name][mode] = separation(*pair_sets)
    return results, distances
