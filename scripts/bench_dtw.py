"""Benchmark discovery.dtw against dtaidistance's parallel C implementation.

Both compute the same pairs of random sequences in one run: a cross block of
``a x b`` sequences (a * b = --pairs), which is what dtaidistance's
``distance_matrix_fast(..., block=((0, a), (a, a + b)))`` computes. Ours runs it as
``pairwise_distances(X, Y)`` (one matrix product per tile) and, on the same pairs laid
out as a paired batch, as ``dtw_distance(x, y)``. Open end: dtaidistance's psi
relaxation ``psi=(0, 0, 0, M - 1)`` lets x end anywhere in y, which is exactly
``open_end=True`` (checked below). Kernels are compiled before timing; each timing is
the median of --repeats runs, ours and dtaidistance's interleaved so that both see the
same machine load.

    python scripts/bench_dtw.py               # 2,000 pairs, as in docs/benchmarks.md
    python scripts/bench_dtw.py --quick       # a smoke run: 200 pairs, 2 repeats
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from discovery.dtw import dtw_distance, pairwise_distances  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    n_pairs: int
    x_frames: int
    y_frames: int
    dims: int
    open_end: bool = False


def cross_block_shape(n_pairs: int) -> tuple[int, int]:
    """(a, b) with a * b == n_pairs and a, b as close as possible (a <= b)."""
    a = max(d for d in range(1, math.isqrt(n_pairs) + 1) if n_pairs % d == 0)
    return a, n_pairs // a


def timed_runs(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run_case(case: Case, repeats: int, rng: np.random.Generator) -> list[dict]:
    from dtaidistance import dtw_ndim

    a, b = cross_block_shape(case.n_pairs)
    xs = [rng.standard_normal((case.x_frames, case.dims)).astype(np.float32) for _ in range(a)]
    ys = [rng.standard_normal((case.y_frames, case.dims)).astype(np.float32) for _ in range(b)]
    # The same pairs as a paired batch: pair (i, j) at row i * b + j.
    x_paired = np.repeat(np.stack(xs), b, axis=0)
    y_paired = np.tile(np.stack(ys), (a, 1, 1))
    seqs = [s.astype(np.float64) for s in xs + ys]  # dtaidistance's C code wants doubles
    psi = (0, 0, 0, case.y_frames - 1) if case.open_end else None
    open_end = case.open_end

    def theirs():
        matrix = dtw_ndim.distance_matrix_fast(
            seqs, parallel=True, inner_dist="euclidean", block=((0, a), (a, a + b)), psi=psi
        )
        return matrix[:a, a:]

    methods = {
        "dtaidistance (C, OpenMP)": theirs,
        "ours pairwise_distances": lambda: pairwise_distances(xs, ys, open_end=open_end),
        "ours pairwise, 1 worker":
            lambda: pairwise_distances(xs, ys, open_end=open_end, n_workers=1),
        "ours dtw_distance (paired)": lambda: dtw_distance(x_paired, y_paired, open_end=open_end),
    }
    # Warm-up: compiles our kernels; also the agreement check on every pair.
    results = {name: np.asarray(fn()).reshape(a, b) for name, fn in methods.items()}
    reference = results["dtaidistance (C, OpenMP)"]
    for name, values in results.items():
        np.testing.assert_allclose(values, reference, rtol=1e-4, err_msg=name)
    max_rel = max(float(np.max(np.abs(v - reference) / reference)) for v in results.values())

    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            times[name] += timed_runs(fn, 1)
    cells = case.n_pairs * case.x_frames * case.y_frames
    theirs_s = statistics.median(times["dtaidistance (C, OpenMP)"])
    rows = []
    for name in methods:
        seconds = statistics.median(times[name])
        rows.append({
            "case": case.name, "method": name, "seconds": seconds,
            "pairs_per_s": case.n_pairs / seconds, "mcells_per_s": cells / seconds / 1e6,
            "ratio": theirs_s / seconds, "max_rel": max_rel,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000,
                        help="pairs per closed-end case (default 2000)")
    parser.add_argument("--open-end-pairs", type=int, default=500,
                        help="pairs in the open-end case (default 500)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per method (default 7)")
    parser.add_argument("--quick", action="store_true", help="200 pairs, 100 open-end, 2 repeats")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.open_end_pairs, args.repeats = 200, 100, 2

    import dtaidistance

    gpus = tf.config.list_logical_devices("GPU")
    print(f"TensorFlow {tf.__version__} on {'GPU: ' + gpus[0].name if gpus else 'CPU'}; "
          f"dtaidistance {dtaidistance.__version__}; {os.cpu_count()} CPU cores; "
          f"{platform.processor() or platform.machine()}; load average {os.getloadavg()[0]:.1f}")
    cases = [
        Case(f"{args.pairs} pairs 100x100, D=26", args.pairs, 100, 100, 26),
        Case(f"{args.pairs} pairs 100x100, D=128", args.pairs, 100, 100, 128),
        Case(f"{args.open_end_pairs} open-end pairs 40 into 100, D=26",
             args.open_end_pairs, 40, 100, 26, open_end=True),
    ]
    rng = np.random.default_rng(args.seed)
    header = (f"| {'case':<40} | {'method':<27} | {'median s':>8} | {'pairs/s':>8} "
              f"| {'Mcells/s':>8} | {'vs dtaidistance':>15} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for case in cases:
        rows = run_case(case, args.repeats, rng)
        for row in rows:
            print(f"| {row['case']:<40} | {row['method']:<27} | {row['seconds']:8.3f} "
                  f"| {row['pairs_per_s']:8.0f} | {row['mcells_per_s']:8.0f} "
                  f"| {row['ratio']:14.2f}x |", flush=True)
        print(f"  (every method agrees with dtaidistance on every pair: "
              f"max relative difference {rows[0]['max_rel']:.1e})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes share these cores)")


if __name__ == "__main__":
    main()
