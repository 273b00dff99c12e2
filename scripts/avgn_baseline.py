"""The plain AVGN-style pipeline, no learning at all: the baseline `bench_discovery.py`
measures the segment level against.

    recording --energy_segments--> segments (one threshold on band-limited frame energy)
      --segment_images--> each segment's log-mel resized to a fixed image, flattened
      --UMAP to 2-D (min_dist 0)--> HDBSCAN, and k-means with k = the number of labels

Sainburg, Thielk and Gentner 2020, "Finding, visualizing, and quantifying latent
structure across diverse animal vocal repertoires", PLOS Comput Biol 16(10): e1008228
(AVGN), with an energy segmenter in place of hand segments. Two departures from AVGN,
both to compare like with like: HDBSCAN's smallest cluster is the one our pipeline
uses at the segment level (3 % of the segments, at least 5; AVGN uses 1 % and
min_samples 1), and the features are the model bundle's normalised log-mel (its
band, frame and dynamic range), not AVGN's own spectrogram.

The segmenter has ONE threshold per recording, where ours (`frontend.segments`) has
two (hysteresis) and cuts runs at the energy minimum between loud parts:

    threshold = floor + 0.25 * (loud - floor)

with floor and loud the 10th and 99th percentiles of the recording's frame energy (dB,
digitally silent frames left out, as ours does). A segment is a run of frames above
it; runs closer than MERGE_GAP_SECONDS are joined (at 8-10 ms frames no gap is that
short, so none are) and runs shorter than the model's `segments.min_seconds` dropped;
no run is cut for being long. 0.25 sits between our low (0.1) and high (0.3)
thresholds: one threshold has to be high enough to part syllables 10 ms apart and
low enough to keep soft onsets and tails. On the shared finch songs it finds 505
segments for 504 annotated syllables but leaves 5.5 % of the annotated frames out,
where ours leaves 1.5 % (`bench_discovery.py`: coverage with k-means, which gives
every segment a unit).

Imported by `scripts/bench_discovery.py` (scripts/ is on its import path).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from discovery.config import MAX_SEGMENT_SECONDS, SegmentConfig, SilenceConfig
from discovery.frontend.segments import find_segments, segment_images
from discovery.pipeline import MIN_SEGMENT_CLUSTER, SEGMENT_CLUSTER_SHARE

# The single threshold's place between each recording's floor (0) and loud level (1).
THRESHOLD = 0.25
FLOOR_PERCENTILE = 10.0
LOUD_PERCENTILE = 99.0
# Gaps shorter than this are joined: AVGN's segmenter closes gaps of a few ms.
MERGE_GAP_SECONDS = 0.005
# UMAP's neighbours (umap's default, as in AVGN) and HDBSCAN's smallest cluster, as a
# share of the segments and at least MIN_CLUSTER: what `discovery.pipeline` uses, so
# the baseline and ours differ only in what the table says they differ in.
UMAP_NEIGHBORS = 15
CLUSTER_SHARE = SEGMENT_CLUSTER_SHARE
MIN_CLUSTER = MIN_SEGMENT_CLUSTER
KMEANS_INITS = 10


def energy_segments(energy_db: np.ndarray, *, frame_rate: float, min_seconds: float,
                    digital_silence: Optional[np.ndarray] = None) -> np.ndarray:
    """One recording's segments from a single energy threshold, in feature frames.

    `find_segments` with both hysteresis thresholds at THRESHOLD is exactly this: every
    run above it is its own loud part, so nothing is cut; runs closer than
    MERGE_GAP_SECONDS are joined, shorter ones than `min_seconds` dropped, none split.

    Args:
        energy_db: (n_frames,) band-limited frame energy in dB.
        frame_rate: float > 0. Frames per second.
        min_seconds: float >= 0. Shorter runs are dropped, in seconds.
        digital_silence: (n_frames,) bool or None. Frames that are never sound and take
            no part in the percentiles. Defaults to None: none.

    Returns:
        (n_segments, 2) int64 `[start, end)` frame bounds, sorted, not overlapping.
    """
    one_threshold = SilenceConfig(low_threshold=THRESHOLD, high_threshold=THRESHOLD,
                                  floor_percentile=FLOOR_PERCENTILE,
                                  loud_percentile=LOUD_PERCENTILE)
    settings = SegmentConfig(merge_gap_seconds=MERGE_GAP_SECONDS, min_seconds=min_seconds,
                             max_seconds=MAX_SEGMENT_SECONDS)
    return find_segments(energy_db, frame_rate=frame_rate, silence=one_threshold,
                         segments=settings, digital_silence=digital_silence)


def segment_vectors(values: np.ndarray, bounds: np.ndarray, n_frames: int) -> np.ndarray:
    """(n, n_frames * F) float32: each segment's features as a fixed-size image,
    flattened (AVGN's spectrogram image, here the model's log-mel)."""
    images = segment_images(values, bounds, n_frames)
    return images.reshape(len(bounds), -1)


class Clustered(NamedTuple):
    """Units of the segments: HDBSCAN's (-1 noise) and k-means', and the 2-D map."""

    hdbscan: np.ndarray
    kmeans: np.ndarray
    projection: np.ndarray


def cluster_segments(vectors: np.ndarray, *, n_clusters: int, seed: int) -> Clustered:
    """UMAP to 2-D, then HDBSCAN and k-means on the same projection, as AVGN does.

    Args:
        vectors: (n, d) one row per segment.
        n_clusters: int >= 2. k for k-means (the number of annotated labels).
        seed: int >= 0. Seeds UMAP and k-means.

    Returns:
        `Clustered`.
    """
    import hdbscan
    import umap  # here: it compiles with numba on first use
    from sklearn.cluster import KMeans

    # UMAP needs fewer neighbours than points.
    neighbours = min(UMAP_NEIGHBORS, len(vectors) - 1)
    projection = umap.UMAP(n_components=2, n_neighbors=neighbours, min_dist=0.0,
                           random_state=seed).fit_transform(vectors)
    size = max(MIN_CLUSTER, int(round(CLUSTER_SHARE * len(vectors))))
    density = hdbscan.HDBSCAN(min_cluster_size=size).fit(projection).labels_
    means = KMeans(n_clusters=n_clusters, n_init=KMEANS_INITS,
                   random_state=seed).fit_predict(projection)
    return Clustered(density.astype(np.int64), means.astype(np.int64), projection)
