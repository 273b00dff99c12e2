"""End-to-end speed and memory of `discovery run` on one long recording or a folder.

Builds a recording of `--hours` hours (or, with `--files N`, a folder of N recordings
that last `--hours` together) in a temporary folder by concatenating the sample
recordings (the three FSDD long recordings in ../shared/data/recordings when present,
else data/recordings/rec_01.wav, repeated), converted to the model's sample rate and
written as 16-bit WAV block by block, so this script stays small in memory. Then runs
`discovery run` on it in a subprocess, so the peak RSS measured is the run's alone, and
prints the audio duration, wall time, real-time factor (audio seconds per wall second),
peak RSS and the per-stage times from the output's run.json, against the targets
(peak RSS under 2 GB, at least 30x real time).

    python scripts/bench_run.py                    # 1 hour, default model
    python scripts/bench_run.py --hours 4              # one 4-hour file
    python scripts/bench_run.py --hours 4 --files 16   # 16 files of 15 minutes
    python scripts/bench_run.py --hours 0.25 --keep --model models/default

There is no peer to run beside it: no other tool does the same job (features, a
trained encoder, clustering and a report) on the same input, so the comparison is
with the targets. Exit status: 0 when the run succeeded, 1 when it failed, 3 with
`--strict` when it succeeded but missed a target.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr

ROOT = Path(__file__).resolve().parent.parent
# The shared spoken digits first (2,000 distinct utterances of four speakers, each
# followed by a pause), else the long recordings (187 words, so an hour repeats each
# ~14 times), else the repository's sample recording.
SOURCES = (ROOT.parent / "shared" / "data" / "fsdd", ROOT.parent / "shared" / "data" / "recordings",
           ROOT / "data" / "recordings")
# Silence written after a source shorter than CLIP_SECONDS (an isolated word).
CLIP_SECONDS = 2.0
PAUSE_SECONDS = 0.5
TARGET_RSS_BYTES = 2 * 1024 ** 3
TARGET_REAL_TIME = 30.0
BLOCK_SECONDS = 10.0
STAGES = ("load_model_s", "features_and_embedding_s", "clustering_s", "scores_s",
          "report_s")


def default_sources() -> list:
    for folder in SOURCES:
        found = sorted(folder.glob("*.wav"))
        if found:
            return found
    raise SystemExit("no sample recordings found in " + " or ".join(map(str, SOURCES)))


def model_sample_rate(model_dir) -> int:
    folder = Path(model_dir) if model_dir else ROOT / "models" / "default"
    try:
        config = json.loads((folder / "config.json").read_text())
        return int(config["features"]["sample_rate"])
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"{folder}: not a model bundle ({error})") from None


def build_recording(path: Path, sources: list, *, seconds: float, sample_rate: int) -> float:
    """Write `sources`, repeated in turn, as one mono 16-bit WAV of `seconds` seconds.

    Each pass over a source is resampled on its own (streamed), so a block boundary
    never mixes two sources. Each pass has its own gain (within +-3 dB) and a little
    white noise (-60 dB), seeded: exact copies of a segment are not what an archive
    holds, and a hundred identical copies make UMAP's neighbour graph fall apart into
    groups of copies (every unit then smaller than HDBSCAN's smallest). Returns the
    written duration in seconds.
    """
    wanted = int(round(seconds * sample_rate))
    written = 0
    generator = np.random.default_rng(0)
    with soundfile.SoundFile(str(path), "w", samplerate=sample_rate, channels=1,
                             subtype="PCM_16", format="WAV") as out:
        while written < wanted:
            before = written
            for source in sources:
                gain = 10 ** (generator.uniform(-3, 3) / 20)
                with soundfile.SoundFile(str(source)) as handle:
                    rate = handle.samplerate
                    resampler = (None if rate == sample_rate else soxr.ResampleStream(
                        rate, sample_rate, 1, dtype="float32", quality="HQ"))
                    blocks = handle.blocks(blocksize=int(BLOCK_SECONDS * rate),
                                           dtype="float32", always_2d=True)
                    for block in blocks:
                        mono = block.mean(axis=1, dtype=np.float32)
                        if resampler is not None:
                            mono = resampler.resample_chunk(mono, last=False)
                        written += _write(out, mono, wanted - written, gain, generator)
                    if resampler is not None:
                        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                        written += _write(out, tail, wanted - written, gain, generator)
                    if handle.frames < CLIP_SECONDS * rate:
                        pause = np.zeros(int(PAUSE_SECONDS * sample_rate), np.float32)
                        written += _write(out, pause, wanted - written, gain, generator)
                if written >= wanted:
                    break
            if written == before:
                raise SystemExit("the source recordings hold no samples")
    return written / sample_rate


def _names(sources: list) -> str:
    names = ", ".join(p.name for p in sources[:3])
    return names + (f" and {len(sources) - 3:,} more" if len(sources) > 3 else "")


def _write(out, samples: np.ndarray, room: int, gain: float, generator) -> int:
    samples = samples[:max(room, 0)] * gain
    samples += generator.normal(0.0, 1e-3, len(samples)).astype(np.float32)
    samples = np.clip(samples, -1.0, 1.0)
    out.write(samples)
    return len(samples)


class RssSampler(threading.Thread):
    """Samples a process's resident memory from /proc, for the peak within each stage."""

    def __init__(self, pid: int, interval_s: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.samples = []  # (seconds since start, bytes)
        self.done = threading.Event()
        self.start_time = time.perf_counter()

    def run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self.done.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append((time.perf_counter() - self.start_time,
                                             int(line.split()[1]) * 1024))
            except (OSError, ValueError):
                pass
            self.done.wait(self.interval_s)

    def peak_between(self, begin_s: float, end_s: float) -> int:
        return max((b for t, b in self.samples if begin_s <= t < end_s), default=0)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (from /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_discovery(recording: Path, out_dir: Path, model, quiet: bool,
                  level: str = "segments") -> dict:
    """Run `discovery run` on `recording` (a file or a folder) in a subprocess."""
    command = [sys.executable, "-m", "discovery.cli", "run", str(recording),
               "--out", str(out_dir), "--level", level]
    if model:
        command += ["--model", str(model)]
    if quiet:
        command.append("--quiet")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    # Other work on the machine slows the run (t-SNE's OpenMP threads most): say how busy.
    load = os.getloadavg()[0]
    busy_before = busy_cpu_seconds()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    sampler = RssSampler(process.pid)
    sampler.start()
    returncode = process.wait()
    wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = busy_cpu_seconds() - busy_before
    # The largest child waited for (this script starts no other), in KiB on Linux.
    peak = usage.ru_maxrss * 1024
    return {"command": " ".join(command), "returncode": returncode, "wall_s": wall,
            "peak_rss_bytes": peak, "cpu_s": usage.ru_utime + usage.ru_stime,
            "load_before": load, "other_cpu_s": max(0.0, busy - usage.ru_utime
                                                    - usage.ru_stime),
            "sampler": sampler}


def stage_peaks(sampler: RssSampler, timings: dict, wall_s: float) -> dict:
    """Peak sampled RSS per stage; the stages follow each other in run.json's order,
    after the interpreter and TensorFlow imports that come before `load_model`."""
    offset = wall_s - timings.get("total_s", wall_s)
    peaks, begin = {"startup_and_imports": sampler.peak_between(0, offset)}, offset
    for stage in STAGES:
        if stage in timings:
            end = begin + timings[stage]
            peaks[stage] = sampler.peak_between(begin, end)
            begin = end
    peaks["after_run"] = sampler.peak_between(begin, wall_s + 1)
    return peaks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0,
                        help="length of the built recording (default: %(default)s)")
    parser.add_argument("--files", type=int, default=1,
                        help="split the hours into this many recordings in one folder "
                             "(default: %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the recording and the run's output folder")
    parser.add_argument("--model", type=Path, help="a model bundle (default: models/default)")
    parser.add_argument("--level", choices=("segments", "windows"), default="segments",
                        help="the run's unit level (default: %(default)s)")
    parser.add_argument("--sources", nargs="+", type=Path,
                        help="recordings to repeat (default: the sample recordings)")
    parser.add_argument("--workdir", type=Path,
                        help="folder for the temporary folder that holds the recording and "
                             "the output (default: the system's temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--strict", action="store_true",
                        help="exit 3 when a target is missed")
    parser.add_argument("--verbose", action="store_true", help="show the run's progress")
    args = parser.parse_args(argv)
    if not args.hours > 0:
        parser.error("--hours: expected a number > 0")
    if args.files < 1:
        parser.error("--files: expected an integer >= 1")

    sources = args.sources or default_sources()
    workdir = Path(tempfile.mkdtemp(prefix="bench_run.", dir=args.workdir))
    try:
        rate = model_sample_rate(args.model)
        mark = time.perf_counter()
        if args.files == 1:
            recording = workdir / "long.wav"
            duration = build_recording(recording, sources, seconds=args.hours * 3600,
                                       sample_rate=rate)
        else:
            recording = workdir / "recordings"
            recording.mkdir()
            duration = sum(build_recording(recording / f"part_{index:03d}.wav", sources,
                                           seconds=args.hours * 3600 / args.files,
                                           sample_rate=rate)
                           for index in range(args.files))
        print(f"built {recording} ({args.files} file(s), {duration:.0f} s at {rate} Hz "
              f"from {_names(sources)}) in "
              f"{time.perf_counter() - mark:.1f} s", flush=True)
        measured = run_discovery(recording, workdir / "out", args.model, level=args.level,
                                 quiet=not args.verbose)
        if measured["returncode"] != 0:
            print(f"discovery run failed with exit status {measured['returncode']}",
                  file=sys.stderr)
            return 1
        summary = json.loads((workdir / "out" / "run.json").read_text())
        timings = summary["timings_s"]
        wall, peak = measured["wall_s"], measured["peak_rss_bytes"]
        factor = duration / wall
        peaks = stage_peaks(measured["sampler"], timings, wall)
        print(f"\ncommand       {measured['command']}")
        print(f"audio         {duration:.1f} s ({duration / 3600:.2f} h), "
              f"{summary['n_windows']:,} windows, {summary['n_units']} units, "
              f"{summary['n_occurrences']:,} occurrences")
        print(f"wall time     {wall:.1f} s (CPU {measured['cpu_s']:.1f} s)")
        print(f"machine       {os.cpu_count()} CPUs; other processes used "
              f"{measured['other_cpu_s']:.1f} CPU s during the run (load average "
              f"{measured['load_before']:.2f} before it)")
        print(f"real time     {factor:.1f}x  (target >= {TARGET_REAL_TIME:g}x: "
              f"{'met' if factor >= TARGET_REAL_TIME else 'MISSED'})")
        print(f"peak RSS      {peak / 2**20:,.0f} MiB  (target < "
              f"{TARGET_RSS_BYTES / 2**20:,.0f} MiB: "
              f"{'met' if peak < TARGET_RSS_BYTES else 'MISSED'})")
        print(f"\n{'stage':28s} {'time (s)':>9s} {'peak RSS (MiB, sampled)':>24s}")
        print(f"{'startup_and_imports':28s} {wall - timings['total_s']:9.2f} "
              f"{peaks['startup_and_imports'] / 2**20:24,.0f}")
        for stage in STAGES:
            if stage in timings:
                print(f"{stage:28s} {timings[stage]:9.2f} {peaks[stage] / 2**20:24,.0f}")
        print(f"{'total_s (in run.json)':28s} {timings['total_s']:9.2f}")
        if args.json:
            args.json.write_text(json.dumps({
                "command": measured["command"], "audio_s": duration, "wall_s": wall,
                "cpu_s": measured["cpu_s"], "load_before": measured["load_before"],
                "other_cpu_s": measured["other_cpu_s"],
                "cpu_count": os.cpu_count(), "real_time_factor": factor,
                "peak_rss_bytes": peak, "timings_s": timings,
                "stage_peak_rss_bytes": peaks, "n_windows": summary["n_windows"],
                "n_units": summary["n_units"]}, indent=2))
        if args.keep:
            print(f"\nkept {workdir}")
        met = factor >= TARGET_REAL_TIME and peak < TARGET_RSS_BYTES
        return 3 if args.strict and not met else 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
