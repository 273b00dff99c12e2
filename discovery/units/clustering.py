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
from numbers import Integral, Real
from typing import Any, NamedTuple, Optional

import hdbscan
import numpy as np
from scipy.sparse import issparse
from tqdm.auto import tqdm
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import pairwise_distances, silhouette_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from discovery.config import SILENCE_THRESHOLD
from discovery.errors import ParameterError
from discovery.units._checks import _as_array, _check_constraints, _fail, _is_int

METHODS = ("hdbscan", "kmeans")
REDUCTIONS = ("umap", "pca")
UMAP_NEIGHBORS = 15  # umap's default: local structure at the scale of a few syllables
TRANSFORM_BATCH = 5_000  # windows per UMAP transform call: bounds its memory
PREDICT_BATCH = 10_000  # windows per hdbscan.approximate_predict call, likewise
SELECTION_METHODS = ("eom", "leaf")
PLACE_MIN_CLUSTER_SIZE = 5  # smallest min_cluster_size a subsample scales down to
MIN_WINDOWS = 10  # fewer non-silent windows than this cannot show any structure
N_EXEMPLARS = 8
SILHOUETTE_POINTS = 5_000  # silhouette is O(n^2): score k on at most this many windows
MAX_SEED = 2**32 - 1  # numpy's RandomState, behind KMeans and UMAP, takes no larger seed


class Placement(NamedTuple):
    """Units of windows placed by `UnitClusterer.place`.

    Attributes:
        labels: (m,) int64. Unit of each window; -1 for silence and noise.
        confidence: (m,) float64 in [0, 1]. How firmly each window belongs to its
            unit, measured as `UnitClusterer.probabilities_`; 0 for silence.
    """

    labels: np.ndarray
    confidence: np.ndarray


class UnitClusterer(ClusterMixin, BaseEstimator):
    """Group window embeddings into units, leaving silence and outliers out (-1).

    Follows the scikit-learn estimator contract: `__init__` only stores its
    arguments, `fit` validates them (against `_parameter_constraints`) and the data
    and returns `self`, learned attributes end in `_`, `predict` returns labels
    only; `place` returns them with their confidence. scikit-learn's
    `check_estimator` passes, but for the checks that set `n_clusters=1` (a single
    unit is refused) and, with UMAP, the one that reorders the windows to predict
    (see `place`).

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
            >= this are left out of clustering and labelled -1. Defaults to
            `discovery.config.SILENCE_THRESHOLD` (0.5).
        max_fit_points: int >= 100 or None. Fit UMAP and HDBSCAN on a seeded subsample
            of at most this many windows and place the rest with UMAP's `transform`
            and HDBSCAN's `approximate_predict`;
            `min_cluster_size` and `min_samples` are scaled to the subsample. None
            fits on all windows. With 10,000, clustering an hour of windows (45,000 x
            32) took 39 s on 2 cores, numba's first compilation included.
            Defaults to 10_000.
        random_state: int in [0, 2**32 - 1] or None. Seed for subsamples, UMAP, PCA
            and k-means. Defaults to 0.
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
        feature_names_in_: (n_features_in_,) array of str. Column names, when `fit`
            was given a DataFrame with string column names.

    Raises:
        ParameterError: from `fit` (and `_check_params`) for an invalid argument,
            in place of scikit-learn's `InvalidParameterError`.

    Example:
        >>> clusterer = UnitClusterer(method="hdbscan").fit(z, silence=p_silence)
        >>> labels = clusterer.predict(z_new, silence=p_new)
        >>> labels, confidence = clusterer.place(z_new, silence=p_new)
    """

    # scikit-learn's declarative parameter checks; `_validate_params` runs them and
    # turns a failure into discovery's one-line ParameterError.
    _parameter_constraints: dict = {
        "method": [StrOptions(set(METHODS))],
        "reduction": [StrOptions(set(REDUCTIONS))],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "whiten": ["boolean"],
        "n_clusters": [Interval(Integral, 2, None, closed="left"), None],
        # A pair with low <= high: no constraint object says that, `_validate_params`
        # checks it by hand.
        "k_range": "no_validation",
        "min_cluster_size": [Interval(Integral, 2, None, closed="left"), None],
        "min_samples": [Interval(Integral, 1, None, closed="left"), None],
        "cluster_selection_method": [StrOptions(set(SELECTION_METHODS))],
        "silence_threshold": [Interval(Real, 0, 1, closed="right")],
        "max_fit_points": [Interval(Integral, 100, None, closed="left"), None],
        # An int, not scikit-learn's "random_state": a RandomState instance cannot
        # seed `np.random.default_rng` or UMAP's `transform_seed`.
        "random_state": [Interval(Integral, 0, MAX_SEED, closed="both"), None],
        "verbose": ["boolean"],
    }

    def __init__(self, *, method: str = "hdbscan", reduction: str = "umap",
                 n_components: Optional[int] = 10, whiten: bool = False,
                 n_clusters: Optional[int] = None,
                 k_range: tuple = (2, 20), min_cluster_size: Optional[int] = None,
                 min_samples: Optional[int] = None,
                 cluster_selection_method: str = "eom",
                 silence_threshold: float = SILENCE_THRESHOLD,
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
        """Check every constructor argument, before any work.

        `discovery.pipeline.RunConfig` calls it to check its settings early; `fit`
        calls it too.

        Raises:
            ParameterError: for the first invalid argument, naming it and its value.
        """
        self._validate_params()

    def _validate_params(self) -> None:
        """Check `_parameter_constraints`, then what no constraint object can say.

        Overrides scikit-learn's hook (which its `_fit_context` calls), so that a bad
        argument fails the discovery way however the check is reached.

        Raises:
            ParameterError: in place of scikit-learn's `InvalidParameterError`.
        """
        params = self.get_params(deep=False)
        for name, constraints in self._parameter_constraints.items():
            if constraints != "no_validation":
                _check_constraints(name, params[name], constraints,
                                   caller=type(self).__name__)
        k_range = self.k_range
        if (not isinstance(k_range, (tuple, list)) or len(k_range) != 2
                or not all(_is_int(k) for k in k_range)
                or not 2 <= k_range[0] <= k_range[1]):
            _fail("k_range", "two integers (low, high) with 2 <= low <= high", k_range)

    def _check_data(self, embeddings: Any, silence: Any, *, reset: bool) -> tuple:
        """(embeddings (n, D) float64, is_silence (n,) bool).

        `reset` (in `fit`) records `n_features_in_` (and `feature_names_in_`);
        otherwise the embeddings must match them.
        """
        x = self._check_embeddings(embeddings, reset=reset)
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

    def _check_embeddings(self, embeddings: Any, *, reset: bool) -> np.ndarray:
        """scikit-learn's `validate_data`, with discovery's messages where it has them."""
        if issparse(embeddings):
            _fail("embeddings", "a dense array (sparse input is not supported)",
                  f"a sparse {type(embeddings).__name__} of shape {embeddings.shape}")
        array = np.asarray(embeddings)
        if array.ndim != 2:
            _fail("embeddings", "a 2-D array", f"shape {array.shape}")
        if array.dtype.kind not in "biufcO" and array.size:
            _fail("embeddings", "a numeric array", f"an array of dtype {array.dtype}")
        try:
            # Finiteness is checked below, in discovery's words. predict accepts no
            # windows at all; fit needs MIN_WINDOWS, checked after silence is known.
            x = validate_data(self, embeddings, reset=reset, dtype=np.float64,
                              ensure_all_finite=False,
                              ensure_min_samples=1 if reset else 0)
        except ValueError as error:
            # One line: scikit-learn's first (complex data, say, comes with the array).
            reason = str(error).strip().splitlines()[0].rstrip(":. ")
            raise ParameterError(f"Invalid value for `embeddings`: {reason}.") from None
        if not np.all(np.isfinite(x)):
            _fail("embeddings", "finite values", "NaN or infinity")
        return x

    def __sklearn_is_fitted__(self) -> bool:
        # `n_features_in_` is set early in fit; `labels_` only when fit succeeded.
        return hasattr(self, "labels_")

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
            TypeError: for an object array holding something that is not a number.
        """
        # A failed refit must not leave a mix of old and new learned attributes.
        for name in [name for name in vars(self) if name.endswith("_")
                     and not name.startswith("_")]:
            delattr(self, name)
        self._check_params()
        x, is_silence = self._check_data(embeddings, silence, reset=True)
        keep = np.flatnonzero(~is_silence)
        if len(keep) < MIN_WINDOWS:
            _fail("embeddings", f"at least {MIN_WINDOWS} windows that are not silence",
                  f"{len(keep)} of {len(x)}")
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
        # Scaling stops at PLACE_MIN_CLUSTER_SIZE: with a smallest cluster of 3,
        # hdbscan 0.8.44's approximate_predict gave a fifth of the fitted points
        # themselves another unit or noise (its labels fall out of step with `labels_`).
        self.min_cluster_size_ = max(min(size, PLACE_MIN_CLUSTER_SIZE), 2,
                                     int(round(size * fraction)))
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
            labels[rest], probabilities[rest] = self._hdbscan_predict(z[rest])
        self.fit_indices_ = fit_rows
        self.silhouette_scores_ = None
        return labels, probabilities, None

    def _hdbscan_predict(self, z: np.ndarray) -> tuple:
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

    def predict(self, embeddings: Any, *, silence: Any = None) -> np.ndarray:
        """Units of new windows: `place(...).labels`.

        Args:
            embeddings: (m, D) finite floats with the D seen in `fit`.
            silence: (m,) silence probabilities in [0, 1], or None.

        Returns:
            (m,) int64 labels, -1 for silence and noise.

        Raises:
            sklearn.exceptions.NotFittedError: before `fit`.
            ParameterError: for invalid embeddings or silence.
        """
        return self.place(embeddings, silence=silence).labels

    def place(self, embeddings: Any, *, silence: Any = None) -> Placement:
        """Place new windows into the fitted units, with a confidence for each.

        HDBSCAN uses `hdbscan.approximate_predict` (new windows join the existing
        clusters; they do not change them); k-means takes the nearest centroid. The
        embeddings are reduced once for both labels and confidence (UMAP's transform
        is the slow part). With PCA each window is placed on its own; UMAP's
        transform places all the new windows in one seeded stochastic optimisation,
        whose random draws follow the input, so a window near a unit's edge can
        change unit with the other windows given, or their order.

        Args:
            embeddings: (m, D) finite floats with the D seen in `fit`.
            silence: (m,) silence probabilities in [0, 1], or None.

        Returns:
            `Placement(labels, confidence)`: (m,) int64 labels, -1 for silence and
            noise; (m,) float64 confidence in [0, 1], measured as `probabilities_`.

        Raises:
            sklearn.exceptions.NotFittedError: before `fit`.
            ParameterError: for invalid embeddings or silence.
        """
        check_is_fitted(self)
        x, is_silence = self._check_data(embeddings, silence, reset=False)
        labels = np.full(len(x), -1, dtype=np.int64)
        confidence = np.zeros(len(x))
        keep = np.flatnonzero(~is_silence)
        if len(keep):
            z = self._transform(x[keep])
            placed = (self._kmeans_predict(z) if isinstance(self.clusterer_, KMeans)
                      else self._hdbscan_predict(z))
            labels[keep], confidence[keep] = placed
        return Placement(labels, np.clip(confidence, 0.0, 1.0))


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
