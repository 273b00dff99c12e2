"""Siamese pairs: how well DTW distances separate duplicates from non-duplicates.

`make_pairs`, `pair_distances`, `separation`: DTW distances of duplicate (same label)
and non-duplicate pairs of labelled utterances, and how well they separate (the seed
notebook's KL of the two histograms, its symmetric form, Bhattacharyya distance,
ROC-AUC, equal error rate); `siamese_evaluation` runs them on raw features and on
windowed embeddings.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from scipy import stats
from sklearn import metrics

from discovery.errors import ParameterError
from discovery.frontend.audio import PathLike


def _check_n_pairs(n_pairs) -> None:
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ParameterError(f"Invalid value for `n_pairs`: expected an integer >= 1, "
                             f"received {n_pairs!r}.")


def _check_prefix_frames(prefix_frames) -> None:
    if prefix_frames is not None and (isinstance(prefix_frames, bool) or not isinstance(
            prefix_frames, (int, np.integer)) or prefix_frames < 1):
        raise ParameterError(f"Invalid value for `prefix_frames`: expected an integer >= 1 "
                             f"or None, received {prefix_frames!r}.")


def check_pair_settings(*, n_pairs: int, prefix_frames: Optional[int]) -> None:
    """Check the settings of `siamese_evaluation` before any work.

    Args:
        n_pairs: int >= 1. Pairs of each kind.
        prefix_frames: int >= 1 or None. Frames of the prefix case, or None for none.

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


class Pairs(NamedTuple):
    """Index pairs of items; unpacks as `duplicates, non_duplicates`.

    Attributes:
        duplicates: (k, 2) int64 pairs (i, j), i < j, of items with the same label.
        non_duplicates: (k', 2) int64 pairs (i, j), i < j, of items with different
            labels.
    """

    duplicates: np.ndarray
    non_duplicates: np.ndarray


class SiameseEvaluation(NamedTuple):
    """What `siamese_evaluation` returns; unpacks as `results, distances`.

    Attributes:
        results: {representation: {mode: `separation` dict}}, representations "raw"
            and "latent".
        distances: {representation: {mode: (duplicate (k,), non_duplicate (k',))}}
            DTW distances.
    """

    results: Dict[str, Dict[str, Dict[str, float]]]
    distances: Dict[str, Dict[str, Tuple[np.ndarray, np.ndarray]]]


def make_pairs(labels: Sequence, *, n_pairs: int, seed: int = 0) -> Pairs:
    """Seeded, balanced duplicate and non-duplicate pairs of items.

    Args:
        labels: (n,) label of each item.
        n_pairs: int >= 1. Pairs of each kind (fewer duplicates when the data holds
            fewer).
        seed: int. Seeds the choice of pairs. Defaults to 0.

    Returns:
        `Pairs(duplicates (k, 2), non_duplicates (<= n_pairs, 2))` of int index pairs,
        i < j, without repeats; 1 <= k <= n_pairs.

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
    return Pairs(chosen[0], chosen[1])


def histogram_kl(p_values: np.ndarray, q_values: np.ndarray, *, bins: int = 100,
                 smoothing: float = 1e-5) -> float:
    """KL(P || Q) of two samples' histograms on shared bins (the seed's estimate).

    Args:
        p_values: (n,) float sample of P.
        q_values: (m,) float sample of Q.
        bins: int >= 1. Bins of equal width over both samples' range. Defaults to 100.
        smoothing: float > 0. Added to every bin count, so an empty bin of Q does not
            make the divergence infinite. Defaults to 1e-5.

    Returns:
        KL(P || Q) in nats of the smoothed, normalised histograms (scipy's `entropy`).
    """
    low = min(p_values.min(), q_values.min())
    high = max(p_values.max(), q_values.max())
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    p = np.histogram(p_values, edges)[0] + smoothing
    q = np.histogram(q_values, edges)[0] + smoothing
    return float(stats.entropy(p, q))


def bhattacharyya(p_values: np.ndarray, q_values: np.ndarray, *, bins: int = 100) -> float:
    """Bhattacharyya distance of two samples' histograms on shared bins.

    Args:
        p_values: (n,) float sample of P.
        q_values: (m,) float sample of Q.
        bins: int >= 1. Bins of equal width over both samples' range. Defaults to 100.

    Returns:
        `-log(sum(sqrt(p q)))` of the normalised histograms: 0 for equal ones, large
        for disjoint ones (at most about 27.6, where the sum is floored at 1e-12).
    """
    low = min(p_values.min(), q_values.min())
    high = max(p_values.max(), q_values.max())
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    p = np.histogram(p_values, edges)[0].astype(float)
    q = np.histogram(q_values, edges)[0].astype(float)
    coefficient = np.sum(np.sqrt(p / p.sum() * q / q.sum()))
    return float(-np.log(max(coefficient, 1e-12)))


def separation(duplicate: np.ndarray, non_duplicate: np.ndarray) -> Dict[str, float]:
    """How well distances separate duplicates (small) from non-duplicates (large).

    Args:
        duplicate: (k,) distances of duplicate pairs.
        non_duplicate: (k',) distances of non-duplicate pairs.

    Returns:
        {"kl": KL(non-duplicate || duplicate) of the histograms (`histogram_kl`),
        "symmetric_kl", "bhattacharyya", "roc_auc" and "equal_error_rate" (a small
        distance taken as "duplicate"), "duplicate_mean", "non_duplicate_mean",
        "n_duplicate", "n_non_duplicate"}.
    """
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
        open_end: bool. Align the first sequence whole to a prefix of the second.
            Defaults to False.
        prefix_frames: int >= 1 or None. Use only the first K frames of the first
            sequence (the seed's prefix case; use with `open_end=True`); None uses
            them all. Defaults to None.
        normalized: bool. Divide by the best path's length. Defaults to False.

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


def _pad(sequences: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(n, max length, D) float32 sequences zero-padded at the end, and (n,) lengths."""
    import keras  # loaded already: DTW runs on TensorFlow

    padded = keras.utils.pad_sequences(sequences, dtype="float32", padding="post",
                                       value=0.0)
    return padded, np.array([len(s) for s in sequences])


def values_from_names(paths: Sequence[PathLike], regex: str, *,
                      name: str = "label_regex") -> np.ndarray:
    """A value per file from its name (not its folder): the regex's first group, or the
    whole match.

    Raises:
        ParameterError: the regex is invalid or does not match a file name (named).
    """
    import re
    from pathlib import Path

    try:
        pattern = re.compile(regex)
    except re.error as error:
        raise ParameterError(f"Invalid value for `{name}`: {error}, received "
                             f"{regex!r}.") from None
    values = []
    for path in paths:
        match = pattern.search(Path(path).name)
        if match is None:
            raise ParameterError(f"{path}: the file name does not match `{name}` "
                                 f"{regex!r}.")
        values.append(match.group(1) if pattern.groups else match.group(0))
    return np.asarray(values)


def labels_from_names(paths: Sequence[PathLike], label_regex: str) -> np.ndarray:
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
    labels = values_from_names(paths, label_regex)
    _check_pair_labels(labels, what=f"`label_regex` {label_regex!r}", noun="files")
    return labels


def siamese_evaluation(recordings: Sequence, labels: np.ndarray, *, n_pairs: int = 1000,
                       prefix_frames: Optional[int] = None,
                       seed: int = 0) -> SiameseEvaluation:
    """DTW separation of duplicate and non-duplicate pairs, on features and embeddings.

    Modes: "normalized" (closed end, divided by the best path's length), "cosine"
    (the same over L2-normalised frames: `discovery abx`'s distance), "closed"
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
        `SiameseEvaluation(results, distances)`: {representation: {mode: separation
        dict}} and {representation: {mode: (duplicate, non_duplicate) distances}}.

    Raises:
        ParameterError: before any distance is computed, when `n_pairs` or
            `prefix_frames` is out of range, `labels` does not give one label per
            recording, or the labels give no duplicate or no non-duplicate pair.
    """
    from discovery.dtw import unit_frames  # TensorFlow: loaded only when scoring

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
    # "cosine": the angle between frames, not their lengths, as `discovery abx` and
    # the Siamese stage's InfoNCE compare them.
    modes = {"normalized": dict(open_end=False, normalized=True),
             "cosine": dict(open_end=False, normalized=True, unit=True),
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
            chosen = ([unit_frames(s) for s in sequences] if options.pop("unit", False)
                      else sequences)
            pair_sets = [pair_distances(chosen, pairs, **options)
                         for pairs in (duplicates, non_duplicates)]
            distances[name][mode] = tuple(pair_sets)
            results[name][mode] = separation(*pair_sets)
    return SiameseEvaluation(results, distances)
