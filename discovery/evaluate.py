"""How good are the units and the embeddings, where some labels exist.

Two evaluations:

- `unit_scores`: discovered units against annotations, frame by frame (10 ms grid):
  NMI, V-measure, homogeneity, completeness, purity, coverage and silence balanced
  accuracy. Scored over annotated (sound) frames, with "no unit" as one more
  predicted class, so a method cannot score well by leaving hard frames out; coverage
  says how many annotated frames got a unit at all.
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


def unit_scores(recordings: Sequence[dict]) -> Dict[str, float]:
    """Score units against annotations over several recordings.

    Args:
        recordings: one dict per annotated recording with keys `annotation`
            (`Annotation`), `duration_s`, and the recording's windows `start_s`,
            `end_s`, `unit` (-1 silence or noise) and `silence` (bool, the window was
            called silence).

    Returns:
        {"nmi", "v_measure", "homogeneity", "completeness", "purity", "coverage",
        "silence_balanced_accuracy", "n_frames", "n_labels", "n_units"}.
    """
    truths, predictions, is_sound, said_silence = [], [], [], []
    for item in recordings:
        annotation: Annotation = item["annotation"]
        times = np.arange(0.0, item["duration_s"], SCORE_STEP_S) + SCORE_STEP_S / 2
        labels = annotation.frame_labels(times, background="")
        units = frame_units(item["start_s"], item["end_s"], item["unit"], times)
        silent = frame_units(item["start_s"], item["end_s"],
                             np.asarray(item["silence"]).astype(int), times).astype(bool)
        truths.append(labels)
        predictions.append(units)
        is_sound.append(labels != "")
        said_silence.append(silent)
    if not truths:
        raise ParameterError("No annotated recordings to score.")
    truth = np.concatenate(truths)
    predicted = np.concatenate(predictions)
    sound = np.concatenate(is_sound)
    silence_guess = np.concatenate(said_silence)
    scores = {
        "silence_balanced_accuracy": float(
            metrics.balanced_accuracy_score(~sound, silence_guess))
        if 0 < sound.sum() < len(sound) else float("nan"),
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
        "n_frames": int(len(truth)), "n_labels": int(len(np.unique(truth))),
        "n_units": int(len(np.unique(predicted[predicted != NO_UNIT]))),
    })
    return scores


# ---------------------------------------------------------------- Siamese pairs


def silence_scores(model, paths: Sequence) -> Dict[str, float]:
    """Balanced accuracy of a model's silence detector against annotations, per window.

    A window is silence in truth when at most `window_sound_fraction` of it is
    annotated sound (`dataset.silence_targets`); the detector says silence when
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


def make_pairs(labels: Sequence, *, n_pairs: int, seed: int = 0) -> tuple:
    """Seeded, balanced duplicate and non-duplicate pairs of items.

    Args:
        labels: (n,) label of each item.
        n_pairs: int > 0. Pairs of each kind (fewer duplicates when the data holds
            fewer).

    Returns:
        (duplicates (k, 2) int, non_duplicates (n_pairs, 2) int) index pairs, i < j,
        without repeats.
    """
    labels = np.asarray(labels)
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ParameterError(f"Invalid value for `n_pairs`: expected an integer >= 1, "
                             f"received {n_pairs!r}.")
    if len(labels) < 2 or len(np.unique(labels)) < 2:
        raise ParameterError(f"Siamese pairs need at least two labels, received "
                             f"{len(np.unique(labels))} among {len(labels)} items.")
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
        prefix_frames: use only the first K frames of the first sequence (the seed's
            prefix case; use with `open_end=True`).
        normalized: divide by the best path's length.

    Returns:
        (k,) distances.
    """
    from discovery.dtw import dtw_distance

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
    """Label of each file from its name: the regex's first group (or whole match).

    Raises:
        ParameterError: the regex is invalid or does not match a file name.
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
    return np.asarray(labels)


def siamese_evaluation(recordings: Sequence, labels: np.ndarray, *, n_pairs: int = 1000,
                       prefix_frames: Optional[int] = None, seed: int = 0) -> tuple:
    """DTW separation of duplicate and non-duplicate pairs, on features and embeddings.

    Modes: "normalized" (closed end, divided by the best path's length), "closed"
    (closed end, the plain sum of local costs), "open_end" (the first sequence aligned
    whole to a prefix of the second), and "prefix" when `prefix_frames` is given.

    Args:
        recordings: `embed.RecordingEmbedding` per labelled file (features kept).
        labels: (n,) label per recording.
        n_pairs: pairs of each kind.
        prefix_frames: also score the prefix case: the first K frames (raw) or the
            first windows covering them (latent) aligned with an open end.
        seed: seeds the choice of pairs.

    Returns:
        (results: {representation: {mode: separation dict}},
         distances: {representation: {mode: (duplicate, non_duplicate)}}).
    """
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
    if prefix_frames:
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
