"""Clustering on blobs with known structure, silence handling, prediction, validation,
and merging windows into unit occurrences."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score, completeness_score, homogeneity_score
from sklearn.utils.estimator_checks import check_estimator

from discovery.units.occurrences import merge_units
from discovery.units.clustering import Placement, UnitClusterer
from discovery.errors import ParameterError

N_UNITS = 5
DIMS = 32
STD = 1.0


@pytest.fixture(scope="module")
def blobs():
    """(embeddings (1000, 32), true units (1000,), centres (5, 32))."""
    x, y, centres = make_blobs(n_samples=1000, n_features=DIMS, centers=N_UNITS,
                               cluster_std=STD, random_state=7, return_centers=True)
    return x, y, centres


@pytest.fixture(scope="module")
def fitted(blobs):
    x, _, _ = blobs
    return {"hdbscan": UnitClusterer(method="hdbscan", reduction="pca",
                                     n_components=16).fit(x),
            "kmeans": UnitClusterer(method="kmeans", reduction="pca", n_components=16,
                                    n_clusters=N_UNITS).fit(x)}


def _new_points(centres, rng, n=300):
    truth = rng.integers(0, len(centres), n)
    return centres[truth] + rng.normal(0, STD, (n, centres.shape[1])), truth


@pytest.mark.parametrize("method", ["hdbscan", "kmeans"])
def test_recovers_blobs(fitted, blobs, method):
    _, y, _ = blobs
    clusterer = fitted[method]
    assert clusterer.n_clusters_ == N_UNITS
    assert adjusted_rand_score(y, clusterer.labels_) > 0.9


def test_silhouette_finds_true_k(blobs):
    x, y, _ = blobs
    clusterer = UnitClusterer(method="kmeans", k_range=(2, 8)).fit(x)
    assert clusterer.n_clusters_ == N_UNITS
    assert sorted(clusterer.silhouette_scores_) == list(range(2, 9))
    assert max(clusterer.silhouette_scores_, key=clusterer.silhouette_scores_.get) == N_UNITS
    assert adjusted_rand_score(y, clusterer.labels_) > 0.9


@pytest.mark.parametrize("method", ["hdbscan", "kmeans"])
def test_fitted_attributes(fitted, blobs, method):
    x, _, _ = blobs
    clusterer = fitted[method]
    n = len(x)
    assert clusterer.labels_.shape == (n,) and clusterer.labels_.dtype == np.int64
    assert clusterer.probabilities_.shape == (n,)
    assert np.all((clusterer.probabilities_ >= 0) & (clusterer.probabilities_ <= 1))
    assert clusterer.is_silence_.shape == (n,) and not clusterer.is_silence_.any()
    assert isinstance(clusterer.reducer_, PCA) and clusterer.reducer_.n_components_ == 16
    assert clusterer.n_features_in_ == DIMS
    assert clusterer.cluster_sizes_.shape == (clusterer.n_clusters_,)
    assert clusterer.cluster_sizes_.sum() == np.sum(clusterer.labels_ >= 0)
    assert sorted(clusterer.exemplars_) == list(range(clusterer.n_clusters_))
    for unit, indices in clusterer.exemplars_.items():
        assert 1 <= len(indices) <= 8
        assert np.all(clusterer.labels_[indices] == unit)
    assert np.array_equal(clusterer.fit_indices_, np.arange(n))
    if method == "hdbscan":
        assert clusterer.min_cluster_size_ == 5  # max(5, 1000 // 200)
        assert clusterer.silhouette_scores_ is None


def test_kmeans_exemplars_are_nearest_to_centroid(fitted, blobs):
    x, _, _ = blobs
    clusterer = fitted["kmeans"]
    z = clusterer.reducer_.transform(x)
    centre = clusterer.clusterer_.cluster_centers_[0]
    members = np.flatnonzero(clusterer.labels_ == 0)
    distance = np.linalg.norm(z[members] - centre, axis=1)
    assert np.array_equal(clusterer.exemplars_[0], members[np.argsort(distance)[:8]])


def test_no_reduction_when_few_dimensions(blobs):
    x, y, _ = blobs
    clusterer = UnitClusterer(n_components=40).fit(x)
    assert clusterer.reducer_ is None
    assert adjusted_rand_score(y, clusterer.labels_) > 0.9
    assert UnitClusterer(n_components=None).fit(x).reducer_ is None


@pytest.mark.parametrize("method", ["hdbscan", "kmeans"])
def test_predict_places_new_points_in_their_blobs(fitted, blobs, rng, method):
    x, y, centres = blobs
    clusterer = fitted[method]
    # The fitted unit of each true blob (its majority label).
    unit_of = np.array([np.bincount(clusterer.labels_[y == k][clusterer.labels_[y == k] >= 0])
                        .argmax() for k in range(N_UNITS)])
    new, truth = _new_points(centres, rng)
    placement = clusterer.place(new)
    assert isinstance(placement, Placement)
    labels, confidence = placement
    assert labels.shape == confidence.shape == (len(new),)
    assert labels.dtype == np.int64 and confidence.dtype == np.float64
    assert np.mean(labels == unit_of[truth]) > 0.95
    assert np.all((confidence >= 0) & (confidence <= 1))
    assert np.array_equal(clusterer.predict(new), labels)


@pytest.mark.parametrize("method", ["hdbscan", "kmeans"])
def test_predict_is_row_by_row(fitted, blobs, method):
    # scikit-learn's check_methods_subset_invariance asks this, but sets n_clusters=1.
    x, _, _ = blobs
    clusterer = fitted[method]
    whole = clusterer.place(x[:40])
    rows = [clusterer.place(row[None]) for row in x[:40]]
    assert np.array_equal(whole.labels, np.concatenate([row.labels for row in rows]))
    np.testing.assert_allclose(whole.confidence,
                               np.concatenate([row.confidence for row in rows]))


@pytest.mark.parametrize("method", ["hdbscan", "kmeans"])
def test_silence_is_left_out(blobs, rng, method):
    x, y, _ = blobs
    silence = rng.uniform(0, 0.4, len(x))
    silent = rng.choice(len(x), 150, replace=False)
    silence[silent] = rng.uniform(0.5, 1.0, len(silent))
    silence[silent[0]] = 0.5  # the threshold itself counts as silence
    kwargs = {"n_clusters": N_UNITS} if method == "kmeans" else {}
    clusterer = UnitClusterer(method=method, **kwargs).fit(x, silence=silence)
    assert np.array_equal(np.flatnonzero(clusterer.is_silence_), np.sort(silent))
    assert np.all(clusterer.labels_[silent] == -1)
    assert np.all(clusterer.probabilities_[silent] == 0)
    voiced = ~clusterer.is_silence_
    assert adjusted_rand_score(y[voiced], clusterer.labels_[voiced]) > 0.9
    for indices in clusterer.exemplars_.values():
        assert not clusterer.is_silence_[indices].any()

    labels, confidence = clusterer.place(x[:50], silence=np.ones(50))
    assert np.all(labels == -1) and np.all(confidence == 0)
    assert np.all(clusterer.predict(x[:50], silence=np.ones(50)) == -1)

    # Silence never becomes part of a unit occurrence.
    start = np.arange(len(x)) * 0.5
    occurrences = merge_units(np.zeros(len(x), int), start, start + 0.5,
                              clusterer.labels_, clusterer.probabilities_)
    assert occurrences.n_windows.sum() == np.sum(clusterer.labels_ >= 0)
    for s in start[silent]:
        assert not np.any((occurrences.start_s <= s) & (s < occurrences.end_s))


@pytest.mark.slow
def test_subsample_fit_places_the_rest(rng):
    x, y = make_blobs(n_samples=3000, n_features=DIMS, centers=N_UNITS, cluster_std=STD,
                      random_state=3)
    first = UnitClusterer(max_fit_points=600, random_state=1).fit(x)
    assert len(first.fit_indices_) == 600
    # max(5, 3000 // 200) = 15, scaled by 600 / 3000 to 3, floored at 5: hdbscan's
    # approximate_predict mislabels points around clusters of 3.
    assert first.min_cluster_size_ == 5
    assert adjusted_rand_score(y, first.labels_) > 0.9
    again = UnitClusterer(max_fit_points=600, random_state=1).fit(x)
    assert np.array_equal(first.labels_, again.labels_)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        UnitClusterer().predict(np.zeros((20, 4)))
    with pytest.raises(NotFittedError):
        UnitClusterer().place(np.zeros((20, 4)))


@pytest.mark.slow
def test_sklearn_contract(blobs):
    x, _, _ = blobs
    clusterer = UnitClusterer(method="kmeans", n_clusters=3, random_state=5)
    assert not hasattr(clusterer, "labels_")
    copy = clone(clusterer)
    assert copy.get_params() == clusterer.get_params()
    params = clusterer.get_params()
    assert clusterer.fit(x) is clusterer
    assert clusterer.get_params() == params
    # fit adds learned attributes (ending in _) and nothing public besides (what
    # scikit-learn's check_dont_overwrite_parameters asks, but with n_clusters=1).
    public = {name for name in vars(clusterer) if not name.startswith("_")}
    assert {name for name in public if not name.endswith("_")} == set(params)
    assert np.array_equal(copy.fit_predict(x), clusterer.labels_)
    assert np.array_equal(clusterer.predict(x), clusterer.labels_)


def test_small_data_and_one_feature(rng):
    # What check_fit2d_1feature would fit, had it not set n_clusters=1.
    x = np.concatenate([rng.normal(0, 0.1, (8, 1)), rng.normal(5, 0.1, (8, 1))])
    for clusterer in (UnitClusterer(method="kmeans", n_clusters=2), UnitClusterer()):
        labels = clusterer.fit_predict(x)
        assert clusterer.n_clusters_ == 2
        assert adjusted_rand_score([0] * 8 + [1] * 8, labels) == 1


def test_dataframe_feature_names(blobs):
    pandas = pytest.importorskip("pandas")
    x, _, _ = blobs
    frame = pandas.DataFrame(x, columns=[f"z{i}" for i in range(DIMS)])
    clusterer = UnitClusterer(method="kmeans", reduction="pca", n_clusters=N_UNITS).fit(
        frame)
    assert list(clusterer.feature_names_in_) == list(frame.columns)
    assert np.array_equal(clusterer.predict(frame), clusterer.labels_)
    with pytest.warns(UserWarning, match="feature names"):
        clusterer.predict(x)


# check_estimator's checks that set `n_clusters = 1` on any estimator with the
# parameter: a single unit is refused, so they stop at that ParameterError.
# test_sklearn_contract, test_predict_is_row_by_row, test_small_data_and_one_feature
# and test_predict_checks_dimensions ask what they would have.
SETS_ONE_CLUSTER = {
    name: "sets n_clusters=1, and a single unit is refused (n_clusters >= 2)"
    for name in ("check_dont_overwrite_parameters", "check_methods_subset_invariance",
                 "check_fit2d_1sample", "check_fit2d_1feature", "check_fit2d_predict1d")
}
UMAP_ORDER = {"check_methods_sample_order_invariance":
              "UMAP's transform places new windows in one seeded stochastic "
              "optimisation whose draws follow the input order (see `place`)"}


@pytest.mark.parametrize("clusterer", [
    UnitClusterer(),  # UMAP runs where a check sets n_components=1 (3 features)
    UnitClusterer(reduction="pca", n_components=2),
    UnitClusterer(method="kmeans", reduction="pca", n_components=2, k_range=(2, 4)),
], ids=["default", "hdbscan-pca", "kmeans-pca"])
def test_check_estimator(clusterer):
    expected = {**SETS_ONE_CLUSTER, **(UMAP_ORDER if clusterer.reduction == "umap"
                                       else {})}
    results = check_estimator(clusterer, expected_failed_checks=expected,
                              on_fail=None, on_skip=None)
    failed = [f"{result['check_name']}: {result['exception']!r}" for result in results
              if result["status"] == "failed"]
    assert not failed, "\n".join(failed)
    # The n_clusters=1 checks fail for that reason and no other; a passing one
    # would mean the list above is stale.
    for result in results:
        if result["check_name"] in SETS_ONE_CLUSTER:
            assert result["status"] == "xfail", result["check_name"]
            assert "`n_clusters`" in str(result["exception"]), result["check_name"]


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "dbscan"}, "`method`"),
    ({"reduction": "tsne"}, r"`reduction`: expected one of \('pca', 'umap'\), received 'tsne'"),
    ({"n_components": 0}, "`n_components`: expected an integer >= 1 or None"),
    ({"n_components": True}, "`n_components`: expected an integer >= 1 or None, "
                             "received True"),
    ({"whiten": "yes"}, "`whiten`"),
    ({"n_clusters": 1}, "`n_clusters`: expected an integer >= 2 or None, received 1"),
    ({"k_range": (1, 5)}, "`k_range`"),
    ({"k_range": (6, 3)}, "`k_range`"),
    ({"k_range": 5}, "`k_range`"),
    ({"min_cluster_size": 1}, "`min_cluster_size`: expected an integer >= 2 or None, "
                              "received 1"),
    ({"min_cluster_size": 2.5}, "`min_cluster_size`"),
    ({"min_samples": 0}, "`min_samples`"),
    ({"cluster_selection_method": "best"}, "`cluster_selection_method`"),
    ({"silence_threshold": 0}, "`silence_threshold`"),
    ({"silence_threshold": 1.5}, "`silence_threshold`"),
    ({"silence_threshold": True}, r"`silence_threshold`: expected a number in \(0, 1\], "
                                  "received True"),
    ({"max_fit_points": 10}, "`max_fit_points`"),
    ({"random_state": -1}, "`random_state`"),
    ({"random_state": 2**32}, r"`random_state`: expected an integer in \[0, 4294967295\] "
                              "or None"),
    ({"random_state": np.random.RandomState(0)}, "`random_state`"),
    ({"verbose": "yes"}, "`verbose`: expected True or False, received 'yes'"),
])
def test_invalid_parameters(kwargs, match):
    x = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(ParameterError, match=match):
        UnitClusterer(**kwargs).fit(x)
    with pytest.raises(ParameterError, match=match):
        UnitClusterer(**kwargs)._check_params()  # what discovery.pipeline calls


@pytest.mark.parametrize("embeddings, silence, match", [
    (np.zeros(50), None, "`embeddings`: expected a 2-D array"),
    (np.full((50, 4), np.nan), None, "`embeddings`: expected finite values"),
    (np.array([["a"] * 4] * 50), None, "`embeddings`: expected a numeric array"),
    (np.zeros((5, 4)), None, "`embeddings`: expected at least 10 windows"),
    (np.zeros((50, 4)), np.ones(50), "`embeddings`: expected at least 10 windows that "
                                     "are not silence, received '0 of 50'"),
    (np.zeros((50, 4)), np.zeros(49), r"`silence`: expected one probability per window"),
    (np.zeros((50, 4)), np.full(50, 2.0), r"`silence`: expected probabilities in \[0, 1\]"),
    (np.zeros((12, 0)), None, r"`embeddings`: Found array with 0 feature\(s\)"),
    (np.zeros((0, 4)), None, r"`embeddings`: Found array with 0 sample\(s\)"),
    (np.ones((50, 4)) * 1j, None, "`embeddings`: Complex data not supported.$"),
    (sparse.csr_array(np.ones((50, 4))), None, "`embeddings`: expected a dense array "
                                               r"\(sparse input is not supported\)"),
])
def test_invalid_data(embeddings, silence, match):
    with pytest.raises(ParameterError, match=match):
        UnitClusterer().fit(embeddings, silence=silence)


def test_method_specific_limits(rng):
    x = rng.normal(size=(40, 4))
    with pytest.raises(ParameterError, match="`n_clusters`: expected at most"):
        UnitClusterer(method="kmeans", n_clusters=41).fit(x)
    with pytest.raises(ParameterError, match="`min_cluster_size`: expected at most half"):
        UnitClusterer(min_cluster_size=30).fit(x)
    with pytest.raises(ParameterError, match="`min_samples`: expected at most half"):
        UnitClusterer(min_samples=25).fit(x)
    with pytest.raises(ParameterError, match="`k_range`: expected values below"):
        UnitClusterer(method="kmeans", k_range=(40, 50)).fit(x)


def test_failed_refit_leaves_no_stale_attributes(fitted, blobs):
    x, _, _ = blobs
    clusterer = clone(fitted["kmeans"]).fit(x)
    with pytest.raises(ParameterError):
        clusterer.fit(x[:5])
    with pytest.raises(NotFittedError):
        clusterer.predict(x)


def test_predict_checks_dimensions(fitted):
    with pytest.raises(ParameterError, match="`embeddings`: X has 8 features, but "
                                             "UnitClusterer is expecting 32 features"):
        fitted["hdbscan"].predict(np.zeros((3, 8)))
    with pytest.raises(ParameterError, match="`embeddings`: expected a 2-D array"):
        fitted["hdbscan"].predict(np.zeros(DIMS))
    labels, confidence = fitted["kmeans"].place(np.zeros((0, DIMS)))
    assert labels.shape == confidence.shape == (0,)


def _assert_recovers(truth, labels):
    """Most windows get a unit, each unit holds one blob, each blob mostly one unit."""
    unit = labels >= 0
    assert unit.mean() >= 0.85
    assert homogeneity_score(truth[unit], labels[unit]) > 0.95
    assert completeness_score(truth[unit], labels[unit]) > 0.7


@pytest.mark.slow
@pytest.mark.parametrize("method", ["hdbscan", "kmeans"])
def test_umap_reduction_recovers_blobs_and_places_new_points(blobs, rng, method,
                                                             monkeypatch):
    from discovery.units import clustering

    # Small batches, so that transforming the 400 rows outside the fit takes several.
    monkeypatch.setattr(clustering, "TRANSFORM_BATCH", 64)
    x, y, centres = blobs
    clusterer = UnitClusterer(method=method, n_clusters=N_UNITS if method == "kmeans"
                              else None, max_fit_points=600).fit(x)
    import umap

    assert isinstance(clusterer.reducer_, umap.UMAP)
    assert clusterer.reducer_.n_components == 10
    # UMAP itself was fitted on the 600-window subsample only.
    assert clusterer.reducer_.embedding_.shape == (600, 10)
    assert len(clusterer.fit_indices_) == (600 if method == "hdbscan" else len(x))
    # UMAP may split a blob or leave a few windows as noise, and how often changes
    # between releases of umap-learn, pynndescent and numba: so the test asks for the
    # properties that matter, with margins, not one release's exact partition. Windows
    # outside the UMAP fit were placed with transform, and still land right.
    _assert_recovers(y, clusterer.labels_)
    assert N_UNITS <= clusterer.n_clusters_ <= 2 * N_UNITS
    new, truth = _new_points(centres, rng, n=100)
    labels = clusterer.predict(new)
    _assert_recovers(truth, labels)
    # Seeded: the same fit gives the same units.
    again = UnitClusterer(method=method, n_clusters=N_UNITS if method == "kmeans"
                          else None, max_fit_points=600).fit(x)
    assert np.array_equal(again.labels_, clusterer.labels_)
