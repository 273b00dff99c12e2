"""The cost of summing the mel bands in float64 (what `features.band_power` does, so a
one-thread Ray worker and a multi-threaded local process compute the same features)
against the float32 product it replaced, on the same frames in one run.

    python scripts/bench_features.py --minutes 60

Prints the seconds per hour of audio of each, their ratio, and how many feature values
differ between a one-thread and a multi-threaded BLAS for each (in subprocesses).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from discovery.bundle import load_config, resolve_model_dir
from discovery.frontend import features as features_module


def mel(power: np.ndarray, filters: np.ndarray, kind: str) -> np.ndarray:
    if kind == "float32":
        return power @ filters
    return (power.astype(np.float64) @ filters.astype(np.float64)).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dump", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = load_config(resolve_model_dir("default")).features
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 0.1, int(args.minutes * 60 * config.sample_rate)).astype(
        np.float32)
    frames = features_module._frames(samples, config)
    spectrum = np.fft.rfft(frames * np.hanning(config.frame_length).astype(np.float32),
                           n=config.fft_size, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    filters = features_module.band_filters(config)
    if args.dump:
        np.savez(args.dump, float32=mel(power, filters, "float32"),
                 float64=mel(power, filters, "float64"))
        return 0
    per_hour = 60 / args.minutes
    timings = {}
    for kind in ("float32", "float64"):
        best = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            mel(power, filters, kind)
            best.append(time.perf_counter() - started)
        timings[kind] = min(best) * per_hour
    print(f"{len(power):,} frames; mel bands, seconds per hour of audio: float32 "
          f"{timings['float32']:.3f}, float64 {timings['float64']:.3f} "
          f"(ratio {timings['float64'] / timings['float32']:.2f})")
    dumps = {}
    for threads in ("1", str(os.cpu_count())):
        path = f"/tmp/bench_features_{threads}.npz"
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        subprocess.run([sys.executable, __file__, "--minutes", str(args.minutes),
                        "--dump", path], env=env, check=True)
        dumps[threads] = np.load(path)
    one, many = dumps.values()
    differ = {kind: int(np.sum(one[kind] != many[kind])) for kind in ("float32", "float64")}
    print(f"values that differ between 1 and {os.cpu_count()} BLAS threads: float32 "
          f"{differ['float32']:,}, float64 {differ['float64']:,} of {one['float32'].size:,}")
    print(json.dumps({"seconds_per_hour": timings, "differ": differ}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
