"""Batched dynamic time warping (DTW) as a compiled TensorFlow kernel.

Definition (Sakoe & Chiba 1978; Müller 2015, *Fundamentals of Music Processing*,
section 3.2): the local cost of frames ``x[i]`` and ``y[j]`` is their Euclidean
distance ``c[i, j] = ||x[i] - y[j]||``, accumulated with the symmetric recurrence of
weight 1 for every step,

    D[i, j] = c[i, j] + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1]),  D[0, 0] = c[0, 0],

and the distance is ``D[N - 1, M - 1]``, the cost of the cheapest monotone path from
``(0, 0)`` to ``(N - 1, M - 1)``. This equals dtaidistance's
``dtw_ndim.distance(x, y, inner_dist="euclidean")``; it is not dtwalign's default,
which counts diagonal steps twice and divides by ``N + M``.

Options:
    open_end: ``x`` is aligned whole to a prefix of ``y``; the distance is
        ``min_j D[N - 1, j]``. This equals dtaidistance with ``psi=(0, 0, 0, M - 1)``;
        dtwalign's ``open_end=True`` differs by its step weights and normalisation.
    band: Sakoe-Chiba radius ``r`` in frames, widened to follow unequal lengths: cell
        ``(i, j)`` is allowed iff ``min(0, M - N) - r <= j - i <= max(0, M - N) + r``,
        the parallelogram between the main diagonal and the diagonal through the end
        cell, grown by ``r`` on both sides. For ``N == M`` it is Sakoe & Chiba's
        ``|i - j| <= r``. It equals dtaidistance's ``window=r + 1``, and the end cell is
        always reachable, so a band never yields ``inf``. It restricts the alignment;
        it does not make the computation faster.
    normalized: divide by the number of cells of the optimal path (the cheapest;
        among equally cheap paths, the shortest), giving a mean local cost. With
        ``open_end`` the path is chosen by unnormalised cost, then divided.

Inputs: frames within the true lengths must be finite; NaN or inf there raises a
`ParameterError` that names the argument, pair and frame, in every public function.
Frames past a length are padding: they never reach a result and are never checked, so
padding may hold anything, NaN included.

Precision: the kernel computes in float32, on frames prepared in float64.

- Centring. A central frame (the mean of a sample) is subtracted from every frame;
  distances do not change. Float64 and integer input is centred in float64, before the
  cast to float32, so data far from the origin keep their detail: ``1e6 + N(0, 1)``
  comes out within 1e-5 (relative) of a float64 reference, where casting first would
  round every value to a multiple of 0.06. Float32 input is centred inside the kernel,
  and only for the matrix-product local costs below. Data whose mean lies within its
  spread of the origin (normalised features) are not centred: it would gain at most 2x.
- Scaling. DTW is homogeneous, ``d(s x, s y) = s d(x, y)`` for s > 0. When the largest
  magnitude within the true lengths lies outside ``[2^-32, 2^32]``, the frames are
  multiplied by a power of two that brings it below 1 and the distances divided by it
  afterwards; a power of two changes no rounding, so this is exact. Squared frame
  distances therefore neither overflow float32 (which, unscaled, happened from about
  1e19 with 13 features) nor underflow it, at any input magnitude, raw or centred. The
  one limit is the result's dtype: a distance above the float32 maximum (3.4e38) raises
  a `ParameterError`, and distances below 1.2e-38 (float32's smallest normal number)
  keep fewer digits. `dtw_path` computes in float64 and scales the same way.
- Local costs. On a CPU with more than 4 features, local costs come from the float32
  expansion ``|x|^2 + |y|^2 - 2 x.y`` of the centred frames. Its rounding error in a
  squared frame distance is up to about ``8 eps (|x|^2 + |y|^2)``, eps = 6e-8, so a
  frame distance is good to about ``sqrt(8 eps (|x|^2 + |y|^2))`` in absolute terms
  (0.02 for 40 features of spread 3): negligible between different sounds, but frames
  closer than a few times that read as 0 or slightly off. Identical frames give exactly
  0. With at most 4 features, and on a GPU, local costs come from frame differences and
  are exact to float32.

How it runs: pairs sit ``lanes`` to a group with the pair axis last (contiguous, so
each step is a vector operation across pairs); local costs come from one matrix product
(``|x|^2 + |y|^2 - 2 x.y``); an XLA-compiled ``tf.while_loop`` walks the anti-diagonals
keeping only the last two. Lengths are padded to a few bucket sizes so that one compiled
kernel serves many pairs, with the true lengths masking the padding. On a CPU,
independent calls run on one thread per core: one call's short loop steps keep only
about 1.5 of 2 cores busy.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, NamedTuple, Sequence, TypeVar

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from discovery.errors import ParameterError

__all__ = ["DTWPath", "dtw_distance", "dtw_path", "pairwise_distances", "unit_frames"]

# Most pairs per lane group, the kernel's contiguous (vector) axis. The loop runs
# fastest at 64 lanes (8 to 32 ran it 1.7-4x slower on a CPU), which pairwise tiles
# get for free; paired batches must be transposed into lanes, and 32-lane tiles
# transpose 2x faster, which paid for the slower loop (calls ~8 % faster on a CPU).
_MAX_LANES = {"paired": 32, "cross": 64}
# Pairs per compiled call: about 1,000 pairs of 100x100 frames keep the loop state
# (rows x pairs floats) in a CPU's L2 cache; a GPU wants more parallel work.
_BATCH_SIZE = {"CPU": 1024, "GPU": 8192}
# Padded cost-matrix cells per call (float32; the kernel holds about three buffers
# of this size), which bounds memory whatever the sequence lengths.
_MAX_CELLS = {"CPU": 1 << 24, "GPU": 1 << 26}
# Up to this many features the local cost comes from frame differences on a CPU:
# exact, and no slower than the matrix product at so few features.
_DIRECT_COST_MAX_DIMS = 4
_FLOAT32_EPSILON = 2.0**-24
_NO_BAND = 1 << 30
# Largest magnitudes computed as they are; data outside are scaled by a power of two
# (exact). Inside, centred values stay below 2^33, so squared distances (at most
# 4 D 2^66) are far from float32's maximum (2^128) for any D below 2^60, and squares
# of values from 2^-32 (2^-64) far above its smallest normal number (2^-126).
_UNSCALED_RANGE = (2.0**-32, 2.0**32)
# Compiled kernels are created once even when worker threads ask at the same time.
_COMPILE_LOCK = threading.Lock()

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


class DTWPath(NamedTuple):
    """What `dtw_path` returns; unpacks as `distance, path`.

    Attributes:
        distance: the DTW distance, in the unit of the features.
        path: (L, 2) int64 (i, j) cells of the optimal warping path.
    """

    distance: float
    path: np.ndarray


def unit_frames(frames: ArrayLike) -> np.ndarray:
    """Each frame divided by its L2 norm (all-zero frames stay zero), as float32: on
    such frames the Euclidean local cost is a monotone function of the cosine
    distance, ``||x - y|| = sqrt(2 - 2 cos(x, y))``."""
    frames = np.asarray(frames, np.float64)
    norms = np.linalg.norm(frames, axis=1, keepdims=True)
    return (frames / np.maximum(norms, 1e-8)).astype(np.float32)


def dtw_distance(
    x: ArrayLike,
    y: ArrayLike,
    *,
    x_lengths: ArrayLike | None = None,
    y_lengths: ArrayLike | None = None,
    open_end: bool = False,
    band: int | None = None,
    normalized: bool = False,
) -> np.ndarray:
    """DTW distances between paired sequences, batched.

    Pair b aligns ``x[b, :x_lengths[b]]`` with ``y[b, :y_lengths[b]]``; frames past a
    length are padding and never affect the result. The module docstring gives the
    exact definition and which other libraries each option matches (Sakoe & Chiba
    1978; Müller 2015, section 3.2). The first call for a new padded shape compiles
    the kernel (about a second); later calls reuse it.

    Args:
        x: (B, N, D) float array or tensor. The pairs' first sequences, frames first.
        y: (B, M, D) float array or tensor with the same B and D.
        x_lengths: (B,) ints in [1, N], or None for all N. True lengths of x.
        y_lengths: (B,) ints in [1, M], or None for all M. True lengths of y.
        open_end: bool. Align x whole to the best prefix of y. Defaults to False.
        band: int >= 0 or None. Sakoe-Chiba radius in frames, widened to follow
            unequal lengths (the end stays reachable). Defaults to None (no band).
        normalized: bool. Divide by the optimal path's number of cells. Defaults to
            False.

    Returns:
        (B,) float32 NumPy array of distances, in the unit of the features.

    Raises:
        ParameterError: for a wrong rank, an empty axis, mismatched B or D, lengths
            out of range, a negative band, NaN or inf within the true lengths (padding
            is not checked), or a distance beyond the float32 range (above 3.4e38).
            Any finite input magnitude is fine otherwise; see Precision in the
            module docstring.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((4, 50, 13))
        >>> dtw_distance(x, x[:, ::-1]).shape
        (4,)
    """
    x = _as_real_array(x, "x", rank=3)
    y = _as_real_array(y, "y", rank=3)
    _check_same_dims(x.shape[2], y.shape[2])
    if x.shape[0] != y.shape[0]:
        raise ParameterError(
            f"Invalid shapes: `x` and `y` must hold the same number of pairs, "
            f"received {x.shape[0]} and {y.shape[0]}."
        )
    x_len = _check_lengths(x_lengths, "x_lengths", x.shape[0], x.shape[1])
    y_len = _check_lengths(y_lengths, "y_lengths", y.shape[0], y.shape[1])
    radius = _check_band(band)
    magnitude = max(_magnitude(x, "x", x_len), _magnitude(y, "y", y_len))
    scale = _scale_for(magnitude)
    sample = [x[0, : x_len[0]], y[0, : y_len[0]], x[:, 0], y[:, 0]]
    center = _center_of(sample, scale, exact_input=_fits_float32([x, y]))
    (x, y), center = _kernel_frames([x, y], center, scale)

    # Sorted by padded shape, each call pads only to the bucket of its own pairs.
    x_bucket = np.array([_padded_length(n) for n in x_len])
    y_bucket = np.array([_padded_length(n) for n in y_len])
    order = np.lexsort([y_bucket, x_bucket])
    device = _device_kind()
    max_pairs = _max_pairs(_BATCH_SIZE[device], x_bucket.max(), y_bucket.max(), device)
    per_call = math.prod(_call_shape(len(x), max_pairs))

    def run(pairs: np.ndarray) -> np.ndarray:
        lanes, groups = _call_shape(len(pairs), per_call)
        count = lanes * groups
        n_x, n_y = x_bucket[pairs].max(), y_bucket[pairs].max()
        values = _call_kernel(
            "paired", open_end, normalized,
            _take(x, pairs, count, n_x), _take(y, pairs, count, n_y),
            _padded_lengths(x_len[pairs], count).reshape(groups, lanes),
            _padded_lengths(y_len[pairs], count).reshape(groups, lanes),
            radius, center,
        )
        return values.reshape(-1)[: len(pairs)]

    calls = [order[start : start + per_call] for start in range(0, len(order), per_call)]
    result = np.empty(len(x), np.float32)
    for pairs, values in zip(calls, _map_threads(run, calls, _default_workers())):
        result[pairs] = values
    return _unscaled(result, scale, magnitude, "`x` and `y`")


def pairwise_distances(
    X: Sequence[ArrayLike],
    Y: Sequence[ArrayLike] | None = None,
    *,
    open_end: bool = False,
    band: int | None = None,
    normalized: bool = False,
    batch_size: int | None = None,
    n_workers: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """DTW distance matrix between two lists of variable-length sequences.

    Pairs are computed in tiles of up to `batch_size` pairs, one compiled call each,
    from sequences sorted by length so that a tile pads little; memory is bounded by
    the tile, not by the number of sequences. Each tile needs one matrix product for
    all of its pairs, so this is faster per pair than `dtw_distance`. With ``Y=None``
    and a closed end, only the upper triangle is computed and mirrored (closed-end DTW
    is symmetric); with ``open_end=True`` every ordered pair is computed, since it is
    not. The diagonal of ``pairwise_distances(X)`` is 0.

    Args:
        X: sequence of n arrays (n_frames_i, D), each with at least one frame.
        Y: sequence of m arrays (m_frames_j, D), or None for X against itself.
        open_end: bool. Align each X[i] whole to a prefix of Y[j]. Defaults to False.
        band: int >= 0 or None. Sakoe-Chiba radius in frames, as in `dtw_distance`.
        normalized: bool. Divide by the optimal path's number of cells.
        batch_size: int >= 1 or None. Pairs per compiled call; long sequences get
            fewer, so that a call stays under 2^24 cost cells (2^26 on a GPU). None
            means 1024 on a CPU, 8192 on a GPU.
        n_workers: int >= 1 or None. Calls run at once; None means one per CPU core,
            or 1 on a GPU.
        progress: bool. Show a tqdm progress bar over pairs. Defaults to False.

    Returns:
        (n, m) float32 NumPy array; entry (i, j) is the `dtw_distance` of X[i] and Y[j].

    Raises:
        ParameterError: for an empty list, a sequence that is not 2-D or has no frames,
            mismatched feature dimensions, NaN or inf (the message names the sequence
            and frame), a distance beyond the float32 range (above 3.4e38), or an
            invalid option.
    """
    symmetric = Y is None
    xs, magnitude = _check_sequences(X, "X")
    if symmetric:
        ys = xs
    else:
        ys, y_magnitude = _check_sequences(Y, "Y")
        magnitude = max(magnitude, y_magnitude)
    _check_same_dims(xs[0].shape[1], ys[0].shape[1])
    radius = _check_band(band)
    device = _device_kind()
    if batch_size is None:
        batch_size = _BATCH_SIZE[device]
    batch_size = _check_positive_int(batch_size, "batch_size")
    if n_workers is None:
        n_workers = _default_workers()
    n_workers = _check_positive_int(n_workers, "n_workers")
    scale = _scale_for(magnitude)
    sequences = xs if symmetric else xs + ys
    sample = [seq[:: max(1, len(seq) // 4)] for seq in sequences[:2048]]
    center = _center_of(sample, scale, exact_input=_fits_float32(sequences))
    sequences, center = _kernel_frames(sequences, center, scale)
    xs = sequences[: len(xs)]
    ys = xs if symmetric else sequences[len(xs) :]

    x_len = np.array([len(seq) for seq in xs])
    y_len = np.array([len(seq) for seq in ys])
    # Closed-end self-distances: only pairs i < j (in sorted order) are computed.
    upper_only = symmetric and not open_end
    # Sorted by length, a tile's sequences have similar lengths and pad little.
    x_order = np.argsort(x_len, kind="stable")
    y_order = np.argsort(y_len, kind="stable")
    n_x, n_y = _padded_length(x_len.max()), _padded_length(y_len.max())
    max_pairs = _max_pairs(batch_size, n_x, n_y, device)
    rows_per_tile, lanes = _tile_shape(len(xs), len(ys), max_pairs, n_workers)
    tiles = [
        (r0, c0)
        for r0 in range(0, len(xs), rows_per_tile)
        for c0 in range(0, len(ys), lanes)
        if not (upper_only and r0 >= c0 + lanes - 1)
    ]

    def run(tile: tuple[int, int]) -> np.ndarray:
        rows = x_order[tile[0] : tile[0] + rows_per_tile]
        cols = y_order[tile[1] : tile[1] + lanes]
        x_lens = _padded_lengths(x_len[rows], rows_per_tile)
        y_lens = _padded_lengths(y_len[cols], lanes)
        values = _call_kernel(
            "cross", open_end, normalized,
            _pad_frames([xs[r] for r in rows], _padded_length(x_lens.max()), rows_per_tile),
            _pad_frames([ys[c] for c in cols], _padded_length(y_lens.max()), lanes),
            np.broadcast_to(x_lens[:, None], (rows_per_tile, lanes)),
            np.broadcast_to(y_lens[None, :], (rows_per_tile, lanes)),
            radius, center,
        )
        return values[: len(rows), : len(cols)]

    result = np.zeros((len(xs), len(ys)), np.float32)
    n_pairs = sum(min(rows_per_tile, len(xs) - r) * min(lanes, len(ys) - c) for r, c in tiles)
    bar = tqdm(total=n_pairs, unit="pair", desc="DTW", disable=not progress)
    for (r0, c0), values in zip(tiles, _map_threads(run, tiles, n_workers)):
        _store_tile(result, values, x_order, y_order, (r0, c0), upper_only)
        bar.update(values.size)
    bar.close()
    if symmetric:
        np.fill_diagonal(result, 0.0)
    return _unscaled(result, scale, magnitude, "`X` and `Y`" if not symmetric else "`X`")


def _store_tile(result, values, x_order, y_order, start: tuple[int, int], upper_only: bool) -> None:
    """Write a tile of distances, whose rows and columns start at `start` in sort
    order, into the (n, m) result; with `upper_only`, only pairs before the diagonal
    in sort order, and their mirror images."""
    r0, c0 = start
    rows = x_order[r0 : r0 + values.shape[0]]
    cols = y_order[c0 : c0 + values.shape[1]]
    if not upper_only:
        result[np.ix_(rows, cols)] = values
        return
    p, q = np.nonzero(np.arange(r0, r0 + len(rows))[:, None] < np.arange(c0, c0 + len(cols)))
    result[rows[p], cols[q]] = values[p, q]
    result[cols[q], rows[p]] = values[p, q]


def dtw_path(x: ArrayLike, y: ArrayLike, *, open_end: bool = False,
             band: int | None = None) -> DTWPath:
    """DTW distance and optimal warping path of one pair, in float64 NumPy.

    Same definition as `dtw_distance` (Euclidean local cost, symmetric steps of weight
    1, same `band` and `open_end`); meant for inspecting or plotting one alignment.
    Runs in O(N M) time and memory.

    Args:
        x: (N, D) float array.
        y: (M, D) float array with the same D.
        open_end: bool. Align x whole to the best prefix of y. Defaults to False.
        band: int >= 0 or None. Sakoe-Chiba radius, as in `dtw_distance`.

    Returns:
        `DTWPath(distance, path)`: the distance as a float, and the path as an (L, 2)
        int64 array of (i, j) cells, non-decreasing in both columns with steps of at most
        one, from (0, 0) to (N - 1, M - 1) (with `open_end`, to (N - 1, j) for the best
        j). On ties the diagonal step is preferred.

    Raises:
        ParameterError: for a wrong rank, no frames, mismatched D, NaN or inf (the
            message names the frame), a negative band, or a distance beyond the
            float64 range (above 1.8e308). Data of any finite magnitude are scaled by
            a power of two as in `dtw_distance`, so squares neither overflow nor
            underflow.
    """
    x = _as_real_array(x, "x", rank=2)
    y = _as_real_array(y, "y", rank=2)
    _check_same_dims(x.shape[1], y.shape[1])
    magnitude = max(_magnitude(x, "x"), _magnitude(y, "y"))
    radius = _check_band(band)
    scale = _scale_for(magnitude)
    # Scaling by a power of two is exact, so the path is the one of the data as given.
    x = x.astype(np.float64) * scale
    y = y.astype(np.float64) * scale
    accumulated = _accumulated_cost(x, y, radius)
    end = int(np.argmin(accumulated[-1])) if open_end else len(y) - 1
    distance = _unscaled(accumulated[-1, end : end + 1], scale, magnitude, "`x` and `y`")
    return DTWPath(float(distance[0]), _backtrack(accumulated, end))


# --------------------------------------------------------------------------------------
# Batching: buckets, call shapes, worker threads
# --------------------------------------------------------------------------------------


def _padded_length(n: int) -> int:
    """Bucketed length for n frames: at least n + 1 (one padding frame carries the end
    value to the corner), rounded up to a step of 1/16 to 1/8 of the length (8, 16,
    32, ... frames), so little is padding and few shapes get compiled."""
    n = int(n)
    return _round_up(n + 1, max(8, 1 << max(0, (n + 1).bit_length() - 4)))


def _max_pairs(batch_size: int, n_x: int, n_y: int, device: str) -> int:
    """Pairs per call: `batch_size`, fewer where the cost tensor would pass the budget."""
    return max(1, min(batch_size, _MAX_CELLS[device] // (int(n_x) * int(n_y))))


def _call_shape(n_pairs: int, max_pairs: int) -> tuple[int, int]:
    """(lanes, groups) of a paired call holding `n_pairs`, at most `max_pairs`.

    Lanes are a multiple of 8 up to 32 and groups a power of two, so that few shapes
    get compiled: the smallest such shape that holds `n_pairs`, or the largest that
    fits `max_pairs` when there are more pairs than that.
    """
    lanes = min(_MAX_LANES["paired"], max_pairs, _round_up(min(n_pairs, max_pairs), 8))
    if n_pairs >= max_pairs:
        return lanes, 1 << max(0, (max_pairs // lanes).bit_length() - 1)
    return lanes, 1 << max(0, (_ceil_div(n_pairs, lanes) - 1).bit_length())


def _tile_shape(n_x_seq: int, n_y_seq: int, max_pairs: int, n_workers: int) -> tuple[int, int]:
    """(x sequences, y sequences) per pairwise tile.

    The y sequences are the lanes (a multiple of 8, at most 64). Both are split
    evenly, so that the last tile is not mostly padding, and into a multiple of
    `n_workers` tiles where there are enough x sequences, so no worker idles at the end.
    """
    max_lanes = min(_MAX_LANES["cross"], max_pairs, _round_up(min(max_pairs, n_y_seq), 8))
    n_col_tiles = _ceil_div(n_y_seq, max_lanes)
    lanes = min(max_lanes, _round_up(_ceil_div(n_y_seq, n_col_tiles), 8))
    n_row_tiles = _ceil_div(n_x_seq, max(1, max_pairs // lanes))
    if (n_row_tiles * n_col_tiles) % n_workers:
        n_row_tiles = min(n_x_seq, _round_up(n_row_tiles, n_workers))
    return _ceil_div(n_x_seq, n_row_tiles), lanes


def _take(frames: np.ndarray, pairs: np.ndarray, count: int, n_frames: int) -> np.ndarray:
    """Rows of a (B, F, D) batch as (count, n_frames, D), zero-padded.

    A view when the rows are one run and no padding is needed; otherwise a copy. Every
    call sees a bucketed shape, so shapes (and compilations) stay few.
    """
    n_frames = int(n_frames)
    one_run = count == len(pairs) and np.all(np.diff(pairs) == 1)
    if one_run and frames.shape[1] >= n_frames:
        return frames[pairs[0] : pairs[-1] + 1, :n_frames]
    out = np.zeros((count, n_frames, frames.shape[2]), np.float32)
    kept = min(n_frames, frames.shape[1])
    out[: len(pairs), :kept] = frames[pairs, :kept]
    return out


def _pad_frames(sequences: Sequence[np.ndarray], n_frames: int, count: int) -> np.ndarray:
    """Stack (n_i, D) sequences into a zero-padded (count, n_frames, D) float32 array."""
    out = np.zeros((count, n_frames, sequences[0].shape[1]), np.float32)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq
    return out


def _padded_lengths(lengths: np.ndarray, count: int) -> np.ndarray:
    """Lengths extended to `count` entries; padding pairs get one frame each."""
    out = np.ones(count, np.int32)
    out[: len(lengths)] = lengths
    return out


def _center_of(
    frame_sets: Sequence[np.ndarray], scale: float, *, exact_input: bool
) -> np.ndarray | None:
    """(D,) float64 mean of a sample of frames, times `scale`, to subtract from all the
    scaled frames; None if not needed.

    Distances do not change, but two roundings shrink with the data's distance from the
    origin: the cast of float64 (or integer) input to float32, which keeps 24 bits of
    each value rather than of its deviation from the centre, and the float32 rounding of
    |x|^2 + |y|^2 - 2 x.y, proportional to |x|^2 (raw log spectra sit far from the
    origin). Float32 input on the exact local costs needs neither. Any central frame
    will do, so a sample is enough. Data whose mean is already within its spread of the
    origin (normalised features) gain at most 2x, not worth the extra pass.

    Args:
        frame_sets: arrays (..., D) of frames within the true lengths.
        scale: the power of two the frames will be multiplied by (`_scale_for`).
        exact_input: whether every input converts to float32 without rounding.
    """
    if exact_input and _exact_cost(frame_sets[0].shape[-1]):
        return None
    frames = np.concatenate([np.reshape(f, (-1, f.shape[-1])) for f in frame_sets])
    frames = frames[:: max(1, len(frames) // 4096)].astype(np.float64) * scale
    center = frames.mean(0)
    spread = np.mean(np.sum((frames - center) ** 2, axis=1))
    return center if np.sum(center**2) > spread else None


def _fits_float32(arrays: Sequence[np.ndarray]) -> bool:
    """Whether every array converts to float32 without rounding (float32, float16,
    small integers)."""
    return all(np.can_cast(array.dtype, np.float32) for array in arrays)


def _kernel_frames(
    arrays: Sequence[np.ndarray], center: np.ndarray | None, scale: float
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The arrays as float32 for the kernel, and the centre the kernel still subtracts.

    Float32 input that needs no scaling goes as it is (no copy), and the kernel
    subtracts the centre (as float32), which saves a pass over the batch. Anything else
    is scaled and centred here, in float64, and then cast: the cast rounds the centred
    values, not the raw ones.
    """
    if scale == 1 and _fits_float32(arrays):
        kernel_center = None if center is None else center.astype(np.float32)
        return [array.astype(np.float32, copy=False) for array in arrays], kernel_center
    return [_shifted_float32(array, center, scale) for array in arrays], None


def _shifted_float32(frames: np.ndarray, center: np.ndarray | None, scale: float) -> np.ndarray:
    """``frames * scale - center`` computed in float64, as float32. Padding may hold
    anything, so values that overflow float32 become inf without a warning."""
    with np.errstate(over="ignore", invalid="ignore"):
        if scale != 1:
            frames = frames.astype(np.float64) * scale  # a power of two: exact
        if center is None:
            return frames.astype(np.float32)
        out = np.empty(frames.shape, np.float32)
        return np.subtract(frames, center, out=out, dtype=np.float64, casting="same_kind")


def _scale_for(magnitude: float) -> float:
    """1, or the power of two that brings `magnitude` into [0.5, 1) when it lies
    outside `_UNSCALED_RANGE` (kept within 2^+-1000, a finite float64)."""
    if magnitude == 0 or _UNSCALED_RANGE[0] <= magnitude <= _UNSCALED_RANGE[1]:
        return 1.0
    return 2.0 ** min(1000, -math.frexp(magnitude)[1])


def _unscaled(distances: np.ndarray, scale: float, magnitude: float, names: str) -> np.ndarray:
    """Distances of scaled frames back in the data's unit, in their own dtype.

    Raises:
        ParameterError: where a distance exceeds the dtype's range (inf).
    """
    if scale != 1:
        with np.errstate(over="ignore"):
            distances = (distances / np.float64(scale)).astype(distances.dtype)
    if np.isfinite(distances).all():
        return distances
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(distances))[0])
    where = f"pair {index[0]}" if len(index) == 1 else f"entry {index}"
    limit = np.finfo(distances.dtype)
    raise ParameterError(
        f"Invalid values for {names}: expected values whose distances stay below the "
        f"{limit.dtype} maximum ({limit.max:.2g}), received values up to {magnitude:.3g} "
        f"in magnitude, and the distance of {where} overflows."
    )


def _device_kind() -> str:
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def _default_workers() -> int:
    """Calls to run at once: one per CPU core; one on a GPU.

    A single call keeps only about 1.5 of 2 CPU cores busy: XLA splits each loop step
    across threads, but the steps are short. Two calls at once ran 1.4-2x faster,
    from 500 to 2,000 pairs of 100x100 frames.
    """
    if _device_kind() == "GPU":
        return 1
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _map_threads(
    function: Callable[[_Item], _Result], items: Sequence[_Item], n_workers: int
) -> Iterator[_Result]:
    """``function(item)`` for each item, on `n_workers` threads, yielded in order.

    At most 2 * n_workers calls are in flight, so memory stays bounded however many
    items there are. TensorFlow releases the GIL while a compiled call runs.
    """
    if min(n_workers, len(items)) == 1:
        yield from map(function, items)
        return
    pool = _thread_pool(n_workers)
    pending: collections.deque[Future] = collections.deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= 2 * n_workers:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@functools.lru_cache(maxsize=None)
def _thread_pool(n_workers: int) -> ThreadPoolExecutor:
    """A pool kept for the process: TensorFlow sets up per-thread state on a thread's
    first call, which made fresh threads per call up to 2x slower."""
    return ThreadPoolExecutor(n_workers, thread_name_prefix="dtw")


def _call_kernel(layout, open_end, normalized, x, y, x_len, y_len, radius, center) -> np.ndarray:
    """Run the compiled kernel on one call's arrays; returns (groups, lanes) distances."""
    centered = center is not None
    with _COMPILE_LOCK:
        kernel = _compiled(layout, open_end, normalized, centered, x.shape, y.shape, x_len.shape)
    values = kernel(
        tf.constant(x),
        tf.constant(y),
        tf.constant(x_len, tf.int32),
        tf.constant(y_len, tf.int32),
        tf.constant(radius, tf.int32),
        tf.constant(center if centered else np.zeros(x.shape[-1], np.float32)),
    )
    return values.numpy()


# --------------------------------------------------------------------------------------
# Compiled kernel (XLA; runs on CPU and GPU; shapes static, lengths and band are data)
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _compiled(
    layout: str,
    open_end: bool,
    normalized: bool,
    centered: bool,
    x_shape: tuple,
    y_shape: tuple,
    len_shape: tuple,
) -> Callable[..., tf.Tensor]:
    """The compiled kernel for one layout, option set and input shape (cached).

    One `tf.function` per shape, each traced once: callers bucket shapes, so there
    are few, and TensorFlow never sees a function retraced for new shapes.

    Layouts: "paired" takes x (B, N, D) and y (B, M, D), pair b = (x[b], y[b]), with
    (groups, lanes) lengths, B = groups * lanes; "cross" takes x (A, N, D) and
    y (T, M, D), pair (a, t) = (x[a], y[t]), with (A, T) lengths.
    """
    dims = x_shape[-1]
    exact = _exact_cost(dims)

    def kernel(x, y, x_len, y_len, band, center):
        if centered:
            x = x - center
            y = y - center
        if layout == "cross":
            squared = _squared_distances_cross(x, y, exact)
        else:
            squared = _squared_distances_paired(x, y, exact, lanes=len_shape[1])
        cost = _local_cost(squared, x_len, y_len, band, open_end)
        return _accumulate(cost, x_len, y_len, open_end, normalized)

    signature = [
        tf.TensorSpec(x_shape, tf.float32),
        tf.TensorSpec(y_shape, tf.float32),
        tf.TensorSpec(len_shape, tf.int32),
        tf.TensorSpec(len_shape, tf.int32),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([dims], tf.float32),
    ]
    compiled = tf.function(kernel, input_signature=signature, jit_compile=True)
    # Every shape bucket is its own function, traced once; TensorFlow counts them all
    # as one function "retracing" and warns. The attribute is what it checks.
    compiled._omit_frequent_tracing_warning = True
    return compiled


def _exact_cost(dims: int) -> bool:
    """Whether local costs come from frame differences rather than a matrix product.

    On a GPU always: there a float32 matrix product may run in TF32 (about 1e-3
    relative error; NVIDIA Ampere and later, TensorFlow's default), and a GPU has
    arithmetic to spare for D subtractions per cell. On a CPU only for a few
    features; above that the product is much faster.
    """
    return dims <= _DIRECT_COST_MAX_DIMS or _device_kind() == "GPU"


def _squared_distances_paired(x: tf.Tensor, y: tf.Tensor, exact: bool, lanes: int) -> tf.Tensor:
    """Squared frame distances of paired sequences, (B, N, D) and (B, M, D), as
    (B // lanes, N, M, lanes): pair axis last."""
    batch, n_x, dims = x.shape
    n_y = y.shape[1]
    if exact:
        squared = tf.reduce_sum(tf.square(x[:, :, None, :] - y[:, None, :, :]), -1)
    else:
        norm_x = _squared_norms(x)[:, :, None]  # (B, N, 1)
        norm_y = _squared_norms(y)[:, None, :]  # (B, 1, M)
        products = tf.matmul(x, y, transpose_b=True)
        squared = _snap_to_zero(norm_x + norm_y - 2.0 * products, norm_x + norm_y, dims)
    squared = tf.reshape(squared, [batch // lanes, lanes, n_x, n_y])
    # Transposing tiles of `lanes` pairs costs about two copies; moving the whole
    # batch axis last in one go was about 3x slower under XLA on a CPU.
    return tf.transpose(squared, [0, 2, 3, 1])


def _squared_distances_cross(x: tf.Tensor, y: tf.Tensor, exact: bool) -> tf.Tensor:
    """Squared frame distances of every x (A, N, D) against every y (T, M, D), as
    (A, N, M, T). One plain matrix product gives the pair-last layout directly: with
    y's frames ordered (frame, sequence), no transpose of the cost tensor is needed."""
    n_seq_x, n_x, dims = x.shape
    n_seq_y, n_y, _ = y.shape
    y = tf.transpose(y, [1, 0, 2])  # (M, T, D)
    if exact:
        return tf.reduce_sum(tf.square(x[:, :, None, None, :] - y[None, None]), -1)
    norm_x = _squared_norms(x)[:, :, None, None]  # (A, N, 1, 1)
    norm_y = _squared_norms(y)[None, None]  # (1, 1, M, T)
    products = tf.matmul(
        tf.reshape(x, [n_seq_x * n_x, dims]), tf.reshape(y, [n_y * n_seq_y, dims]), transpose_b=True
    )
    products = tf.reshape(products, [n_seq_x, n_x, n_y, n_seq_y])
    return _snap_to_zero(norm_x + norm_y - 2.0 * products, norm_x + norm_y, dims)


def _squared_norms(frames: tf.Tensor) -> tf.Tensor:
    """|f|^2 over the last axis, as a matrix-vector product: XLA on a CPU ran that
    about 3x faster than `reduce_sum` over a short contiguous axis (D = 128)."""
    return tf.linalg.matvec(tf.square(frames), tf.ones([frames.shape[-1]]))


def _snap_to_zero(squared: tf.Tensor, scale: tf.Tensor, dims: int) -> tf.Tensor:
    """Zero squared distances that are within float32 rounding of zero.

    For identical frames the expanded form leaves a rounding residue of up to about
    8 eps (|x|^2 + |y|^2) (measured up to D = 1024), which the square root would turn
    into ~1e-3 per frame. Values below 4 sqrt(D + 2) eps (|x|^2 + |y|^2), two to
    sixteen times that residue, are taken as exact zeros.
    """
    tolerance = 4.0 * math.sqrt(dims + 2) * _FLOAT32_EPSILON
    return tf.where(squared <= tolerance * scale, 0.0, tf.maximum(squared, 0.0))


def _local_cost(squared, x_len, y_len, band, open_end: bool) -> tf.Tensor:
    """Euclidean local cost (G, N, M, T) with padding, band and end folded in.

    Cells outside the true matrix or the band cost inf. Padding past the true end
    costs 0 and can be entered only through the end cell (closed end) or from x's
    last row (open end), so the padded corner D[N - 1, M - 1] carries the answer and
    the loop needs no per-pair bookkeeping. This needs N > x_len and M > y_len.

    Args:
        squared: (G, N, M, T) squared distances.
        x_len, y_len: (G, T) int32 true lengths.
        band: int32 scalar radius (`_NO_BAND` for none).
        open_end: whether x may end anywhere in y.
    """
    n_x, n_y = squared.shape[1], squared.shape[2]
    i = tf.range(n_x)[None, :, None, None]
    j = tf.range(n_y)[None, None, :, None]
    n = x_len[:, None, None, :]
    m = y_len[:, None, None, :]
    inside = (i < n) & (j < m)
    inside &= j - i >= tf.minimum(0, m - n) - band
    inside &= j - i <= tf.maximum(0, m - n) + band
    inf = tf.constant(np.inf, tf.float32)
    return tf.where(inside, tf.sqrt(squared), tf.where(_tail(i, j, n, m, open_end), 0.0, inf))


def _tail(i, j, n, m, open_end: bool):
    """Padding cells that cost nothing: they carry the end cell's value to the corner."""
    return i >= n if open_end else (i >= n) & (j >= m)


def _accumulate(cost, x_len, y_len, open_end: bool, normalized: bool) -> tf.Tensor:
    """Run the DTW recurrence over anti-diagonals; returns (G, T) distances.

    The state is one anti-diagonal k = i + j indexed by row i, (G, N, T). Cell
    (i, k - i) of a (N, M) matrix sits at flat offset k + i (M - 1), so the diagonal is
    a strided slice of the flattened cost and no skewed copy is made (building one
    under XLA cost twice the whole loop). Reads that wrap past a row's end are masked.

    Args:
        cost: (G, N, M, T) local cost from `_local_cost`.
        x_len, y_len: (G, T) true lengths; used for path lengths when `normalized`.
        open_end, normalized: as in `dtw_distance`.
    """
    groups, n_x, n_y, lanes = cost.shape
    flat = tf.reshape(cost, [groups, n_x * n_y, lanes])
    span = (n_x - 1) * (n_y - 1) + 1
    rows = tf.range(n_x)[None, :, None]
    inf = tf.constant(np.inf, tf.float32)
    inf_row = tf.fill([groups, 1, lanes], inf)
    zero_row = tf.zeros([groups, 1, lanes])

    def shift_down(state, first_row):
        return tf.concat([first_row, state[:, :-1]], axis=1)

    def diagonal(k):
        cost_k = tf.slice(flat, [0, k, 0], [groups, span, lanes])[:, :: n_y - 1]
        return cost_k, (k - rows >= 0) & (k - rows < n_y)

    def step(k, d1, d2):
        cost_k, in_matrix = diagonal(k)
        origin = tf.where(k == 0, zero_row, inf_row)  # the virtual D[-1, -1] = 0
        best = tf.minimum(tf.minimum(shift_down(d1, inf_row), d1), shift_down(d2, origin))
        return tf.where(in_matrix, cost_k + best, inf)

    def step_with_length(k, d1, d2, l1, l2):
        cost_k, in_matrix = diagonal(k)
        origin = tf.where(k == 0, zero_row, inf_row)
        # Lexicographic (cost, length) minimum over the three predecessors.
        best_d, best_l = shift_down(d2, origin), shift_down(l2, zero_row)
        for cand_d, cand_l in ((shift_down(d1, inf_row), shift_down(l1, zero_row)), (d1, l1)):
            better = (cand_d < best_d) | ((cand_d == best_d) & (cand_l < best_l))
            best_d = tf.where(better, cand_d, best_d)
            best_l = tf.where(better, cand_l, best_l)
        n, m = x_len[:, None, :], y_len[:, None, :]
        weight = tf.where(_tail(rows, k - rows, n, m, open_end), 0.0, 1.0)
        return tf.where(in_matrix, cost_k + best_d, inf), best_l + weight

    n_steps = n_x + n_y - 1
    start = tf.fill([groups, n_x, lanes], inf)
    if not normalized:

        def body(k, d1, d2):
            return k + 1, step(k, d1, d2), d1

        _, d_last, _ = tf.while_loop(lambda k, *_: k < n_steps, body, (0, start, start))
        return d_last[:, -1]

    def body_with_length(k, d1, d2, l1, l2):
        d_new, l_new = step_with_length(k, d1, d2, l1, l2)
        return k + 1, d_new, d1, l_new, l1

    zeros = tf.zeros_like(start)
    _, d_last, _, l_last, _ = tf.while_loop(
        lambda k, *_: k < n_steps, body_with_length, (0, start, start, zeros, zeros)
    )
    return d_last[:, -1] / l_last[:, -1]


# --------------------------------------------------------------------------------------
# Validation (at the Python boundary, never inside the compiled kernel)
# --------------------------------------------------------------------------------------


def _as_real_array(value, name: str, rank: int) -> np.ndarray:
    """A real-valued array of the given rank with no empty axis, in its own dtype (the
    callers cast after centring, so float64 input keeps its precision until then)."""
    try:
        array = np.asarray(value.numpy() if isinstance(value, tf.Tensor) else value)
    except ValueError as error:  # ragged nested lists
        raise ParameterError(f"Invalid value for `{name}`: expected an array, {error}") from None
    if array.ndim != rank:
        axes = "(batch, frames, features)" if rank == 3 else "(frames, features)"
        raise ParameterError(
            f"Invalid shape for `{name}`: expected a {rank}-D array {axes}, "
            f"received shape {array.shape}."
        )
    if 0 in array.shape:
        raise ParameterError(
            f"Invalid shape for `{name}`: expected at least one frame, one feature "
            f"(and one pair), received shape {array.shape}."
        )
    if array.dtype.kind not in "biuf":
        raise ParameterError(
            f"Invalid dtype for `{name}`: expected real numbers, received {array.dtype}."
        )
    return array


def _check_sequences(sequences, name: str) -> tuple[list[np.ndarray], float]:
    """(n_frames, D) arrays, all with the same D and finite, from a non-empty sequence;
    and their largest magnitude."""
    arrays = [_as_real_array(seq, f"{name}[{i}]", rank=2) for i, seq in enumerate(sequences)]
    if not arrays:
        raise ParameterError(
            f"Invalid value for `{name}`: expected at least one sequence, received none."
        )
    for index, seq in enumerate(arrays):
        if seq.shape[1] != arrays[0].shape[1]:
            raise ParameterError(
                f"Invalid shape for `{name}[{index}]`: expected {arrays[0].shape[1]} features "
                f"like `{name}[0]`, received {seq.shape[1]}."
            )
    magnitude = max(_magnitude(seq, f"{name}[{index}]") for index, seq in enumerate(arrays))
    return arrays, magnitude


def _check_same_dims(dims_x: int, dims_y: int) -> None:
    if dims_x != dims_y:
        raise ParameterError(
            f"Invalid shapes: x and y must have the same number of features, "
            f"received {dims_x} and {dims_y}."
        )


def _check_lengths(lengths, name: str, batch: int, n_frames: int) -> np.ndarray:
    """(batch,) integer lengths in [1, n_frames]; None means all n_frames."""
    if lengths is None:
        return np.full(batch, n_frames, np.int64)
    array = np.asarray(lengths.numpy() if isinstance(lengths, tf.Tensor) else lengths)
    if array.shape != (batch,) or array.dtype.kind not in "iu":
        raise ParameterError(
            f"Invalid value for `{name}`: expected {batch} integers (one per pair), "
            f"received an array of shape {array.shape} and dtype {array.dtype}."
        )
    if array.min() < 1 or array.max() > n_frames:
        raise ParameterError(
            f"Invalid value for `{name}`: expected lengths in [1, {n_frames}], "
            f"received values from {array.min()} to {array.max()}."
        )
    return array.astype(np.int64)


def _check_band(band) -> int:
    """The band radius as an int (no band: a radius wider than any matrix)."""
    if band is None:
        return _NO_BAND
    if not _is_int(band) or band < 0:
        raise ParameterError(
            f"Invalid value for `band`: expected an integer >= 0 or None, received {band!r}."
        )
    return int(min(band, _NO_BAND))


def _check_positive_int(value, name: str) -> int:
    if not _is_int(value) or value < 1:
        raise ParameterError(
            f"Invalid value for `{name}`: expected an integer >= 1, received {value!r}."
        )
    return int(value)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _magnitude(frames: np.ndarray, name: str, lengths: np.ndarray | None = None) -> float:
    """The largest |value| among the frames within `lengths` (all frames when None).

    Frames past a length are padding, never checked. The whole array's min and max
    both check and measure (NumPy propagates NaN through both, so no separate isfinite
    pass is needed): two vectorised passes, no Python loop. Only when some frames are
    padding and those two see NaN, inf or a magnitude that needs scaling are the true
    frames gathered (a copy) and measured again. One blind spot is left on purpose:
    padding above 2^-32 around data below it hides how small the data are, which then
    go unscaled; that loses nothing for data above about 1e-18, whose squares are still
    normal float32 numbers.

    Args:
        frames: (B, N, D) batch with (B,) `lengths`, or (N, D) frames and None.
        name: the argument's name, for messages.

    Raises:
        ParameterError: for NaN or inf within the lengths, naming pair and frame.
    """
    low, high = frames.min(), frames.max()
    padded = lengths is not None and lengths.min() < frames.shape[1]
    if padded and not _needs_no_scaling(low, high):
        valid = frames[np.arange(frames.shape[1]) < lengths[:, None]]
        low, high = valid.min(), valid.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        _raise_non_finite(frames, name, lengths)
    return max(abs(float(low)), abs(float(high)))


def _needs_no_scaling(low, high) -> bool:
    """Whether values from `low` to `high` are finite and need no scaling."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return False
    magnitude = max(abs(float(low)), abs(float(high)))
    return _scale_for(magnitude) == 1


def _raise_non_finite(frames: np.ndarray, name: str, lengths: np.ndarray | None) -> None:
    """Raise for the first frame within `lengths` holding NaN or inf (the slow path)."""
    bad = ~np.isfinite(frames).all(axis=-1)  # (B, N) or (N,)
    if lengths is not None:
        bad &= np.arange(frames.shape[1]) < lengths[:, None]
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    values = frames[index]
    where = f"pair {index[0]}, frame {index[1]}" if len(index) == 2 else f"frame {index[0]}"
    raise ParameterError(
        f"Invalid value for `{name}`: expected finite values, received "
        f"{values[~np.isfinite(values)][0]} at {where}."
    )


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, multiple: int) -> int:
    return _ceil_div(a, multiple) * multiple


# --------------------------------------------------------------------------------------
# One pair in NumPy, with its path
# --------------------------------------------------------------------------------------


def _accumulated_cost(x: np.ndarray, y: np.ndarray, radius: int) -> np.ndarray:
    """The (N, M) accumulated cost matrix in float64, inf outside the band.

    Row by row: with A[j] = c[i, j] + min(D[i - 1, j], D[i - 1, j - 1]) and S the
    running sum of row i's costs, D[i, j] = S[j] + min over j' <= j of (A[j'] - S[j']),
    a prefix minimum that NumPy computes without a Python loop over j.
    """
    n_x, n_y = len(x), len(y)
    accumulated = np.full((n_x, n_y), np.inf)
    above = np.full(n_y + 1, np.inf)  # above[j + 1] = D[i - 1, j]; above[0] = D[i - 1, -1]
    above[0] = 0.0  # the virtual D[-1, -1]
    for i in range(n_x):
        lo = max(0, i + min(0, n_y - n_x) - radius)
        hi = min(n_y, i + max(0, n_y - n_x) + radius + 1)
        cost = np.linalg.norm(y[lo:hi] - x[i], axis=1)
        entering = cost + np.minimum(above[lo + 1 : hi + 1], above[lo:hi])
        running = np.cumsum(cost)
        accumulated[i, lo:hi] = running + np.minimum.accumulate(entering - running)
        above = np.concatenate([[np.inf], accumulated[i]])
    return accumulated


def _backtrack(accumulated: np.ndarray, end_j: int) -> np.ndarray:
    """Walk back from (N - 1, end_j) to (0, 0) along the cheapest predecessors."""
    i, j = accumulated.shape[0] - 1, end_j
    path = [(i, j)]
    while i > 0 or j > 0:
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]  # diagonal first: it wins ties
        i, j = min((s for s in steps if s[0] >= 0 and s[1] >= 0), key=lambda s: accumulated[s])
        path.append((i, j))
    return np.array(path[::-1], np.int64)
