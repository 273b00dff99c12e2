"""Tests for discovery.dtw: golden values, a plain NumPy reference, properties, errors.

Shapes are chosen so that few kernels compile (each padded shape compiles once).
"""

import re

import numpy as np
import pytest

from discovery.dtw import DTWPath, dtw_distance, dtw_path, pairwise_distances
from discovery.errors import ParameterError

# librosa's tests/test_dtw.py pair, one feature per frame.
TEXTBOOK_X = np.array([1, 3, 3, 8, 1], np.float32)[:, None]
TEXTBOOK_Y = np.array([2, 0, 0, 8, 7, 2], np.float32)[:, None]
# Accumulated cost with |x - y| as local cost, worked by hand (librosa's gt_D).
TEXTBOOK_ACCUMULATED = np.array([
    [1, 2, 3, 10, 16, 17],
    [2, 4, 5, 8, 12, 13],
    [3, 5, 7, 10, 12, 13],
    [9, 11, 13, 7, 8, 14],
    [10, 10, 11, 14, 13, 9],
])
TEXTBOOK_PATH = [(0, 0), (1, 1), (2, 2), (3, 3), (3, 4), (4, 5)]


def reference_dtw(x, y, *, open_end=False, band=None, normalized=False):
    """Plain O(N M) DTW in float64, written from the definition.

    Among equally cheap paths the shortest counts, for `normalized` (tuples compare
    cost first, then the number of cells).
    """
    n, m = len(x), len(y)
    cost = np.sqrt(((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1))
    best = {(-1, -1): (0.0, 0)}  # (accumulated cost, path cells); missing cells are inf
    inf = (np.inf, 0)
    for i in range(n):
        for j in range(m):
            if band is not None and not min(0, m - n) - band <= j - i <= max(0, m - n) + band:
                continue
            prev = min(best.get(cell, inf) for cell in ((i - 1, j - 1), (i - 1, j), (i, j - 1)))
            if prev[0] < np.inf:
                best[(i, j)] = (prev[0] + cost[i, j], prev[1] + 1)
    ends = [best.get((n - 1, j), inf) for j in range(m)] if open_end else [best[(n - 1, m - 1)]]
    total, cells = min(ends)
    return total / cells if normalized else total


def ragged_batch(rng, n_pairs, dims, max_len, *, fill=np.nan):
    """Random padded batch with lengths 1..max_len; padding holds `fill`."""
    x_len = rng.integers(1, max_len + 1, n_pairs)
    y_len = rng.integers(1, max_len + 1, n_pairs)
    x_len[:2], y_len[:2] = [1, max_len], [max_len, 1]  # the extremes, always
    x = np.full((n_pairs, max_len, dims), fill, np.float32)
    y = np.full((n_pairs, max_len, dims), fill, np.float32)
    for b in range(n_pairs):
        x[b, : x_len[b]] = rng.standard_normal((x_len[b], dims))
        y[b, : y_len[b]] = rng.standard_normal((y_len[b], dims))
    return x, y, x_len, y_len


def reference_batch(x, y, x_len, y_len, **options):
    return np.array([
        reference_dtw(x[b, : x_len[b]], y[b, : y_len[b]], **options) for b in range(len(x))
    ])


# --- golden values ---------------------------------------------------------------------


def test_textbook_pair_by_hand():
    x, y = TEXTBOOK_X[None], TEXTBOOK_Y[None]
    assert dtw_distance(x, y)[0] == pytest.approx(TEXTBOOK_ACCUMULATED[-1, -1])  # 9
    assert dtw_distance(x, y, open_end=True)[0] == pytest.approx(TEXTBOOK_ACCUMULATED[-1].min())
    assert dtw_distance(x, y, normalized=True)[0] == pytest.approx(9 / len(TEXTBOOK_PATH))
    assert dtw_distance(x, y, band=0)[0] == pytest.approx(9)  # the path keeps 0 <= j - i <= 1
    assert reference_dtw(TEXTBOOK_X, TEXTBOOK_Y) == pytest.approx(9)


def test_textbook_path_by_hand():
    distance, path = dtw_path(TEXTBOOK_X, TEXTBOOK_Y)
    assert distance == pytest.approx(9)
    assert [tuple(cell) for cell in path] == TEXTBOOK_PATH
    named = dtw_path(TEXTBOOK_X, TEXTBOOK_Y)
    assert isinstance(named, DTWPath) and named.distance == distance
    np.testing.assert_array_equal(named.path, path)


def test_single_frames_give_frame_distance():
    x = np.array([[[0.0, 0.0]]])
    y = np.array([[[3.0, 4.0]]])
    assert dtw_distance(x, y)[0] == pytest.approx(5.0)


# --- against the NumPy reference -------------------------------------------------------

CASES = [
    # (dims, max_len, options)
    (1, 200, {}),
    (3, 60, {"open_end": True}),
    (13, 120, {"band": 5}),
    (26, 80, {"normalized": True}),
    (64, 50, {"open_end": True, "normalized": True, "band": 3}),
    (128, 40, {}),
]


@pytest.mark.parametrize("dims, max_len, options", CASES)
def test_matches_reference_on_ragged_batches(rng, dims, max_len, options):
    x, y, x_len, y_len = ragged_batch(rng, 10, dims, max_len)
    result = dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len, **options)
    assert result.shape == (10,) and result.dtype == np.float32
    expected = reference_batch(x, y, x_len, y_len, **options)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4)


def test_padding_content_does_not_matter(rng):
    x, y, x_len, y_len = ragged_batch(rng, 6, 8, 30, fill=1e6)
    with_big = dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len)
    x[np.isclose(x, 1e6)] = np.nan
    y[np.isclose(y, 1e6)] = np.nan
    np.testing.assert_array_equal(dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len), with_big)


def test_many_pairs_span_several_calls(rng):
    # More pairs than one call holds (1024): chunking, padding pairs and threads.
    x, y, x_len, y_len = ragged_batch(rng, 1100, 5, 9)
    result = dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len)
    picked = rng.choice(1100, 60, replace=False)
    expected = reference_batch(x[picked], y[picked], x_len[picked], y_len[picked])
    np.testing.assert_allclose(result[picked], expected, rtol=1e-4)


def test_accepts_tensors_and_float64(rng):
    import tensorflow as tf

    x = rng.standard_normal((3, 12, 6))
    y = rng.standard_normal((3, 9, 6))
    expected = reference_batch(x, y, [12] * 3, [9] * 3)
    np.testing.assert_allclose(dtw_distance(tf.constant(x), tf.constant(y)), expected, rtol=1e-4)
    np.testing.assert_allclose(dtw_distance(x, y), expected, rtol=1e-4)


# --- properties ------------------------------------------------------------------------


@pytest.mark.parametrize("dims, offset", [(2, 0.0), (128, 0.0), (40, 60.0)])
def test_distance_to_itself_is_zero(rng, dims, offset):
    # offset: features far from the origin, like raw log spectra.
    x = (rng.standard_normal((4, 70, dims)) * 3 + offset).astype(np.float32)
    lengths = np.array([70, 1, 33, 50])
    for options in ({}, {"open_end": True}, {"normalized": True}, {"band": 0}):
        assert np.all(dtw_distance(x, x, x_lengths=lengths, y_lengths=lengths, **options) < 1e-5)
    assert pairwise_distances(list(x)).diagonal().max() == 0.0


def test_symmetric_for_closed_end(rng):
    x, y, x_len, y_len = ragged_batch(rng, 8, 13, 120)
    forward = dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len, band=5)
    backward = dtw_distance(y, x, x_lengths=y_len, y_lengths=x_len, band=5)
    np.testing.assert_allclose(forward, backward, rtol=1e-5)


def test_open_end_never_exceeds_closed_end(rng):
    x, y, x_len, y_len = ragged_batch(rng, 10, 3, 60)
    closed = dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len)
    opened = dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len, open_end=True)
    assert np.all(opened <= closed * (1 + 1e-6))
    assert np.any(opened < closed)


def test_narrower_band_never_gives_smaller_distance(rng):
    x, y, x_len, y_len = ragged_batch(rng, 10, 13, 120)
    distances = [
        dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len, band=band)
        for band in (0, 2, 5, 20, None)
    ]
    for narrow, wide in zip(distances, distances[1:]):
        assert np.all(narrow >= wide * (1 - 1e-6))
    assert np.all(np.isfinite(distances[0]))  # the end stays reachable at band 0
    assert np.any(distances[0] > distances[-1])


# --- dtw_path --------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"band": 2}, {"open_end": True}])
def test_path_is_monotone_and_its_cost_matches(rng, options):
    x = rng.standard_normal((37, 13))
    y = rng.standard_normal((52, 13))
    distance, path = dtw_path(x, y, **options)
    assert distance == pytest.approx(dtw_distance(x[None], y[None], **options)[0], rel=1e-5)
    assert distance == pytest.approx(reference_dtw(x, y, **options), rel=1e-9)
    assert path.dtype == np.int64 and path.shape[1] == 2
    assert tuple(path[0]) == (0, 0)
    assert path[-1, 0] == len(x) - 1
    if not options.get("open_end"):
        assert path[-1, 1] == len(y) - 1
    steps = {tuple(step) for step in np.diff(path, axis=0)}
    assert steps <= {(0, 1), (1, 0), (1, 1)}
    assert np.linalg.norm(x[path[:, 0]] - y[path[:, 1]], axis=1).sum() == pytest.approx(distance)
    if "band" in options:
        offset = path[:, 1] - path[:, 0]
        assert offset.min() >= -2 and offset.max() <= len(y) - len(x) + 2


# --- pairwise_distances ----------------------------------------------------------------


def _sequences(rng, lengths, dims):
    return [rng.standard_normal((n, dims)).astype(np.float32) for n in lengths]


def _every_pair(xs, ys, **options):
    """dtw_distance of every (x, y) pair, as one padded batch of pairs."""
    pairs = [(a, b) for a in xs for b in ys]
    x = np.zeros((len(pairs), max(map(len, xs)), xs[0].shape[1]), np.float32)
    y = np.zeros((len(pairs), max(map(len, ys)), xs[0].shape[1]), np.float32)
    for k, (a, b) in enumerate(pairs):
        x[k, : len(a)], y[k, : len(b)] = a, b
    lengths = np.array([[len(a), len(b)] for a, b in pairs])
    result = dtw_distance(x, y, x_lengths=lengths[:, 0], y_lengths=lengths[:, 1], **options)
    return result.reshape(len(xs), len(ys))


@pytest.mark.slow
def test_pairwise_equals_looping_dtw_distance(rng):
    xs = _sequences(rng, [5, 40, 1, 33], 6)
    ys = _sequences(rng, [3, 40], 6)
    looped = np.array([[dtw_distance(a[None], b[None])[0] for b in ys] for a in xs])
    np.testing.assert_allclose(pairwise_distances(xs, ys), looped, rtol=1e-5)
    np.testing.assert_allclose(
        pairwise_distances(xs, ys, band=2, normalized=True, n_workers=1),
        _every_pair(xs, ys, band=2, normalized=True),
        rtol=1e-5,
    )


def test_pairwise_with_itself_is_symmetric_with_zero_diagonal(rng):
    xs = _sequences(rng, rng.integers(1, 41, 13), 6)
    matrix = pairwise_distances(xs, progress=True)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert np.all(matrix.diagonal() == 0)
    np.testing.assert_allclose(matrix, _every_pair(xs, xs), rtol=1e-5, atol=1e-5)


def test_pairwise_open_end_computes_both_orders(rng):
    xs = _sequences(rng, [30, 8, 21, 40], 6)
    matrix = pairwise_distances(xs, open_end=True)
    expected = _every_pair(xs, xs, open_end=True)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(matrix, matrix.T)


def test_pairwise_tiles_match_one_call(rng):
    # Small tiles: many calls, skipped lower-triangle tiles, several workers.
    xs = _sequences(rng, rng.integers(1, 41, 30), 6)
    one_call = pairwise_distances(xs)
    tiled = pairwise_distances(xs, batch_size=16, n_workers=2)
    np.testing.assert_allclose(tiled, one_call, rtol=1e-6)


# --- other implementations -------------------------------------------------------------


def test_agrees_with_dtaidistance(rng):
    dtw_ndim = pytest.importorskip("dtaidistance.dtw_ndim")
    xs = _sequences(rng, [25, 40, 7], 20)
    ys = _sequences(rng, [31, 12, 40, 40], 20)

    def theirs(a, b, **options):
        a, b = a.astype(np.float64), b.astype(np.float64)
        return dtw_ndim.distance(a, b, inner_dist="euclidean", **options)

    for band in (None, 0, 4):
        window = None if band is None else band + 1  # their window counts the diagonal
        expected = [[theirs(a, b, window=window) for b in ys] for a in xs]
        np.testing.assert_allclose(pairwise_distances(xs, ys, band=band), expected, rtol=1e-5)
    # Open end is dtaidistance's psi relaxation of y's end only.
    expected = [[theirs(a, b, psi=(0, 0, 0, len(b) - 1)) for b in ys] for a in xs]
    np.testing.assert_allclose(pairwise_distances(xs, ys, open_end=True), expected, rtol=1e-5)


# --- invalid arguments -----------------------------------------------------------------


def test_rejects_mismatched_feature_dimensions():
    with pytest.raises(ParameterError, match="same number of features"):
        dtw_distance(np.zeros((2, 5, 3)), np.zeros((2, 5, 4)))
    with pytest.raises(ParameterError, match="same number of features"):
        pairwise_distances([np.zeros((5, 3))], [np.zeros((5, 4))])
    with pytest.raises(ParameterError, match=r"X\[1\]"):
        pairwise_distances([np.zeros((5, 3)), np.zeros((5, 4))])


def test_rejects_wrong_rank():
    with pytest.raises(ParameterError, match="`x`.*3-D"):
        dtw_distance(np.zeros((5, 3)), np.zeros((1, 5, 3)))
    with pytest.raises(ParameterError, match="`y`.*2-D"):
        dtw_path(np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(ParameterError, match=r"`X\[0\]`.*2-D"):
        pairwise_distances([np.zeros(5)])


def test_rejects_mismatched_number_of_pairs():
    with pytest.raises(ParameterError, match="same number of pairs"):
        dtw_distance(np.zeros((2, 5, 3)), np.zeros((3, 5, 3)))


def test_rejects_negative_band():
    with pytest.raises(ParameterError, match="`band`.*received -1"):
        dtw_distance(np.zeros((1, 5, 3)), np.zeros((1, 5, 3)), band=-1)
    with pytest.raises(ParameterError, match="`band`"):
        dtw_path(np.zeros((5, 3)), np.zeros((5, 3)), band=1.5)


def test_rejects_lengths_out_of_range():
    x = np.zeros((2, 5, 3))
    with pytest.raises(ParameterError, match=r"`x_lengths`.*\[1, 5\].*from 0"):
        dtw_distance(x, x, x_lengths=[0, 5])
    with pytest.raises(ParameterError, match=r"`y_lengths`.*\[1, 5\].*to 6"):
        dtw_distance(x, x, y_lengths=[3, 6])
    with pytest.raises(ParameterError, match="`x_lengths`.*2 integers"):
        dtw_distance(x, x, x_lengths=[3])


def test_rejects_empty_sequences():
    with pytest.raises(ParameterError, match="`y`.*at least one frame"):
        dtw_distance(np.zeros((1, 5, 3)), np.zeros((1, 0, 3)))
    with pytest.raises(ParameterError, match="`x`.*at least one frame"):
        dtw_path(np.zeros((0, 3)), np.zeros((4, 3)))
    with pytest.raises(ParameterError, match=r"`Y\[1\]`.*at least one frame"):
        pairwise_distances([np.zeros((4, 3))], [np.zeros((4, 3)), np.zeros((0, 3))])
    with pytest.raises(ParameterError, match="`X`.*at least one sequence"):
        pairwise_distances([])


def test_rejects_non_finite_values():
    x = np.zeros((2, 5, 3))
    x[1, 2, 0] = np.nan
    with pytest.raises(ParameterError, match="`x`.*finite"):
        dtw_distance(x, np.zeros((2, 5, 3)))
    with pytest.raises(ParameterError, match=r"`X\[1\]`.*finite"):
        pairwise_distances(list(x))


def test_rejects_invalid_batch_size_and_workers():
    xs = [np.zeros((4, 3))]
    with pytest.raises(ParameterError, match="`batch_size`"):
        pairwise_distances(xs, batch_size=0)
    with pytest.raises(ParameterError, match="`n_workers`"):
        pairwise_distances(xs, n_workers=0)


# --- hardening: non-finite values, any magnitude, data far from the origin ------------

# 4 and 5 straddle the switch from frame differences to a matrix product on a CPU.
DIMS = [1, 4, 5, 13, 128]
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _pairs(rng, dims, *, scale=1.0, offset=0.0):
    """Two float64 pairs of 12-frame sequences (one kernel shape per `dims`)."""
    x = rng.standard_normal((2, 12, dims)) * scale + offset
    y = rng.standard_normal((2, 12, dims)) * scale + offset
    return x, y


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_raise_at_any_dims(rng, dims, value):
    x, y = _pairs(rng, dims)
    shown = re.escape(str(value))  # nan, inf, -inf
    bad_x = x.copy()
    bad_x[1, 7, dims - 1] = value
    message = rf"^Invalid value for `x`: expected finite values, received {shown} at pair 1, frame"
    with pytest.raises(ParameterError, match=message + r" 7\.$"):
        dtw_distance(bad_x, y)
    # The first frame of the first pair is in the centre's sample: with D > 4 it used to
    # turn every cost into NaN, snapped to 0, and give a finite distance.
    bad_y = y.astype(np.float32)
    bad_y[0, 0, 0] = value
    with pytest.raises(ParameterError, match=rf"`y`: .*received {shown} at pair 0, frame 0\."):
        dtw_distance(x.astype(np.float32), bad_y)
    with pytest.raises(ParameterError, match=rf"`X\[1\]`: .*received {shown} at frame 7\."):
        pairwise_distances(list(bad_x))
    with pytest.raises(ParameterError, match=rf"`Y\[0\]`: .*received {shown} at frame 0\."):
        pairwise_distances(list(x), list(bad_y))
    with pytest.raises(ParameterError, match=rf"`x`: .*received {shown} at frame 7\."):
        dtw_path(bad_x[1], y[1])
    with pytest.raises(ParameterError, match=rf"`y`: .*received {shown} at frame 0\."):
        dtw_path(x[0], bad_y[0])


@pytest.mark.parametrize("dims", [4, 13])
def test_padding_is_not_checked_but_true_frames_are(rng, dims):
    x, y = _pairs(rng, dims)
    x_len, y_len = np.array([12, 5]), np.array([3, 12])
    expected = reference_batch(x, y, x_len, y_len)
    results = []
    for fill in (0.0, np.nan, np.inf, 1e30, 1e300):  # 1e300 overflows float32
        x[1, 5:], y[0, 3:] = fill, -fill
        results.append(dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len))
        np.testing.assert_allclose(results[-1], expected, rtol=1e-5)
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])
    x[1, 4, 0] = np.nan  # the last true frame
    with pytest.raises(ParameterError, match=r"`x`: .*received nan at pair 1, frame 4\."):
        dtw_distance(x, y, x_lengths=x_len, y_lengths=y_len)


# From the smallest to beyond where squares overflowed float32 (about 1e19 at D = 13,
# 1e18 at D = 128); 2^32 is the last magnitude computed unscaled, 2^33 the first scaled.
MAGNITUDES = [2.0**-100, 1e-20, 2.0**32, 2.0**33, 1e18, 1e20, 1e30]


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("magnitude", MAGNITUDES)
def test_any_magnitude_gives_exact_distances(rng, dims, magnitude):
    x, y = _pairs(rng, dims, scale=magnitude)
    expected = reference_batch(x, y, [12, 12], [12, 12])
    np.testing.assert_allclose(dtw_distance(x, y), expected, rtol=1e-5)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    expected32 = reference_batch(x32, y32, [12, 12], [12, 12], normalized=True)
    np.testing.assert_allclose(dtw_distance(x32, y32, normalized=True), expected32, rtol=1e-5)
    np.testing.assert_allclose(pairwise_distances(list(x), list(y)).diagonal(), expected, rtol=1e-5)
    assert dtw_path(x[0], y[0])[0] == pytest.approx(expected[0], rel=1e-12)


@pytest.mark.parametrize("dims", DIMS)
def test_distances_beyond_float32_raise(dims):
    def pair(distance):
        # One frame each, opposite corners: distance = 2 v sqrt(D).
        value = distance / (2 * np.sqrt(dims))
        return np.full((1, 1, dims), value), np.full((1, 1, dims), -value)

    x, y = pair(0.9 * FLOAT32_MAX)
    assert dtw_distance(x, y)[0] == pytest.approx(0.9 * FLOAT32_MAX, rel=1e-6)
    assert pairwise_distances(list(x), list(y))[0, 0] == pytest.approx(0.9 * FLOAT32_MAX, rel=1e-6)
    x, y = pair(1.1 * FLOAT32_MAX)
    message = r"`x` and `y`: expected .* below the float32 maximum \(3\.4e\+38\), received values"
    with pytest.raises(ParameterError, match=message + r" up to .* pair 0 overflows\.$"):
        dtw_distance(x, y)
    with pytest.raises(ParameterError, match=r"`X` and `Y`: .*float32 maximum.*entry \(0, 0\)"):
        pairwise_distances(list(x), list(y))
    assert dtw_path(x[0], y[0])[0] == pytest.approx(1.1 * FLOAT32_MAX, rel=1e-12)  # float64
    value = 1e308 / np.sqrt(dims)  # distance 2e308
    with pytest.raises(ParameterError, match=r"`x` and `y`: .*float64 maximum \(1\.8e\+308\)"):
        dtw_path(np.full((1, dims), value), np.full((1, dims), -value))


@pytest.mark.parametrize("dims", [2, 13, 64])
def test_float64_far_from_origin_keeps_its_precision(rng, dims):
    # Cast to float32 first, 1e6 + N(0, 1) kept steps of 0.06 (0.2 % off at D = 2).
    x = 1e6 + rng.standard_normal((3, 30, dims))
    y = 1e6 + rng.standard_normal((3, 25, dims))
    expected = reference_batch(x, y, [30] * 3, [25] * 3)
    np.testing.assert_allclose(dtw_distance(x, y), expected, rtol=1e-5)
    np.testing.assert_allclose(pairwise_distances(list(x), list(y)).diagonal(), expected, rtol=1e-5)
    self_distance = pairwise_distances(list(x))[0, 1]
    np.testing.assert_allclose(self_distance, reference_dtw(x[0], x[1]), rtol=1e-5)
    assert dtw_path(x[0], y[0])[0] == pytest.approx(expected[0], rel=1e-9)


def test_unit_frames_give_the_cosine_through_the_euclidean_cost(rng):
    from discovery.dtw import unit_frames

    x = rng.normal(size=(5, 4)) * 1e3
    x[2] = 0.0
    unit = unit_frames(x)
    assert unit.dtype == np.float32 and not unit[2].any()
    np.testing.assert_allclose(np.linalg.norm(unit[[0, 1, 3, 4]], axis=1), 1.0, rtol=1e-6)
    cosine = x[0] @ x[1] / np.linalg.norm(x[0]) / np.linalg.norm(x[1])
    np.testing.assert_allclose(np.linalg.norm(unit[0] - unit[1]) ** 2, 2 - 2 * cosine,
                               atol=1e-5)
