"""Recordings -> pairs of the same sound in two different recordings, found without labels.

    each recording's segments (frontend/segments.py, the silence-delimited spans)
    -> mining frames: cepstra of the log-mel (DCT, c1-c12: c0, the level, is left
       out), the segment's mean removed (a fixed channel or voice colour cancels),
       each frame L2-normalised
    -> candidates: the nearest segments of other recordings by a fixed-size summary
       (the frames resampled to SUMMARY_FRAMES, cosine), so that DTW runs on
       n_candidates pairs per segment, not on all of them
    -> DTW (`discovery.dtw`, divided by the path length) of every candidate pair
    -> kept: mutual pairs, each among the other's `mutual_top` cheapest, at most
       `max_cost` apart
    -> aligned frames: the cells of each kept pair's DTW path (`dtw_path`)
    -> groups: the pair graph's connected components (`MinedPairs.groups`), segments
       matched directly or through others, for the Siamese stage's negatives

Cross-voice mining (the Siamese stage's second round): the same steps on `learned`
frames (a tuned encoder's embedding of the window centred on each frame, L2-
normalised), with candidates only from recordings of another voice
(`voice_clusters`: k-means over the recordings' long-term cepstra, the number of
voices chosen by silhouette). Cepstral matching finds almost only one speaker's
tokens; these pairs are what teaches the encoder to ignore the voice.

This is unsupervised term discovery's matching step (Park & Glass 2008; Jansen & Van
Durme 2011) on segments instead of on every span, as in Thiollière et al. (2015),
whose Siamese network learns from the aligned frames. Mutual nearest neighbours keep
precision high without a threshold tuned to one data set; the pairs are mostly of one
speaker (a speaker's own tokens are closest), which is why the Siamese stage warps
frequency (`nn.siamese`) and mines again across voices with what it learned, as
iterated mining with a learned representation does (Jansen et al. 2013; Kamper et
al. 2015).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import numpy as np
from scipy.fft import dct
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from discovery.dtw import dtw_distance, dtw_path, unit_frames
from discovery.errors import ParameterError
from discovery.files import atomic_path

# Cepstral coefficients kept for matching (c1..c12, the classic MFCC set without c0).
N_CEPSTRA = 12
# Frames of the fixed-size summary that picks DTW candidates.
SUMMARY_FRAMES = 10
# Candidate pairs per DTW call: a progress step, and a bound on the padded copies.
CHUNK = 8192
# Cepstral coefficients of a recording's voice (c1..c20: the spectral envelope's shape).
N_VOICE_CEPSTRA = 20


@dataclasses.dataclass
class MinedPairs:
    """Segment pairs matched across recordings, and the frames their DTW path aligns.

    Attributes:
        segments: (n, 3) int64 rows (recording, start frame, end frame).
        pairs: (m, 2) int64 rows of indices into `segments`, first < second; the
            two segments always come from different recordings.
        cost: (m,) float DTW cost of each pair, divided by the path length.
        frames: (k, 5) int64 aligned frames (pair, recording a, frame a, recording b,
            frame b), frames counted from the start of each recording.
    """

    segments: np.ndarray
    pairs: np.ndarray
    cost: np.ndarray
    frames: np.ndarray

    def __len__(self) -> int:
        return len(self.pairs)

    def groups(self) -> np.ndarray:
        """(m,) int64: each pair's connected component in the graph whose nodes are
        the segments and whose edges are the pairs. Segments linked through matches
        are likely one sound (a speaker's tokens of one word), so the Siamese stage
        does not push apart windows of one group."""
        n = len(self.segments)
        graph = coo_matrix((np.ones(len(self.pairs)), (self.pairs[:, 0], self.pairs[:, 1])),
                           shape=(n, n))
        _, component = connected_components(graph, directed=False)
        return component[self.pairs[:, 0]].astype(np.int64)

    def save(self, path, recordings: Sequence) -> None:
        """Write the pairs to an .npz file (atomically), with the recordings' paths
        that the `recording` columns index."""
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, segments=self.segments, pairs=self.pairs, cost=self.cost,
                         frames=self.frames,
                         files=np.asarray([str(r) for r in recordings]))

    @classmethod
    def load(cls, path) -> tuple:
        """Read what `save` wrote.

        Returns:
            (`MinedPairs`, list of the recordings' paths as str).

        Raises:
            OSError, ValueError, KeyError: the file is missing, unreadable or not
                one `save` wrote.
        """
        with np.load(path, allow_pickle=False) as stored:
            mined = cls(*(np.asarray(stored[name]) for name in
                          ("segments", "pairs", "cost", "frames")))
            return mined, [str(name) for name in stored["files"]]


def mining_frames(features: np.ndarray) -> np.ndarray:
    """The frames segments are matched on: cepstra c1-c12 of log-mel `features`, the
    mean over the span removed, each frame L2-normalised.

    Args:
        features: (n_frames, n_mels) log-mel features of one segment.

    Returns:
        (n_frames, 12) float32.
    """
    cepstra = dct(np.asarray(features, np.float64), type=2, norm="ortho",
                  axis=1)[:, 1:N_CEPSTRA + 1]
    return unit_frames(cepstra - cepstra.mean(axis=0))


def voice_clusters(features: Sequence[np.ndarray], segments: Sequence[np.ndarray], *,
                   max_voices: int = 8, seed: int = 0) -> np.ndarray:
    """Each recording's voice: recordings grouped by their long-term cepstra, no labels.

    A recording's voice is the mean of cepstra c1-c20 over its segments' frames (the
    long-term spectral envelope, which a speaker's or an animal's vocal tract
    colours). The means, standardised, are split by k-means into 2..`max_voices`
    clusters, the number with the best silhouette kept. A recording is assumed to
    hold one voice; where it holds several, cross-voice pairs are only less often
    across speakers, which costs nothing but their value.

    Args:
        features: one (n_frames, n_mels) log-mel array per recording.
        segments: one (n_segments, 2) array of [start, end) frame bounds per recording.
        max_voices: int >= 2. The most clusters tried. Defaults to 8.
        seed: int. The k-means seed. Defaults to 0.

    Returns:
        (n_recordings,) int64 cluster labels; with fewer than three recordings, each
        recording its own voice.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(features)
    if n < 3:
        return np.arange(n, dtype=np.int64)
    means = []
    for values, bounds in zip(features, segments):
        bounds = np.asarray(bounds).reshape(-1, 2)
        rows = (np.concatenate([values[a:b] for a, b in bounds]) if len(bounds)
                else values)
        cepstra = dct(np.asarray(rows, np.float64), type=2, norm="ortho", axis=1)
        means.append(cepstra[:, 1:N_VOICE_CEPSTRA + 1].mean(axis=0))
    means = np.stack(means)
    means = (means - means.mean(axis=0)) / np.maximum(means.std(axis=0), 1e-8)
    best, best_score = np.zeros(n, np.int64), -np.inf
    for k in range(2, min(max_voices, n - 1) + 1):
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(means)
        if len(np.unique(labels)) < 2:
            continue
        score = silhouette_score(means, labels)
        if score > best_score:
            best, best_score = labels.astype(np.int64), score
    return best


def _summary(frames: np.ndarray) -> np.ndarray:
    chosen = np.linspace(0, len(frames) - 1, SUMMARY_FRAMES).round().astype(int)
    flat = frames[chosen].ravel()
    return flat / max(float(np.linalg.norm(flat)), 1e-8)


def _candidates(summaries: np.ndarray, recording: np.ndarray, n_candidates: int) -> np.ndarray:
    """(i, j) rows: each segment's nearest segments of other recordings (other values
    of `recording`: recordings or voices), by cosine."""
    from sklearn.neighbors import NearestNeighbors

    n = len(summaries)
    # Enough neighbours that n_candidates remain once a recording's own are dropped.
    own_most = int(np.bincount(recording).max())
    k = min(n, n_candidates + own_most)
    _, nearest = NearestNeighbors(n_neighbors=k).fit(summaries).kneighbors(summaries)
    rows = []
    for i in range(n):
        others = nearest[i][recording[nearest[i]] != recording[i]][:n_candidates]
        rows.append(np.stack([np.full(len(others), i), others], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)


def mine_pairs(features: Sequence[np.ndarray], segments: Sequence[np.ndarray], *,
               n_candidates: int = 20, mutual_top: int = 10,
               max_cost: Optional[float] = None, path_step: int = 2,
               learned: Optional[Sequence[np.ndarray]] = None,
               voices: Optional[Sequence[int]] = None,
               progress: bool = False) -> MinedPairs:
    """Match segments across recordings by DTW and align the frames of the matches.

    Args:
        features: one (n_frames, n_mels) log-mel array per recording.
        segments: one (n_segments, 2) array of [start, end) frame bounds per
            recording (`frontend.segments.find_segments`).
        n_candidates: int >= 1. Segments of other recordings compared by DTW with
            each segment. Defaults to 20.
        mutual_top: int >= 1. A pair is kept when each segment is among the other's
            `mutual_top` cheapest. Defaults to 10.
        max_cost: float or None. Keep only pairs at most this far apart (path-
            normalised DTW of unit frames, in [0, 2]). Defaults to None: no limit.
        path_step: int >= 1. Keep every `path_step`-th cell of each path (neighbouring
            cells hold nearly the same windows). Defaults to 2.
        learned: one (n_frames, d) array per recording, frames aligned with
            `features`, or None. When given, segments are matched on these frames
            (L2-normalised) instead of on cepstra. Defaults to None.
        voices: one int per recording (`voice_clusters`), or None. When given, a
            segment's candidates come only from recordings of another voice.
            Defaults to None: from any other recording.
        progress: bool. Show a progress bar over the DTW pairs. Defaults to False.

    Returns:
        `MinedPairs`; empty when fewer than two recordings have segments.

    Raises:
        ParameterError: a setting is out of range, or `features` and `segments` differ
            in length.
    """
    for name, value in (("n_candidates", n_candidates), ("mutual_top", mutual_top),
                        ("path_step", path_step)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(f"Invalid value for `{name}`: expected an integer >= 1, "
                                 f"received {value!r}.")
    for name, value in (("segments", segments), ("learned", learned), ("voices", voices)):
        if value is not None and len(value) != len(features):
            raise ParameterError(f"Invalid value for `{name}`: expected one per "
                                 f"recording ({len(features)}), received {len(value)}.")
    rows = [(r, int(a), int(b)) for r, bounds in enumerate(segments)
            for a, b in np.asarray(bounds).reshape(-1, 2)]
    table = np.asarray(rows, np.int64).reshape(-1, 3)
    empty = MinedPairs(table, np.zeros((0, 2), np.int64), np.zeros(0),
                       np.zeros((0, 5), np.int64))
    apart = table[:, 0] if voices is None else np.asarray(voices, np.int64)[table[:, 0]]
    if len(np.unique(apart)) < 2:
        return empty
    sequences: List[np.ndarray] = (
        [mining_frames(features[r][a:b]) for r, a, b in table] if learned is None
        else [unit_frames(learned[r][a:b]) for r, a, b in table])
    summaries = np.stack([_summary(s) for s in sequences])
    candidates = _candidates(summaries, apart, n_candidates)
    lengths = np.array([len(s) for s in sequences])
    padded = np.zeros((len(sequences), lengths.max(), sequences[0].shape[1]), np.float32)
    for i, sequence in enumerate(sequences):
        padded[i, :len(sequence)] = sequence
    cost = np.concatenate([
        dtw_distance(padded[chunk[:, 0]], padded[chunk[:, 1]],
                     x_lengths=lengths[chunk[:, 0]], y_lengths=lengths[chunk[:, 1]],
                     normalized=True)
        for chunk in tqdm(np.array_split(candidates, max(1, -(-len(candidates) // CHUNK))),
                          desc="DTW on candidate pairs", unit="chunk",
                          disable=not progress)])
    pairs, pair_cost = _mutual(candidates, cost, mutual_top, max_cost)
    frames = []
    for index, (i, j) in enumerate(pairs):
        _, path = dtw_path(sequences[i], sequences[j])
        path = path[::path_step]
        frames.append(np.stack([np.full(len(path), index), np.full(len(path), table[i, 0]),
                                table[i, 1] + path[:, 0], np.full(len(path), table[j, 0]),
                                table[j, 1] + path[:, 1]], axis=1))
    frames = np.concatenate(frames) if frames else np.zeros((0, 5), np.int64)
    return MinedPairs(table, pairs, pair_cost, frames.astype(np.int64))


def join(base: MinedPairs, extra: MinedPairs) -> tuple:
    """Two minings of the same segments as one, with each pair's group.

    The base pairs keep their connected components (`MinedPairs.groups`); an extra
    pair takes the component of its first segment (a segment of no base pair, a group
    of its own), so a cross-voice pair is not pushed away from the pairs linked to
    its own token, and one noisy extra pair cannot merge two components.

    Returns:
        (`MinedPairs` of both, (m,) int64 groups).

    Raises:
        ParameterError: the two minings are of different segments.
    """
    if not np.array_equal(base.segments, extra.segments):
        raise ParameterError("Invalid value for `extra`: expected pairs of the same "
                             "segments as `base`.")
    base_groups = base.groups()
    of_segment = np.arange(len(base.segments), dtype=np.int64) + (
        int(base_groups.max()) + 1 if len(base_groups) else 0)
    of_segment[base.pairs[:, 0]] = base_groups
    of_segment[base.pairs[:, 1]] = base_groups
    frames = extra.frames.copy()
    frames[:, 0] += len(base.pairs)
    both = MinedPairs(base.segments, np.concatenate([base.pairs, extra.pairs]),
                      np.concatenate([base.cost, extra.cost]),
                      np.concatenate([base.frames, frames]))
    return both, np.concatenate([base_groups, of_segment[extra.pairs[:, 0]]])


def _mutual(candidates: np.ndarray, cost: np.ndarray, top: int,
            max_cost: Optional[float]) -> tuple:
    """The candidate pairs each among the other's `top` cheapest (and under max_cost)."""
    best = {}
    order = np.lexsort((candidates[:, 1], cost, candidates[:, 0]))
    for row in order:
        i, j = (int(v) for v in candidates[row])
        chosen = best.setdefault(i, {})
        if len(chosen) < top:
            chosen[j] = float(cost[row])
    kept = sorted((i, j, c) for i, chosen in best.items() for j, c in chosen.items()
                  if i < j and i in best.get(j, {})
                  and (max_cost is None or c <= max_cost))
    if not kept:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    return (np.asarray([(i, j) for i, j, _ in kept], np.int64),
            np.asarray([c for _, _, c in kept]))


def mining_report(mined: MinedPairs, labels: Sequence, speakers: Optional[Sequence] = None) -> dict:
    """How good the mined pairs are against labels the mining never saw.

    Args:
        mined: `mine_pairs`'s result.
        labels: one label per recording (each recording one token, as in FSDD).
        speakers: one speaker per recording, or None.

    Returns:
        {"n_pairs", "n_segments", "n_aligned_frames", "precision" (share of pairs with
        one label), and with speakers "across_speaker_share" and
        "across_speaker_precision"}; shares are None when there is nothing to count.
    """
    labels = np.asarray(labels)
    first, second = mined.segments[mined.pairs[:, 0], 0], mined.segments[mined.pairs[:, 1], 0]
    same = labels[first] == labels[second]
    report = {"n_pairs": len(mined), "n_segments": int(len(mined.segments)),
              "n_aligned_frames": int(len(mined.frames)),
              "precision": float(same.mean()) if len(same) else None}
    if speakers is not None:
        speakers = np.asarray(speakers)
        across = speakers[first] != speakers[second]
        report["across_speaker_share"] = float(across.mean()) if len(across) else None
        report["across_speaker_precision"] = (float(same[across].mean()) if across.any()
                                              else None)
    return report
