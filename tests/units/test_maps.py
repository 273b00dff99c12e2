"""The 2-D map of the clustering's space: shape, seeding, which rows it maps, PCA, blobs
kept apart, and one test per invalid argument."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from discovery.errors import ParameterError
from discovery.units.maps import UnitMap, fit_map

N_UNITS = 4


@pytest.fixture(scope="module")
def blobs():
    """(embeddings (600, 32), true units (600,)): four well-separated blobs."""
    return make_blobs(n_samples=600, n_features=32, centers=N_UNITS, cluster_std=1.0,
                      random_state=3)


@pytest.fixture(scope="module")
def rows():
    """Every other window, as if the odd ones were silent."""
    return np.arange(0, 600, 2)


@pytest.fixture(scope="module")
def mapped(blobs, rows):
    x, _ = blobs
    return fit_map(x, rows=rows, seed=0, max_points=200)


def test_maps_a_subsample_of_the_rows_given(mapped, rows):
    assert isinstance(mapped, UnitMap)
    assert mapped.index.dtype == np.int64 and mapped.index.shape == (200,)
    assert mapped.xy.shape == (200, 2) and np.all(np.isfinite(mapped.xy))
    assert np.all(np.diff(mapped.index) > 0) and set(mapped.index) <= set(rows)
    assert "2-D UMAP" in mapped.method and "200 of 300 windows" in mapped.method


def test_maps_every_row_when_there_are_few(blobs):
    x, _ = blobs
    few = np.array([5, 1, 9, 3, 7, 11, 13])  # any order: the map's index is sorted
    unit_map = fit_map(x, rows=few, max_points=100)
    np.testing.assert_array_equal(unit_map.index, np.sort(few))
    assert unit_map.xy.shape == (7, 2) and np.all(np.isfinite(unit_map.xy))
    assert "all 7 windows" in unit_map.method


def test_is_seeded(blobs, rows, mapped):
    x, _ = blobs
    again = fit_map(x, rows=rows, seed=0, max_points=200)
    np.testing.assert_array_equal(again.index, mapped.index)
    np.testing.assert_array_equal(again.xy, mapped.xy)
    other = fit_map(x, rows=rows, seed=1, max_points=200)
    assert not np.array_equal(other.index, mapped.index)


def test_only_the_rows_given_shape_the_map(blobs, rows, mapped):
    """Windows outside `rows` (silence, say) do not move the map."""
    x, _ = blobs
    scrambled = x.copy()
    outside = np.setdiff1d(np.arange(len(x)), rows)
    scrambled[outside] = np.random.default_rng(0).normal(50, 30, (len(outside), x.shape[1]))
    np.testing.assert_array_equal(
        fit_map(scrambled, rows=rows, seed=0, max_points=200).xy, mapped.xy)


def test_keeps_the_blobs_apart(blobs, mapped):
    """Each blob's windows sit together: nearer their own blob's centre than any other."""
    _, y = blobs
    units = y[mapped.index]
    centres = np.stack([mapped.xy[units == u].mean(axis=0) for u in range(N_UNITS)])
    nearest = np.argmin(np.linalg.norm(mapped.xy[:, None] - centres[None], axis=2), axis=1)
    assert np.mean(nearest == units) > 0.95


def test_pca_reduction(blobs, rows):
    x, y = blobs
    unit_map = fit_map(x, rows=rows, reduction="pca", seed=0, max_points=200)
    assert unit_map.xy.shape == (200, 2) and np.all(np.isfinite(unit_map.xy))
    assert "2-D PCA" in unit_map.method and "UMAP" not in unit_map.method
    # PCA is linear: the first coordinate has the largest variance.
    assert np.var(unit_map.xy[:, 0]) >= np.var(unit_map.xy[:, 1])


def test_two_dimensional_embeddings_are_their_own_map(rng):
    x = rng.normal(size=(30, 2))
    unit_map = fit_map(x, rows=np.arange(10, 30))
    np.testing.assert_array_equal(unit_map.xy, x[10:30])
    assert "themselves" in unit_map.method


@pytest.mark.parametrize("change, message", [
    ({"embeddings": np.zeros(10)}, r"`embeddings`: expected a 2-D array"),
    ({"embeddings": np.full((20, 3), np.nan)}, r"`embeddings`: expected finite values"),
    ({"rows": np.arange(4)}, r"`rows`: expected at least 5 windows to map, received 4"),
    ({"rows": np.arange(15, 25)}, r"`rows`: expected indices in \[0, 19\]"),
    ({"rows": np.array([0, 1, 2, 3, 3, 4])}, r"`rows`: expected distinct indices"),
    ({"rows": np.arange(10) / 2}, r"`rows`: expected an integer array"),
    ({"reduction": "tsne"}, r"`reduction`: expected one of \('umap', 'pca'\), received 'tsne'"),
    ({"seed": -1}, r"`seed`: expected an integer in \[0, 4294967295\], received -1"),
    ({"seed": 2**32}, r"`seed`: expected an integer in \[0, 4294967295\], received 4294967296"),
    ({"max_points": 4}, r"`max_points`: expected an integer >= 5, received 4"),
    ({"max_points": 10.0}, r"`max_points`: expected an integer >= 5, received 10.0"),
])
def test_refuses_bad_arguments(rng, change, message):
    arguments = {"embeddings": rng.normal(size=(20, 3)), "rows": np.arange(10), **change}
    embeddings = arguments.pop("embeddings")
    with pytest.raises(ParameterError, match=message) as raised:
        fit_map(embeddings, **arguments)
    assert "\n" not in str(raised.value)
