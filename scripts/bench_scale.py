"""Throughput and memory of `discovery embed` in-process and on Ray (1 and 2 workers),
and the driver's memory in `discovery run --engine ray`.

Builds `--hours` of audio as files of `--file-minutes` each in a work folder, from the
shared recordings (as scripts/bench_run.py builds its hour), then runs, each in its own
process so its peak memory is its own:

    discovery embed DIR --out local                          (the default engine)
    discovery embed DIR --out ray1 --engine ray --workers 1
    discovery embed DIR --out ray2 --engine ray --workers 2
    discovery run DIR --out run --engine ray --workers 2      (with --run)

and prints throughput (audio hours per wall hour), the 2-worker over 1-worker ratio, the
driver's peak RSS, each worker's peak RSS (reported by the workers into the store's
manifest), and how far the Ray embeddings are from the local ones.

    python scripts/bench_scale.py --hours 10 --run --json docs/bench_scale.json
    python scripts/bench_scale.py --hours 0.5          # a quick look

Targets (docs/benchmarks.md): 2 workers at least 1.6x the throughput of 1 worker; the
driver of `run --engine ray` on 10 hours below 3 GB.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import build_recording, default_sources, model_sample_rate  # noqa: E402

DISCOVERY = str(Path(sys.executable).with_name("discovery"))


def timed(command: list, log: Path) -> dict:
    """Run `command`, its output into `log`; wall time and peak RSS of that process."""
    started = time.perf_counter()
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"command": " ".join(command), "returncode": process.returncode,
            "wall_s": time.perf_counter() - started,
            "peak_rss_mib": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def worker_peaks(store: Path) -> dict:
    """pid -> the largest peak RSS each Ray worker reported (MiB)."""
    peaks = {}
    for line in (store / "_manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        pid = entry.get("worker_pid")
        if pid is not None:
            peaks[pid] = max(peaks.get(pid, 0.0), entry["worker_max_rss_mib"])
    return peaks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=10.0)
    parser.add_argument("--file-minutes", type=float, default=10.0,
                        help="length of each built file (default: %(default)s)")
    parser.add_argument("--run", action="store_true",
                        help="also `discovery run --engine ray --workers 2` (the driver's "
                             "memory with clustering)")
    parser.add_argument("--only-run", action="store_true",
                        help="measure `discovery run --engine ray` alone (with --run)")
    parser.add_argument("--workdir", type=Path, help="where to build (default: a "
                        "temporary folder, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_scale.", dir=args.workdir))
    figures = {"hours": args.hours, "file_minutes": args.file_minutes,
               "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    try:
        audio = work / "audio"
        audio.mkdir()
        rate = model_sample_rate(None)
        n_files = max(1, int(round(args.hours * 60 / args.file_minutes)))
        sources = default_sources()
        # Each file starts at another source, so the files are not copies of each other
        # (a folder of identical files is not an archive, and UMAP's graph falls apart
        # into groups of copies).
        seconds = sum(build_recording(
            audio / f"part_{i:03d}.wav",
            sources[i * len(sources) // n_files:] + sources[:i * len(sources) // n_files],
            seconds=args.hours * 3600 / n_files, sample_rate=rate) for i in range(n_files))
        hours = seconds / 3600
        print(f"built {n_files} files, {hours:.2f} h of audio at {rate} Hz", flush=True)
        runs = {}
        plan = [] if args.only_run else [
            ("local", []), ("ray1", ["--engine", "ray", "--workers", "1"]),
            ("ray2", ["--engine", "ray", "--workers", "2"])]
        for name, extra in plan:
            measured = timed([DISCOVERY, "embed", str(audio), "--out", str(work / name),
                              *extra], work / f"{name}.log")
            if measured["returncode"] != 0:
                print((work / f"{name}.log").read_text()[-3000:], file=sys.stderr)
                return 1
            measured["audio_hours_per_hour"] = hours * 3600 / measured["wall_s"]
            if name != "local":
                peaks = worker_peaks(work / name / "embeddings")
                measured["worker_peak_rss_mib"] = sorted(peaks.values())
            runs[name] = measured
            print(f"{name:6s} {measured['wall_s']:8.1f} s  "
                  f"{measured['audio_hours_per_hour']:7.1f} audio h / h  driver peak "
                  f"{measured['peak_rss_mib']:7.0f} MiB  workers "
                  f"{measured.get('worker_peak_rss_mib', '-')}", flush=True)
        if plan:
            ratio = (runs["ray2"]["audio_hours_per_hour"]
                     / runs["ray1"]["audio_hours_per_hour"])
            figures["speedup_2_over_1_workers"] = ratio
            print(f"2 workers / 1 worker: {ratio:.2f}x (target >= 1.6x)")
            figures["ray2_over_local"] = (runs["ray2"]["audio_hours_per_hour"]
                                          / runs["local"]["audio_hours_per_hour"])
            print(f"Ray 2 workers / local: {figures['ray2_over_local']:.2f}x")
            from discovery.store import Store

            local = np.load(work / "local" / "embeddings.npz")
            stored, _, _ = Store.open(work / "ray2" / "embeddings").read(
                [str(p) for p in sorted(audio.glob("*.wav"))])
            figures["max_abs_embedding_difference"] = float(
                np.abs(stored.embedding - local["embedding"]).max())
            print(f"largest |Ray - local| embedding difference: "
                  f"{figures['max_abs_embedding_difference']:.2e}")
        if args.run:
            measured = timed([DISCOVERY, "run", str(audio), "--out", str(work / "run"),
                              "--engine", "ray", "--workers", "2"], work / "run.log")
            if measured["returncode"] != 0:
                print((work / "run.log").read_text()[-3000:], file=sys.stderr)
                return 1
            record = json.loads((work / "run" / "run.json").read_text())
            measured["timings_s"] = record["timings_s"]
            measured["n_windows"], measured["n_segments"] = (record["n_windows"],
                                                             record["n_segments"])
            store = work / "run" / "embeddings"
            measured["store_mib"] = {
                part: sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2 ** 20
                for part, folder in (("windows", store), ("segments", store / "_segments"),
                                     ("units", store / "_units"))}
            runs["run_ray2"] = measured
            print("store: " + ", ".join(f"{k} {v:.1f} MiB" for k, v in
                                          measured["store_mib"].items()))
            print(f"run --engine ray: {measured['wall_s']:.1f} s, driver peak "
                  f"{measured['peak_rss_mib']:.0f} MiB (target < 3,072 MiB); stages "
                  + ", ".join(f"{k} {v:.0f}" for k, v in record["timings_s"].items()))
        figures["runs"] = runs
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
