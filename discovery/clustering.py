"""Window embeddings -> units: reduce (UMAP or PCA), cluster (HDBSCAN or k-means), merge.

    embeddings (n, D) ──> leave out silence ──> UMAP / PCA to ~10 dims ──> HDBSCAN
    + silence (n,)         (labelled -1)         (skipped when D <= 10)      or k-means
                                                                                │
                                                                                v
    labels (n,), probabilities (n,) ──> merge_units ──> occurrences ──> unit_table

HDBSCAN (Campello, Moulavi and Sander 2013, "Density-based clustering based on
hierarchical density estimates", PAKDD; McInnes, Healy and Astels 2017, "hdbscan:
Hierarchical density based clustering", JOSS 2(11):205) finds the number of units
itself and leaves outliers as noise (-1). Its cost grows quickly with dimension and
size: embeddings are reduced to ~10 dimensions first, and above `max_fit_points`
windows it is fitted on a seeded subsample and the other windows are placed into the
fitted clusters with `hdbscan.approximate_predict`, as the hdbscan documentation
advises for new points ("Predicting clusters for new points",
https://hdbscan.readthedocs.io/en/latest/prediction_tutorial.html). k-means is the
alternative when every window should get a unit; its k is given or chosen by
silhouette on a subsample.

UMAP (McInnes, Healy and Melville 2018, "UMAP: Uniform Manifold Approximation and
Projection for Dimension Reduction", arXiv:1802.03426) before HDBSCAN is what the umap
documentation advises for clustering ("Using UMAP for Clustering": min_dist 0, a
few more dimensions than two) and what AVGN does with vocalisation embeddings. On
the shared speech and finch recordings it raised HDBSCAN's frame-level NMI several
times over PCA's (docs/benchmarks.md); PCA stays as the quick, linear choice.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import hdbscan
import numpy as np
from tqdm.auto import tqdm
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import pairwise_distances, silhouette_score
from sklearn.utils.validation import check_is_fitted

from discovery.errors import ParameterError

METHODS = ("hdbscan", "kmeans")
REDUCTIONS = ("umap", "pca")
UMAP_NEIGHBORS = 15  # umap's default: local structure at the scale of a few syllables
TRANSFORM_BATCH = 5_000  # windows per UMAP transform call: bounds its memory
PREDICT_BATCH = 10_000  # windows per hdbscan.approximate_predict call, likewise
SELECTION_METHODS = ("eom", "leaf")
MIN_WINDOWS = 10  # fewer non-silent windows than this cannot show any structure
N_EXEMPLARS = 8
SILHOUETTE_POINTS = 5_000  # silhouette is O(n^2): score k on at most this many windows
TIME_TOLERANCE_S = 1e-6  # window times are floats: touching windows may differ by ulps


def _fail(name: str, expected: str, value: Any) -> None:
    raise ParameterError(f"Invalid value for `{name}`: expected {expected}, "
                         f"received {value!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_int(value) or value < low:
        _fail(name, f"an integer >= {low}" + (" or None" if optional else ""), value)


def _as_array(name: str, value: Any, *, ndim: int, dtype=np.float64) -> np.ndarray:
    """`value` as a finite numeric array of `ndim` dimensions."""
    array = np.asarray(value)
    kinds = "iu" if np.dtype(dtype).kind in "iu" else "biuf"
    if array.dtype.kind not in kinds and array.size:
        _fail(name, "an integer array" if kinds == "iu" else "a numeric array",
              f"an array of dtype {array.dtype}")
    if array.ndim != ndim:
        _fail(name, f"a {ndim}-D array", f"shape {array.shape}")
    array = array.astype(dtype, copy=False)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        _fail(name, "finite values", "NaN or infinity")
    return array


class UnitClusterer(ClusterMixin, BaseEstimator):
    """Group window embeddings into units, leaving silence and outliers out (-1).

    Follows the scikit-learn estimator contract: `__init__` only stores its
    arguments, `fit` validates them and the data and returns `self`, learned
    attributes end in `_`. Unlike scikit-learn's `predict`, `predict` returns
    `(labels, probabilities)`.

    Args:
        method: "hdbscan" (finds the number of units, leaves outliers as noise) or
            "kmeans" (every non-silent window gets a unit). Defaults to "hdbscan".
        reduction: "umap" (non-linear; keeps the neighbourhoods density-based
            clustering needs) or "pca" (linear, fast). Defaults to "umap".
        n_components: int >= 1 or None. Dimensions kept before clustering; reduction
            is skipped when the embeddings have at most this many dimensions, and
            None never reduces. HDBSCAN degrades above ~50 dimensions. Defaults to 10.
        whiten: bool. Scale the PCA components to unit variance (PCA only).
            Defaults to False.
        n_clusters: int >= 2 or None. k for k-means; None chooses k in `k_range` by
            the best silhouette score. Ignored by HDBSCAN. Defaults to None.
        k_range: (low, high) integers, 2 <= low <= high. Values of k tried when
            `n_clusters` is None, scored on a seeded subsample of at most 5,000
            windows. Defaults to (2, 20).
        min_cluster_size: int >= 2 or None. HDBSCAN's smallest unit, in windows of
            the whole (non-silent) set. None: `max(5, n // 200)` for n non-silent
            windows, so a unit is at least 0.5 % of the data. Defaults to None.
        min_samples: int >= 1 or None. HDBSCAN's density smoothing (larger is more
            conservative: more noise); None uses `min_cluster_size`. Defaults to None.
        cluster_selection_method: "eom" (excess of mass, fewer larger units) or
            "leaf" (many small homogeneous units). Defaults to "eom".
        silence_threshold: float in (0, 1]. Windows whose silence probability is
            >= this are left out of clustering and labelled -1. Defaults to 0.5.
        max_fit_points: int >= 100 or None. Fit UMAP and HDBSCAN on a seeded subsample
            of at most this many windows and place the rest with UMAP's `transform`
            and HDBSCAN's `approximate_predict`;
            `min_cluster_size` and `min_samples` are scaled to the subsample. None
            fits on all windows. With 10,000, clustering an hour of windows (45,000 x
            32) took 39 s on 2 cores, numba's first compilation included.
            Defaults to 10_000.
        random_state: int or None. Seed for subsamples, UMAP, PCA and k-means.
            Defaults to 0.
        verbose: bool. Print each stage on stderr (with a progress bar while UMAP
            places the windows outside its fit). Defaults to False.

    Attributes:
        labels_: (n,) int64. Unit of each window; -1 for silence and noise.
        probabilities_: (n,) float64 in [0, 1]. HDBSCAN: membership strength (0 for
            noise; windows placed by `approximate_predict` get its probability).
            k-means: `1 - d1 / d2`, with d1, d2 the distances to the nearest and
            second-nearest centroids (1 at a centroid, 0 on a boundary).
            0 for silence.
        is_silence_: (n,) bool. Windows left out as silence.
        n_clusters_: int. Units found (may be 0 with HDBSCAN).
        cluster_sizes_: (n_clusters_,) int64. Windows per unit.
        exemplars_: dict unit -> (<= 8,) int64 indices of the unit's most
            representative windows, best first. k-means: nearest to the centroid.
            HDBSCAN: highest membership probability, ties (many core windows have
            probability 1) broken by distance to the mean of the unit's
            highest-probability windows. Distances are in the reduced space.
        reducer_: fitted `umap.UMAP` or `PCA`, or None when no reduction was needed.
        clusterer_: fitted `hdbscan.HDBSCAN` or `sklearn.cluster.KMeans`.
        silhouette_scores_: dict k -> silhouette score when k was chosen, else None.
        fit_indices_: (m,) int64. Windows UMAP and HDBSCAN were fitted on (the rest
            were placed with `transform` and `approximate_predict`); k-means is fitted
            on all non-silent windows.
        min_cluster_size_, min_samples_: int or None. HDBSCAN's values on the fit
            windows, after the default rule and scaling; None for k-means.
        n_features_in_: int. Embedding dimensions seen in `fit`.

    Example:
        >>> clusterer = UnitClusterer(method="hdbscan").fit(z, silence=p_silence)
        >>> labels, confidence = clusterer.predict(z_new, silence=p_new)
    """

    def __init__(self, *, method: str = "hdbscan", reduction: str = "umap",
                 n_components: Optional[int] = 10, whiten: bool = False,
                 n_clusters: Optional[int] = None,
                 k_range: tuple = (2, 20), min_cluster_size: Optional[int] = None,
                 min_samples: Optional[int] = None,
                 cluster_selection_method: str = "eom", silence_threshold: float = 0.5,
                 max_fit_points: Optional[int] = 10_000,
                 random_state: Optional[int] = 0, verbose: bool = False):
        self.method = method
        self.reduction = reduction
        self.n_components = n_components
        self.whiten = whiten
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.silence_threshold = silence_threshold
        self.max_fit_points = max_fit_points
        self.random_state = random_state
        self.verbose = verbose

    def _say(self, message: str) -> None:
        if self.verbose:
            print(f"clustering: {message}", file=sys.stderr, flush=True)

    # -- validation ---------------------------------------------------------------

    def _check_params(self) -> None:
        if self.method not in METHODS:
            _fail("method", f"one of {METHODS}", self.method)
        if self.reduction not in REDUCTIONS:
            _fail("reduction", f"one of {REDUCTIONS}", self.reduction)
        _check_int("n_components", self.n_components, 1, optional=True)
        if not isinstance(self.whiten, (bool, np.bool_)):
            _fail("whiten", "True or False", self.whiten)
        _check_int("n_clusters", self.n_clusters, 2, optional=True)
        k_range = self.k_range
        if (not isinstance(k_range, (tuple, list)) or len(k_range) != 2
                or not all(_is_int(k) for k in k_range)
                or not 2 <= k_range[0] <= k_range[1]):
            _fail("k_range", "two integers (low, high) with 2 <= low <= high", k_range)
        _check_int("min_cluster_size", self.min_cluster_size, 2, optional=True)
        _check_int("min_samples", self.min_samples, 1, optional=True)
        if self.cluster_selection_method not in SELECTION_METHODS:
            _fail("cluster_selection_method", f"one of {SELECTION_METHODS}",
                  self.cluster_selection_method)
        threshold = self.silence_threshold
        if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                or not 0 < threshold <= 1):
            _fail("silence_threshold", "a number in (0, 1]", threshold)
        _check_int("max_fit_points", self.max_fit_points, 100, optional=True)
        _check_int("random_state", self.random_state, 0, optional=True)
        if not isinstance(self.verbose, (bool, np.bool_)):
            _fail("verbose", "True or False", self.verbose)

    def _check_data(self, embeddings: Any, silence: Any) -> tuple:
        """(embeddings (n, D) float64, is_silence (n,) bool)."""
        x = _as_array("embeddings", embeddings, ndim=2)
        if x.shape[1] < 1:
            _fail("embeddings", "at least one feature column", f"shape {x.shape}")
        if silence is None:
            return x, np.zeros(len(x), dtype=bool)
        p = _as_array("silence", silence, ndim=1)
        if len(p) != len(x):
            _fail("silence", f"one probability per window, shape ({len(x)},)",
                  f"shape {p.shape}")
        if np.any((p < 0) | (p > 1)):
            _fail("silence", "probabilities in [0, 1]",
                  f"values in [{p.min():g}, {p.max():g}]")
        return x, p >= self.silence_threshold

    # -- fitting ------------------------------------------------------------------

    def fit(self, embeddings: Any, y: Any = None, *,
            silence: Any = None) -> "UnitClusterer":
        """Cluster the non-silent windows.

        Args:
            embeddings: (n, D) finite floats, one row per window.
            y: ignored; present for scikit-learn compatibility.
            silence: (n,) silence probabilities in [0, 1], or None (no silence).

        Returns:
            self.

        Raises:
            ParameterError: for an invalid argument, or fewer than 10 non-silent
                windows (or fewer than the method needs).
        """
        # A failed refit must not leave a mix of old and new learned attributes.
        for name in [name for name in vars(self) if name.endswith("_")
                     and not name.startswith("_")]:
            delattr(self, name)
        self._check_params()
        x, is_silence = self._check_data(embeddings, silence)
        keep = np.flatnonzero(~is_silence)
        if len(keep) < MIN_WINDOWS:
            _fail("embeddings", f"at least {MIN_WINDOWS} windows that are not silence",
                  f"{len(keep)} of {len(x)}")
        self.n_features_in_ = x.shape[1]
        fit_rows = self._fit_rows(len(keep))
        z = self._reduce(x[keep], fit_rows)
        if self.method == "hdbscan":
            labels, probabilities, centres = self._fit_hdbscan(z, fit_rows)
        else:
            labels, probabilities, centres = self._fit_kmeans(z)

        n = len(x)
        self.fit_indices_ = keep[self.fit_indices_]
        self.is_silence_ = is_silence
        self.labels_ = np.full(n, -1, dtype=np.int64)
        self.labels_[keep] = labels
        self.probabilities_ = np.zeros(n, dtype=np.float64)
        self.probabilities_[keep] = np.clip(probabilities, 0.0, 1.0)
        self.n_clusters_ = int(labels.max()) + 1 if len(labels) else 0
        self.cluster_sizes_ = np.bincount(labels[labels >= 0],
                                          minlength=self.n_clusters_).astype(np.int64)
        # k-means ranks by distance to the centroid alone; HDBSCAN by membership first.
        ranking = None if centres is not None else self.probabilities_[keep]
        self.exemplars_ = _exemplars(z, labels, keep, centres=centres, ranking=ranking)
        return self

    def _fit_rows(self, n: int) -> np.ndarray:
        """Rows UMAP and HDBSCAN are fitted on: all, or a seeded subsample."""
        if self.max_fit_points is None or n <= self.max_fit_points:
            return np.arange(n)
        rng = np.random.default_rng(self.random_state)
        return np.sort(rng.choice(n, self.max_fit_points, replace=False))

    def _reduce(self, x: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
        """Fit `reducer_` and return the reduced (n, d) embeddings."""
        self.reducer_ = None
        if self.n_components is None or x.shape[1] <= self.n_components:
            return x
        self._say(f"{self.reduction.upper()} from {x.shape[1]} to {self.n_components} "
                  f"dimensions, fitted on {len(fit_rows):,} of {len(x):,} windows")
        if self.reduction == "pca":
            self.reducer_ = PCA(n_components=min(self.n_components, len(x)),
                                whiten=bool(self.whiten), random_state=self.random_state)
            return self.reducer_.fit_transform(x)
        import umap  # imported here: it compiles with numba on first use

        # UMAP needs more points than dimensions + 1 and neighbours than points.
        n_components = min(self.n_components, len(fit_rows) - 2)
        self.reducer_ = umap.UMAP(
            n_components=n_components, n_neighbors=min(UMAP_NEIGHBORS, len(fit_rows) - 1),
            min_dist=0.0, random_state=self.random_state, transform_seed=self.random_state,
            n_jobs=1)
        z = np.empty((len(x), n_components))
        z[fit_rows] = self.reducer_.fit_transform(x[fit_rows])
        rest = np.setdiff1d(np.arange(len(x)), fit_rows)
        if len(rest):
            z[rest] = self._transform(x[rest])
        return z

    def _transform(self, x: np.ndarray) -> np.ndarray:
        """Reduce new rows with the fitted reducer; UMAP in batches, since one call
        on 35,000 windows took over a minute and 600 MB more than batches did."""
        if self.reducer_ is None:
            return x
        if isinstance(self.reducer_, PCA):
            return self.reducer_.transform(x)
        starts = range(0, len(x), TRANSFORM_BATCH)
        if self.verbose and len(starts) > 1:
            starts = tqdm(starts, desc="clustering: placing windows", unit="batch",
                          file=sys.stderr, dynamic_ncols=True)
        return np.concatenate([self.reducer_.transform(x[start:start + TRANSFORM_BATCH])
                               for start in starts])

    def _fit_hdbscan(self, z: np.ndarray, fit_rows: np.ndarray) -> tuple:
        n = len(z)
        fraction = len(fit_rows) / n
        size = self.min_cluster_size if self.min_cluster_size is not None else max(
            5, n // 200)
        # Counted in windows of the whole set; a subsample is proportionally sparser.
        self.min_cluster_size_ = max(2, int(round(size * fraction)))
        self.min_samples_ = (None if self.min_samples is None
                             else max(1, int(round(self.min_samples * fraction))))
        # approximate_predict looks up 2 * min_samples neighbours among the fit windows.
        limit = f"at most half the {len(fit_rows)} windows HDBSCAN is fitted on"
        if 2 * self.min_cluster_size_ > len(fit_rows) and self.min_samples_ is None:
            _fail("min_cluster_size", limit, size)
        if self.min_samples_ is not None and 2 * self.min_samples_ > len(fit_rows):
            _fail("min_samples", limit, self.min_samples)
        self._say(f"HDBSCAN on {len(fit_rows):,} windows (min_cluster_size "
                  f"{self.min_cluster_size_})")
        self.clusterer_ = hdbscan.HDBSCAN(
            min_cluster_size=self.min_cluster_size_, min_samples=self.min_samples_,
            cluster_selection_method=self.cluster_selection_method,
            prediction_data=True).fit(z[fit_rows])
        labels = np.full(n, -1, dtype=np.int64)
        probabilities = np.zeros(n)
        labels[fit_rows] = self.clusterer_.labels_
        probabilities[fit_rows] = self.clusterer_.probabilities_
        rest = np.setdiff1d(np.arange(n), fit_rows)
        if len(rest):
            self._say(f"placing {len(rest):,} more windows into the "
                      f"{int(self.clusterer_.labels_.max()) + 1} units")
            labels[rest], probabilities[rest] = self._place(z[rest])
        self.fit_indices_ = fit_rows
        self.silhouette_scores_ = None
        return labels, probabilities, None

    def _place(self, z: np.ndarray) -> tuple:
        """HDBSCAN labels and probabilities of reduced points `z` (m, d)."""
        if len(z) == 0 or self.clusterer_.labels_.max() < 0:
            return np.full(len(z), -1, dtype=np.int64), np.zeros(len(z))
        # In batches: one call builds (m, 2 * min_samples) neighbour arrays, about 300 MB
        # for the 170,000 windows of 4 hours placed at once.
        placed = [hdbscan.approximate_predict(self.clusterer_, z[start:start + PREDICT_BATCH])
                  for start in range(0, len(z), PREDICT_BATCH)]
        return (np.concatenate([labels for labels, _ in placed]).astype(np.int64),
                np.concatenate([p for _, p in placed]).astype(np.float64))

    def _fit_kmeans(self, z: np.ndarray) -> tuple:
        n = len(z)
        k = self.n_clusters
        self.silhouette_scores_ = None
        if k is None:
            self._say(f"choosing k in {tuple(self.k_range)} by silhouette")
            k, self.silhouette_scores_ = self._choose_k(z)
        elif k > n:
            _fail("n_clusters", f"at most the number of non-silent windows ({n})", k)
        self._say(f"k-means with k = {k} on {n:,} windows")
        self.clusterer_ = KMeans(n_clusters=k, n_init=4,
                                 random_state=self.random_state).fit(z)
        self.min_cluster_size_ = self.min_samples_ = None
        self.fit_indices_ = np.arange(n)
        labels, probabilities = self._kmeans_predict(z)
        return labels, probabilities, list(self.clusterer_.cluster_centers_)

    def _choose_k(self, z: np.ndarray) -> tuple:
        """(best k, {k: silhouette}) over `k_range`, scored on a seeded subsample."""
        rng = np.random.default_rng(self.random_state)
        sample = z if len(z) <= SILHOUETTE_POINTS else z[
            rng.choice(len(z), SILHOUETTE_POINTS, replace=False)]
        low, high = self.k_range
        high = min(high, len(sample) - 1)  # silhouette needs k < n
        if low > high:
            _fail("k_range", f"values below the number of non-silent windows "
                  f"({len(sample)})", self.k_range)
        # One distance matrix serves every k (float32: 100 MB at 5,000 windows).
        distances = pairwise_distances(sample).astype(np.float32)
        scores = {}
        for k in range(low, high + 1):
            labels = KMeans(n_clusters=k, n_init=2,
                            random_state=self.random_state).fit_predict(sample)
            scores[k] = (float(silhouette_score(distances, labels, metric="precomputed"))
                         if len(np.unique(labels)) > 1 else -1.0)
        return max(scores, key=scores.get), scores

    def _kmeans_predict(self, z: np.ndarray) -> tuple:
        distances = self.clusterer_.transform(z)
        labels = distances.argmin(axis=1).astype(np.int64)
        nearest = np.sort(distances, axis=1)[:, :2]
        with np.errstate(divide="ignore", invalid="ignore"):
            confidence = np.where(nearest[:, 1] > 0, 1 - nearest[:, 0] / nearest[:, 1], 0.0)
        return labels, confidence

    # -- prediction ---------------------------------------------------------------

    def predict(self, embeddings: Any, *, silence: Any = None) -> tuple:
        """Place new windows into the fitted units.

        HDBSCAN uses `hdbscan.approximate_predict` (new windows join the existing
        clusters; they do not change them); k-means takes the nearest centroid.

        Args:
            embeddings: (m, D) finite floats with the D seen in `fit`.
            silence: (m,) silence probabilities in [0, 1], or None.

        Returns:
            (labels (m,) int64, -1 for silence and noise; probabilities (m,) float64
            in [0, 1], as `probabilities_`).

        Raises:
            sklearn.exceptions.NotFittedError: before `fit`.
            ParameterError: for invalid embeddings or silence.
        """
        check_is_fitted(self, "labels_")
        x, is_silence = self._check_data(embeddings, silence)
        if x.shape[1] != self.n_features_in_:
            _fail("embeddings", f"{self.n_features_in_} columns, as in fit",
                  f"shape {x.shape}")
        labels = np.full(len(x), -1, dtype=np.int64)
        probabilities = np.zeros(len(x))
        keep = np.flatnonzero(~is_silence)
        if len(keep):
            z = self._transform(x[keep])
            placed = (self._kmeans_predict(z) if isinstance(self.clusterer_, KMeans)
                      else self._place(z))
            labels[keep], probabilities[keep] = placed
        return labels, np.clip(probabilities, 0.0, 1.0)


def _exemplars(z: np.ndarray, labels: np.ndarray, index: np.ndarray, *,
               centres: Optional[list], ranking: Optional[np.ndarray]) -> dict:
    """unit -> indices (into `index`) of up to `N_EXEMPLARS` representative rows of z."""
    exemplars = {}
    for unit in range(int(labels.max()) + 1 if len(labels) else 0):
        members = np.flatnonzero(labels == unit)
        score = np.zeros(len(members)) if ranking is None else ranking[members]
        if centres is not None:
            centre = centres[unit]
        else:
            centre = z[members[score >= score.max()]].mean(axis=0)
        distance = np.linalg.norm(z[members] - centre, axis=1)
        best = np.lexsort((distance, -score))[:N_EXEMPLARS]
        exemplars[unit] = index[members[best]].astype(np.int64)
    return exemplars


# -- units in time ------------------------------------------------------------------

# Occurrences and unit tables are dicts of equal-length arrays: they go straight into
# the report and `units.csv` and need no class of their own.
OCCURRENCE_KEYS = ("file", "start_s", "end_s", "unit", "confidence", "n_windows")
UNIT_TABLE_KEYS = ("unit", "count", "n_windows", "total_duration_s", "mean_duration_s",
                   "mean_confidence")


def merge_units(file_index: Any, start_s: Any, end_s: Any, labels: Any,
                probabilities: Any, *, max_gap_s: float = 0.0,
                min_windows: int = 1) -> dict:
    """Merge runs of consecutive windows with the same unit into occurrences.

    Windows are put in order by recording, then start (stably). Two windows are
    consecutive when they are neighbours in that order, belong to one recording,
    and the second starts at most `max_gap_s` after the first ends: overlapping or
    touching windows (hop <= window length) always are. A -1 window (silence or
    noise) is never a unit and always ends a run, so a syllable repeated after a
    short silence gives two occurrences.

    Args:
        file_index: (n,) integer recording index of each window.
        start_s: (n,) window starts, in seconds.
        end_s: (n,) window ends, in seconds, >= `start_s`.
        labels: (n,) integer units, -1 for silence and noise.
        probabilities: (n,) unit probabilities in [0, 1].
        max_gap_s: float >= 0. Largest time gap between neighbouring windows of a
            run, in seconds (plus 1 microsecond for rounding); matters only where
            windows do not overlap or were left out upstream. Defaults to 0.0.
        min_windows: int >= 1. Runs of fewer windows are dropped. Defaults to 1.

    Returns:
        dict of (k,) arrays, one entry per occurrence, ordered by recording, then
        start: `file` int64 recording index; `start_s`, `end_s` float64, the span
        the run's windows stand for (overlapping windows split their overlap at the
        midpoint between centres, so occurrences never overlap; a recording's first
        and last window keep their outer edge); `unit` int64 (>= 0);
        `confidence` float64, mean probability of the occurrence's windows;
        `n_windows` int64.

    Raises:
        ParameterError: for arrays of different lengths or invalid values.
    """
    file_index = _as_array("file_index", file_index, ndim=1, dtype=np.int64)
    labels = _as_array("labels", labels, ndim=1, dtype=np.int64)
    start_s = _as_array("start_s", start_s, ndim=1)
    end_s = _as_array("end_s", end_s, ndim=1)
    probabilities = _as_array("probabilities", probabilities, ndim=1)
    n = len(file_index)
    for name, array in (("start_s", start_s), ("end_s", end_s), ("labels", labels),
                        ("probabilities", probabilities)):
        if len(array) != n:
            _fail(name, f"one value per window, shape ({n},)", f"shape {array.shape}")
    if np.any(end_s < start_s):
        _fail("end_s", "values >= start_s", f"{int(np.sum(end_s < start_s))} earlier")
    if np.any(labels < -1):
        _fail("labels", "units >= 0 or -1", f"minimum {labels.min()}")
    if np.any((probabilities < 0) | (probabilities > 1)):
        _fail("probabilities", "values in [0, 1]",
              f"values in [{probabilities.min():g}, {probabilities.max():g}]")
    if (isinstance(max_gap_s, bool) or not isinstance(max_gap_s, (int, float))
            or not 0 <= max_gap_s < np.inf):
        _fail("max_gap_s", "a finite number >= 0", max_gap_s)
    _check_int("min_windows", min_windows, 1)

    order = np.lexsort((start_s, file_index))
    file_index, start_s, end_s = file_index[order], start_s[order], end_s[order]
    labels, probabilities = labels[order], probabilities[order]
    unit = labels >= 0
    # A run starts at a unit window unless its predecessor continues it.
    continues = np.zeros(n, dtype=bool)
    continues[1:] = (unit[1:] & (labels[1:] == labels[:-1])
                     & (file_index[1:] == file_index[:-1])
                     & (start_s[1:] - end_s[:-1] <= max_gap_s + TIME_TOLERANCE_S))
    first = np.flatnonzero(unit & ~continues)
    run = np.cumsum(unit & ~continues) - 1  # run of each unit window
    members = np.flatnonzero(unit)
    n_windows = np.bincount(run[members], minlength=len(first))
    last = first + n_windows - 1
    confidence = np.bincount(run[members], weights=probabilities[members],
                             minlength=len(first)) / np.maximum(n_windows, 1)
    keep = n_windows >= min_windows
    owned_start, owned_end = _owned_spans(file_index, start_s, end_s)
    return {"file": file_index[first][keep], "start_s": owned_start[first][keep],
            "end_s": owned_end[last][keep], "unit": labels[first][keep],
            "confidence": confidence[keep], "n_windows": n_windows[keep].astype(np.int64)}


def _owned_spans(file_index: np.ndarray, start_s: np.ndarray, end_s: np.ndarray) -> tuple:
    """The part of the timeline each window stands for: overlapping windows split the
    overlap at the midpoint between their centres, so occurrences never overlap; the
    first and last window of a recording keep their outer edges."""
    owned_start, owned_end = start_s.copy(), end_s.copy()
    same = file_index[1:] == file_index[:-1]
    centre = (start_s + end_s) / 2
    boundary = np.clip((centre[:-1] + centre[1:]) / 2, start_s[1:], end_s[:-1])
    # Windows that do not overlap keep their own edges.
    split = same & (start_s[1:] < end_s[:-1])
    owned_end[:-1][split] = boundary[split]
    owned_start[1:][split] = boundary[split]
    return owned_start, owned_end


def unit_table(occurrences: dict) -> dict:
    """Count the occurrences of each unit and their durations.

    Args:
        occurrences: dict of (k,) arrays from `merge_units` (at least `unit`,
            `start_s`, `end_s`, `confidence` and `n_windows`).

    Returns:
        dict of (u,) arrays, one entry per unit that occurs, in unit order: `unit`
        int64; `count` int64 occurrences; `n_windows` int64 windows in them;
        `total_duration_s`, `mean_duration_s` float64 occurrence lengths, in
        seconds; `mean_confidence` float64 mean occurrence confidence.
    """
    missing = [key for key in OCCURRENCE_KEYS[1:] if key not in occurrences]
    if missing:
        _fail("occurrences", f"arrays {list(OCCURRENCE_KEYS)}", f"missing {missing}")
    units, run_unit = np.unique(np.asarray(occurrences["unit"], dtype=np.int64),
                                return_inverse=True)
    count = np.bincount(run_unit, minlength=len(units)).astype(np.int64)

    def total(values: Any) -> np.ndarray:
        return np.bincount(run_unit, weights=np.asarray(values, dtype=np.float64),
                           minlength=len(units))

    duration = total(np.asarray(occurrences["end_s"], dtype=np.float64)
                     - np.asarray(occurrences["start_s"], dtype=np.float64))
    safe = np.maximum(count, 1)
    return {"unit": units, "count": count,
            "n_windows": total(occurrences["n_windows"]).round().astype(np.int64),
            "total_duration_s": duration, "mean_duration_s": duration / safe,
            "mean_confidence": total(occurrences["confidence"]) / safe}
