"""The first `discovery run` after an install against the runs after it.

numba compiles the kernels of librosa, pynndescent and umap on first use and caches
some of them on disk; the first run after an install pays for that once. This script
points numba's cache at a new, empty folder (NUMBA_CACHE_DIR), so the first of its runs
sees exactly what a fresh install sees, runs the quick start's job `--repeat` times in
subprocesses, and prints each run's wall time and the ratio of the first to the mean
of the others (target: at most 1.5).

    python scripts/bench_first_run.py
    python scripts/bench_first_run.py --repeat 3 -- data/bfsongrepo --model birdsong

Exit status: 0, or 3 with `--strict` when the ratio misses the target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
DEFAULT_INPUTS = ["data/fsdd", "data/recordings"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs in all, the first one cold (default: %(default)s)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 3 when the ratio misses the target")
    parser.add_argument("arguments", nargs="*",
                        help="inputs and options of `discovery run` (default: the quick "
                             "start's inputs)")
    args = parser.parse_args(argv)
    if args.repeat < 2:
        parser.error("--repeat: expected an integer >= 2")
    workdir = Path(tempfile.mkdtemp(prefix="bench_first_run."))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(workdir / "numba-cache"))
    times, stages = [], []
    try:
        for index in range(args.repeat):
            out = workdir / f"run{index}"
            command = [sys.executable, "-m", "discovery.cli", "run",
                       *(args.arguments or DEFAULT_INPUTS), "--out", str(out), "--quiet"]
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, env=env, check=True)
            times.append(time.perf_counter() - started)
            stages.append(json.loads((out / "run.json").read_text())["timings_s"])
            print(f"run {index + 1} ({'cold numba cache' if index == 0 else 'warm'}): "
                  f"{times[-1]:.1f} s  " + ", ".join(
                      f"{k.removesuffix('_s')} {v:.1f}" for k, v in stages[-1].items()),
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    later = sum(times[1:]) / len(times[1:])
    ratio = times[0] / later
    print(f"first / later = {times[0]:.1f} / {later:.1f} s = {ratio:.2f}x "
          f"(target <= {TARGET_RATIO:g}x: {'met' if ratio <= TARGET_RATIO else 'MISSED'}); "
          f"{os.cpu_count()} CPUs")
    return 3 if args.strict and ratio > TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
