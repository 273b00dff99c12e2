"""Window embeddings -> a 2-D map of the space the units were found in.

    embeddings (n, D) ──> rows the clusterer ──> seeded subsample ──> 2-D UMAP ──> UnitMap
                          was fitted on            (<= max_points)      (or PCA)     (index, xy)

The clusterer reduces the embeddings with UMAP (min_dist 0, 15 neighbours, seeded) to
~10 dimensions before HDBSCAN or k-means; the map is a 2-D UMAP with the same settings,
fitted on the same windows, so it shows the neighbourhoods the units were found in
rather than those of a separate method (a t-SNE keeps other neighbours). As with any
UMAP, neighbours are close, but the distances between groups and their sizes are not
meaningful (McInnes, Healy and Melville 2018, arXiv:1802.03426, section 6; "Using
UMAP for Clustering" in the umap documentation). With `reduction="pca"` the map is a
2-D PCA, as the clusterer's reduction then is.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

from discovery.units._checks import _as_array, _check_int, _fail, _is_int
from discovery.units.clustering import MAX_SEED, REDUCTIONS, UMAP_NEIGHBORS

# UMAP's spectral layout needs a few more points than its 2 dimensions.
MIN_MAP_POINTS = 5


class UnitMap(NamedTuple):
    """A 2-D map of some windows of a run.

    Attributes:
        index: (k,) int64. Rows of the window table that are mapped, ascending.
        xy: (k, 2) float64. Their coordinates in the map.
        method: str. One sentence saying how the map was made, for a caption.
    """

    index: np.ndarray
    xy: np.ndarray
    method: str


def fit_map(embeddings: np.ndarray, *, rows: np.ndarray, reduction: str = "umap",
            seed: int = 0, max_points: int = 3000) -> UnitMap:
    """Map a seeded subsample of `rows` of `embeddings` to 2-D with the clusterer's settings.

    Args:
        embeddings: (n, D) finite floats, one row per window (the run's window table).
        rows: (m,) distinct integers in [0, n), m >= 5. The windows to map: those the
            clusterer was fitted on (`UnitClusterer.fit_indices_`, none silent).
        reduction: "umap" (a 2-D UMAP: min_dist 0, n_neighbors 15 or m - 1 if fewer,
            `seed`, one thread, as in the clusterer) or "pca" (a 2-D PCA). Pass the
            run's own reduction. Embeddings of at most 2 dimensions are their own map.
            Defaults to "umap".
        seed: int in [0, 2**32 - 1] (UMAP's limit). Seed of the subsample and of
            UMAP. Defaults to 0.
        max_points: int >= 5. Windows mapped at most: a subsample of `rows`, drawn
            with `seed`, when there are more. UMAP of 3,000 windows takes a few
            seconds. Defaults to 3000.

    Returns:
        `UnitMap` of k = min(max_points, m) windows, `index` ascending.

    Raises:
        ParameterError: an argument is invalid (one line naming it).

    Example:
        >>> clusterer = UnitClusterer().fit(z, silence=p_silence)
        >>> unit_map = fit_map(z, rows=clusterer.fit_indices_, seed=0)
        >>> plots.unit_map(unit_map.xy, clusterer.labels_[unit_map.index])
    """
    table = np.asarray(embeddings)
    if table.ndim != 2 or table.shape[1] < 1:
        _fail("embeddings", "a 2-D array (n windows, D >= 1)", f"shape {table.shape}")
    index = _check_rows(rows, len(table))
    if reduction not in REDUCTIONS:
        _fail("reduction", f"one of {REDUCTIONS}", reduction)
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        _fail("seed", f"an integer in [0, {MAX_SEED}]", seed)
    _check_int("max_points", max_points, MIN_MAP_POINTS)

    m = len(index)
    if m > max_points:
        generator = np.random.default_rng(seed)
        index = np.sort(generator.choice(index, max_points, replace=False))
        sample = f"{max_points:,} of {m:,} windows drawn at random (seed {seed})"
    else:
        sample = f"all {m:,} windows"
    # Only the mapped rows are converted and checked: the table may be large.
    values = _as_array("embeddings", table[index], ndim=2)
    if values.shape[1] <= 2:
        xy = np.pad(values, ((0, 0), (0, 2 - values.shape[1])))
        method = f"The embeddings themselves ({values.shape[1]}-D, no projection) of {sample}."
    elif reduction == "pca":
        from sklearn.decomposition import PCA  # imported here, as umap is below

        xy = PCA(n_components=2, random_state=seed).fit_transform(values)
        method = (f"A 2-D PCA of the embeddings of {sample}, as the clustering reduced them "
                  "with PCA: a linear projection on the two directions of largest variance, "
                  "so groups apart in other directions may overlap here.")
    else:
        neighbours = min(UMAP_NEIGHBORS, len(index) - 1)
        xy = _umap_2d(values, neighbours=neighbours, seed=seed)
        method = (f"A 2-D UMAP of the embeddings of {sample}, with the clustering's settings "
                  f"(min_dist 0, {neighbours} neighbours, seed {seed}): the same windows and "
                  "neighbourhoods the units were found in; as with any UMAP, distances "
                  "between groups and their sizes are not meaningful.")
    return UnitMap(index.astype(np.int64), np.asarray(xy, dtype=np.float64), method)


def _check_rows(rows: Any, n: int) -> np.ndarray:
    """`rows` as sorted int64 indices into n windows, after checking them."""
    index = _as_array("rows", rows, ndim=1, dtype=np.int64)
    if len(index) < MIN_MAP_POINTS:
        _fail("rows", f"at least {MIN_MAP_POINTS} windows to map", len(index))
    if index.min() < 0 or index.max() >= n:
        _fail("rows", f"indices in [0, {n - 1}] (one per window)",
              f"values in [{index.min()}, {index.max()}]")
    index = np.sort(index)
    if np.any(np.diff(index) == 0):
        _fail("rows", "distinct indices", f"{len(index) - len(np.unique(index))} repeated")
    return index


def _umap_2d(values: np.ndarray, *, neighbours: int, seed: int) -> np.ndarray:
    """2-D UMAP of `values` (k, D) with the clusterer's settings, given exact neighbours.

    Below 4,096 points umap finds the neighbours by calling its distance function from
    Python once per pair: 9 million calls for 3,000 points, most of the 19 s such a
    map took on 2 shared cores. scikit-learn's exact nearest neighbours take 0.2 s and
    give umap the same graph: the map took 4.4-5.9 s and is as good (trustworthiness
    0.995 either way; sklearn.manifold.trustworthiness, 15 neighbours).
    """
    import umap  # imported here: it loads numba and compiles on first use
    from sklearn.neighbors import NearestNeighbors

    nearest = NearestNeighbors(n_neighbors=neighbours).fit(values)
    distances, indices = nearest.kneighbors(values)  # each point among its own, as in umap
    reducer = umap.UMAP(n_components=2, n_neighbors=neighbours, min_dist=0.0,
                        random_state=seed, n_jobs=1, precomputed_knn=(indices, distances))
    with warnings.catch_warnings():
        # The map never places new windows, so the missing search index does not matter.
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        return reducer.fit_transform(values)
