"""The Ray engine: recordings -> the embedding store, on a Ray cluster or a local Ray.

    driver:  files -> shards of ~SHARD_SECONDS of audio (skipping those already stored)
               -> ray.data.from_items  (one item per shard)
    workers: an actor pool (Ray Data, ActorPoolStrategy), one actor per worker, each
             loading the model bundle once: per shard, decode, features, windows,
             embeddings, segments (as `discovery embed` does in-process) -> one Parquet
             shard written straight into the store by the worker
    driver:  each finished shard's manifest lines appended as they stream back

Only the manifest lines travel back to the driver, never the windows, so the driver's
memory does not grow with the archive. A worker analyses and embeds each file in one
process: moving an hour's features between processes (about 90 MB) costs more than
computing them. Each worker takes one CPU (and TensorFlow one thread), or one GPU where
the cluster has GPUs. The store folder must be one every node can write (a shared file
system); audio paths are passed as absolute paths for the same reason.

Ray is an optional extra (`pip install -e ".[ray]"`); the default path in `embed.py`
never imports it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from discovery.errors import DiscoveryError, ParameterError
from discovery.files import Failure
from discovery.store import ShardPart, Store, file_key, write_shard

# Audio per shard: big enough that Parquet files are few (a shard of 30 minutes holds
# ~22,000 windows, ~3 MB), small enough that a killed job loses little.
SHARD_SECONDS = 1800.0
# At least this many shards per worker when the audio allows, so every worker is busy.
SHARDS_PER_WORKER = 4
CONNECT_TIMEOUT_S = 10.0
INSTALL_HINT = "pip install -e \".[ray]\" (or pip install 'ray[data]')"
# What each worker process sees: one thread for TensorFlow and the BLAS libraries, and
# TensorFlow's start-up messages kept out of the log.
WORKER_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "3"}


@dataclasses.dataclass
class RayEmbedding:
    """What `embed_to_store` did.

    Attributes:
        n_embedded: recordings embedded by this call.
        n_skipped: recordings already in the store, as they are now.
        failures: `files.Failure` per file that could not be read.
        workers: actors in the pool (0 when nothing was left to embed).
        cluster: the cluster's resources as Ray reports them ("CPU", "GPU", "nodes").
        seconds: wall time of the Ray part, start-up included.
    """

    n_embedded: int
    n_skipped: int
    failures: List[Failure]
    workers: int = 0
    cluster: Dict[str, float] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


def require_ray():
    """Import Ray (and Ray Data), or say in one line how to install it.

    Raises:
        ParameterError: Ray is not installed.
    """
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data comes with the "data" extra
    except ImportError:
        raise ParameterError(f"--engine ray needs Ray, which is not installed: "
                             f"{INSTALL_HINT}.") from None
    return ray


def connect(address: Optional[str], *, workers: Optional[int] = None) -> bool:
    """Join the Ray cluster at `address`, or start a local Ray on this machine.

    Returns:
        True if this call started Ray (the caller shuts it down), False if Ray was
        already running in this process.

    Raises:
        ParameterError: Ray is missing, or the cluster cannot be reached.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address and address != "auto":
        check_reachable(address)
    # The driver's C++ core logs a warning per actor pool that Ray Data's own actor
    # arguments live in the object store; failures still arrive as Python exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    options = {"include_dashboard": False, "logging_level": logging.ERROR,
               "log_to_driver": False, "runtime_env": {"env_vars": WORKER_ENV}}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=max(workers or 0, os.cpu_count() or 1), **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or "a local Ray"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else \
            type(error).__name__
        raise ParameterError(f"{where}: cannot start or reach the Ray cluster "
                             f"({reason}).") from None
    for name in ("ray", "ray.data"):  # the bar below shows progress; errors still show
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    return True


def check_reachable(address: str) -> None:
    """Fail in one line, at once, where nothing listens at HOST:PORT (Ray itself
    retries for minutes before it gives up)."""
    import socket

    host, _, port = address.rpartition(":")
    if host.startswith("ray://"):
        host = host[len("ray://"):]
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except ValueError:
        raise ParameterError(f"Invalid value for `address`: expected HOST:PORT (e.g. "
                             f"10.0.0.1:6379) or auto, received {address!r}.") from None
    except OSError as error:
        raise ParameterError(f"{address}: no Ray cluster answers there "
                             f"({error.strerror or error}); start one with `ray start "
                             "--head` or check the address.") from None


def _worker_resources(ray, workers: Optional[int]) -> tuple:
    """(number of workers, CPUs and GPUs per worker) from the cluster's resources."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    if gpus:
        return (workers or gpus), 1, 1
    return (workers or cpus), 1, 0


class EmbedShards:
    """A Ray actor's work: load the bundle once, then embed shard after shard.

    Called by Ray Data with a batch of shard items; returns one manifest line per
    recording (with "error" for a file that could not be read).
    """

    # Set on a subclass made per job (`_worker_class`), which Ray ships to the workers
    # with the class itself: nothing to pass to the constructor.
    bundle_dir: str = ""
    hop_seconds: Optional[float] = None
    store_dir: str = ""

    def __init__(self):
        import tensorflow as tf

        # Before any TensorFlow op: each worker is one CPU's worth of threads.
        if not tf.config.list_physical_devices("GPU"):
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        from discovery.bundle import Bundle

        self.bundle = Bundle.load(self.bundle_dir).with_hop(self.hop_seconds)

    def __call__(self, batch: dict) -> dict:
        from discovery.embed import embed_recording
        from discovery.segments import describe_segments

        config, model = self.bundle.config, self.bundle.model
        lines = []
        for text in batch["files"]:
            parts, entries = [], []
            for key in json.loads(str(text)):
                try:
                    embedded = embed_recording(key["read_from"], model=model,
                                               config=config)
                except DiscoveryError as error:
                    lines.append({**_key(key), "error": str(error).replace(
                        key["read_from"], key["path"])})
                    continue
                recording, windows = embedded.recording, embedded.recording.windows
                segments = describe_segments(embedded, config, features="image")
                info = embedded.info()
                parts.append(ShardPart(key["path"], windows.start_s, windows.end_s,
                                       embedded.embedding, embedded.silence,
                                       info.window_valid_fraction, segments))
                entries.append({**_key(key), "duration_s": recording.features.duration,
                                "reference_db": float(recording.features.reference_db),
                                "digital_silence": info.digital_silence,
                                "n_windows": int(len(embedded.embedding)),
                                "n_segments": int(len(segments[0]))})
            if parts:
                shard = write_shard(self.store_dir, parts, latent_dim=model.latent_dim,
                                    image_size=config.input_frames * config.input_features)
                # Which worker, and its peak memory so far (for scripts/bench_scale.py).
                worker = {"worker_pid": os.getpid(), "worker_max_rss_mib": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
                lines += [{**entry, "shard": shard, **worker} for entry in entries]
        return {"line": [json.dumps(line) for line in lines]}


def _worker_class(bundle_dir, hop_seconds: Optional[float], store_dir) -> type:
    return type("EmbedShards", (EmbedShards,), {
        "bundle_dir": str(Path(bundle_dir).resolve()), "hop_seconds": hop_seconds,
        "store_dir": str(Path(store_dir).resolve())})


def _key(key: dict) -> dict:
    return {name: key[name] for name in ("path", "size", "mtime_ns")}


def _shards(keys: List[dict], seconds: List[float], target: float) -> List[List[dict]]:
    """Consecutive files grouped into shards of about `target` seconds of audio."""
    shards, current, total = [], [], 0.0
    for key, length in zip(keys, seconds):
        current.append(key)
        total += length
        if total >= target:
            shards.append(current)
            current, total = [], 0.0
    if current:
        shards.append(current)
    return shards


def embed_to_store(paths: Sequence[Path], store: Store, *, bundle_dir, hop_seconds=None,
                   address: Optional[str] = None, workers: Optional[int] = None,
                   progress: bool = True) -> tuple:
    """Embed the recordings not yet in `store` on Ray, writing shards into it.

    Args:
        paths: audio files.
        store: an open, writable `Store` (`Store.create`).
        bundle_dir: the model bundle folder (loaded once per worker).
        hop_seconds: the window hop, or None for the bundle's own.
        address: a Ray cluster's address ("HOST:PORT", or "auto"); None starts a
            local Ray on this machine.
        workers: int >= 1 or None. Actors in the pool; None: one per GPU of the
            cluster, else one per CPU.
        progress: show progress in seconds of audio (stderr).

    Returns:
        `RayEmbedding`.

    Raises:
        ParameterError: Ray is missing or unreachable, or `workers` < 1.
    """
    from discovery.frontend import audio

    begun = time.perf_counter()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ParameterError(f"Invalid value for `workers`: expected an integer >= 1, "
                             f"received {workers!r}.")
    keys, failures = [], []
    for path in paths:
        try:
            keys.append({**file_key(path), "read_from": str(Path(path).resolve())})
        except OSError as error:
            failures.append(Failure(str(path), f"{path}: {error.strerror or error}"))
    done = store.done(keys)
    todo = [key for key, is_done in zip(keys, done) if not is_done]
    n_skipped = len(keys) - len(todo)
    if not todo:
        return RayEmbedding(0, n_skipped, failures)

    def seconds(key):
        try:
            return audio.info(key["read_from"]).duration
        except DiscoveryError:
            return 0.0  # reported by its worker
    lengths = [seconds(key) for key in todo]
    ray = require_ray()
    started = connect(address, workers=workers)
    try:
        n_workers, cpus, gpus = _worker_resources(ray, workers)
        resources = ray.cluster_resources()
        cluster = {"CPU": resources.get("CPU", 0.0), "GPU": resources.get("GPU", 0.0),
                   "nodes": len([n for n in ray.nodes() if n.get("Alive")])}
        target = min(SHARD_SECONDS, max(sum(lengths) / (SHARDS_PER_WORKER * n_workers),
                                        1.0))
        items = [{"files": json.dumps(shard)} for shard in _shards(todo, lengths, target)]
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        dataset = dataset.map_batches(
            _worker_class(bundle_dir, hop_seconds, store.path), batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(n_workers, len(items))),
            num_cpus=cpus, num_gpus=gpus)
        by_path = {key["path"]: length for key, length in zip(todo, lengths)}
        bar = tqdm(total=sum(lengths), unit="s", desc=f"embedding on Ray "
                   f"({min(n_workers, len(items))} worker(s))", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True,
                   bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio "
                              "[{elapsed}<{remaining}]")
        n_done = 0
        with bar:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                lines = [json.loads(str(text)) for text in batch["line"]]
                store.record([line for line in lines if "error" not in line])
                for line in lines:
                    if "error" in line:
                        failures.append(Failure(line["path"], line["error"]))
                    else:
                        n_done += 1
                    bar.update(by_path.get(line["path"], 0.0))
    except Exception as error:
        if isinstance(error, DiscoveryError):
            raise
        # A worker's DiscoveryError arrives wrapped by Ray: show its own message.
        cause = _discovery_cause(error)
        if cause is not None:
            raise cause from None
        raise
    finally:
        if started:
            ray.shutdown()
    return RayEmbedding(n_done, n_skipped, failures, min(n_workers, len(items)), cluster,
                        time.perf_counter() - begun)


def _discovery_cause(error: BaseException) -> Optional[DiscoveryError]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiscoveryError):
            return error
        error = error.__cause__ or error.__context__
    return None


# -- clustering a store on Ray: fit on a sample here, place every shard on the cluster --

# Windows of whole recordings kept for the report (its map, timelines and summary) and
# for the scores; recordings with an annotation are always kept.
REPORT_WINDOWS = 100_000
UNITS_DIR = "_units"


@dataclasses.dataclass
class RayClusters:
    """What `cluster_on_ray` found.

    Attributes:
        occurrences: (file, start_s, end_s, unit, confidence, n_windows) arrays of
            every occurrence, `file` indexing `paths`, ordered by recording then time.
        sample: the report's recordings: (WindowTable, units, probabilities,
            SegmentTable or None, segment units, segment probabilities), `file`
            indexing `paths`.
        n_windows, n_segments: in all recordings.
        n_fit: rows the clusterer was fitted on (the rest were placed on the cluster).
        clusterer: the fitted `UnitClusterer`.
        timings: seconds per step.
    """

    occurrences: tuple
    sample: tuple
    n_windows: int
    n_segments: int
    n_fit: int
    clusterer: object
    timings: dict


def _rows(store_dir: str, paths: list, level: str, features: str,
          silence_threshold: float) -> tuple:
    """One shard's recordings as the clusterer sees them: (windows, segments, x, the
    rows of x that are clustered (the rest are silence))."""
    from discovery.segments import describe_stored_segments

    store = Store.open(store_dir)
    windows, infos, segments = store.read(paths)
    if level == "segments":
        if features == "model":
            segments = describe_stored_segments(windows, segments)
        return windows, infos, segments, segments.embedding, np.arange(len(segments))
    eligible = np.flatnonzero(windows.silence < silence_threshold)
    return windows, infos, None, windows.embedding, eligible


def _count(store_dir, paths, level, features, silence_threshold) -> dict:
    windows, _, segments, x, eligible = _rows(store_dir, paths, level, features,
                                              silence_threshold)
    owner = (segments.file if level == "segments" else windows.file)[eligible]
    return {path: int(np.sum(owner == index)) for index, path in enumerate(paths)}


def _gather(store_dir, paths, level, features, silence_threshold, ordinals: dict) -> dict:
    """path -> the rows of x at the given eligible ordinals of that recording."""
    windows, _, segments, x, eligible = _rows(store_dir, paths, level, features,
                                              silence_threshold)
    owner = (segments.file if level == "segments" else windows.file)[eligible]
    found = {}
    for index, path in enumerate(paths):
        mine = eligible[owner == index]
        found[path] = np.asarray(x[mine[ordinals[path]]], np.float32)
    return found


def _place(store_dir, paths, level, features, silence_threshold, fitted, known: dict,
           keep_rows: set, units_dir: str, shard: str) -> dict:
    """Units of one shard's rows: the fitted ones as fitted, the others placed; its
    occurrences; the window units written beside the store; the report's rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from discovery.files import atomic_path
    from discovery.segments import segment_window_units
    from discovery.units.occurrences import merge_units

    windows, infos, segments, x, eligible = _rows(store_dir, paths, level, features,
                                                  silence_threshold)
    owner = (segments.file if level == "segments" else windows.file)[eligible]
    labels = np.full(len(x), -1, np.int64)
    confidence = np.zeros(len(x))
    place = []
    for index, path in enumerate(paths):
        mine = eligible[owner == index]
        ordinals, fit_labels, fit_confidence = known.get(path, (np.zeros(0, int),) * 3)
        labels[mine[ordinals]] = fit_labels
        confidence[mine[ordinals]] = fit_confidence
        rest = np.ones(len(mine), bool)
        rest[ordinals] = False
        place.append(mine[rest])
    place = np.concatenate(place) if place else np.zeros(0, int)
    if len(place):
        placed = fitted.place(x[place])
        labels[place], confidence[place] = placed.labels, placed.confidence
    if level == "segments":
        keep = labels >= 0
        occurrences = (segments.file[keep], segments.start_s[keep], segments.end_s[keep],
                       labels[keep], confidence[keep], segments.n_windows[keep])
        units, probabilities = segment_window_units(windows, segments, labels, confidence)
    else:
        units, probabilities = labels, confidence
        merged = merge_units(windows.file, windows.start_s, windows.end_s, units,
                             probabilities)
        occurrences = (merged.file, merged.start_s, merged.end_s, merged.unit,
                       merged.confidence, merged.n_windows)
    table = pa.table({"file": pa.array(np.asarray(windows.files, dtype=object)[windows.file]
                                       .astype(str)),
                      "start_s": windows.start_s, "end_s": windows.end_s,
                      "unit": units.astype(np.int32), "probability": probabilities})
    with atomic_path(Path(units_dir) / f"windows-{shard}") as temporary:
        pq.write_table(table, temporary)
    kept = [i for i, path in enumerate(paths) if path in keep_rows]
    sample = None
    if kept:
        rows = np.isin(windows.file, kept)
        sample = {"windows": (windows.file[rows], windows.start_s[rows], windows.end_s[rows],
                              windows.embedding[rows], windows.silence[rows]),
                  "valid_fraction": {paths[i]: infos[i].window_valid_fraction for i in kept},
                  "units": (units[rows], probabilities[rows])}
        if segments is not None:
            srows = np.isin(segments.file, kept)
            sample["segments"] = (segments.file[srows], segments.start_s[srows],
                                  segments.end_s[srows], segments.embedding[srows],
                                  segments.n_windows[srows], labels[srows],
                                  confidence[srows])
    return {"paths": paths, "occurrences": occurrences, "sample": sample,
            "n_windows": len(windows), "n_segments": 0 if segments is None else len(segments)}


def _scaled(clusterer, n: int, n_fit: int):
    """The clusterer fitted on `n_fit` of `n` rows as `UnitClusterer.fit` would scale
    HDBSCAN's sizes to its subsample, fitting on all it is given."""
    from sklearn.base import clone

    from discovery.units.clustering import PLACE_MIN_CLUSTER_SIZE

    fraction = n_fit / n
    size = clusterer.min_cluster_size if clusterer.min_cluster_size is not None else max(
        5, n // 200)
    min_samples = clusterer.min_samples
    return clone(clusterer).set_params(
        max_fit_points=None,
        min_cluster_size=max(min(size, PLACE_MIN_CLUSTER_SIZE), 2, int(round(size * fraction))),
        min_samples=None if min_samples is None else max(1, int(round(min_samples * fraction))))


def cluster_on_ray(store: Store, paths: List[str], clusterer, *, level: str,
                   segment_features: str, silence_threshold: float, keep: Sequence[str],
                   address: Optional[str] = None, workers: Optional[int] = None,
                   progress: bool = True) -> RayClusters:
    """Cluster a store's windows (or segments) with the driver's memory bounded by the
    fit sample, not the archive.

    The rows are counted per shard on the cluster; the driver draws the seeded sample
    `clusterer` would fit on (`UnitClusterer.max_fit_points`), gathers only those rows,
    and fits; every shard's other rows are then placed into the fitted units on the
    cluster (UMAP's `transform`, HDBSCAN's `approximate_predict`), merged into
    occurrences per recording, and written as `_units/windows-<shard>` beside the store.
    With no more rows than `max_fit_points` the fit holds every row, so the units are
    those of the local engine. k-means is fitted on the sample too (the local engine
    fits it on every row).

    Args:
        paths: the recordings, in the run's order.
        clusterer: an unfitted `UnitClusterer` with the run's settings.
        keep: recordings whose windows come back whole (the report's and the scores').

    Raises:
        ParameterError: too few rows to cluster (as the local engine says it).
    """
    from discovery.units.clustering import MIN_WINDOWS

    ray = require_ray()
    started = connect(address, workers=workers)
    timings = {}
    try:
        entries = store.entries()
        by_shard: Dict[str, List[str]] = {}
        for path in paths:
            by_shard.setdefault(entries[path]["shard"], []).append(path)
        options = {"num_cpus": 1}
        common = (str(store.path.resolve()),)
        settings = (level, segment_features, silence_threshold)

        mark = time.perf_counter()
        if level == "segments":
            counts = {path: int(entries[path]["n_segments"]) for path in paths}
        else:
            count = ray.remote(**options)(_count)
            counts = {}
            for found in ray.get([count.remote(*common, shard_paths, *settings)
                                  for shard_paths in by_shard.values()]):
                counts.update(found)
        n = sum(counts.values())
        if n < MIN_WINDOWS:
            what = "segments" if level == "segments" else "windows that are not silence"
            raise ParameterError(f"{paths[0] if paths else store.path}: too little sound "
                                 f"to find units: {n} {what}, at least {MIN_WINDOWS} are "
                                 "needed; give longer or more recordings.")
        fit_rows = clusterer._fit_rows(n)
        starts = np.cumsum([0] + [counts[p] for p in paths])
        first = dict(zip(paths, starts[:-1]))
        owner = np.searchsorted(starts, fit_rows, side="right") - 1
        ordinals = {path: fit_rows[owner == i] - first[path] for i, path in enumerate(paths)}
        gather = ray.remote(**options)(_gather)
        gathered = {}
        for found in ray.get([gather.remote(*common, shard_paths, *settings,
                                            {p: ordinals[p] for p in shard_paths})
                              for shard_paths in by_shard.values()]):
            gathered.update(found)
        sample_x = np.concatenate([gathered[p] for p in paths])
        timings["sample_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        fitted = _scaled(clusterer, n, len(fit_rows)).fit(sample_x)
        timings["fit_s"] = time.perf_counter() - mark
        del sample_x, gathered

        mark = time.perf_counter()
        offsets = np.cumsum([0] + [len(ordinals[p]) for p in paths])
        known = {p: (ordinals[p], fitted.labels_[offsets[i]:offsets[i + 1]],
                     fitted.probabilities_[offsets[i]:offsets[i + 1]])
                 for i, p in enumerate(paths)}
        units_dir = store.path / UNITS_DIR
        units_dir.mkdir(exist_ok=True)
        place = ray.remote(**options)(_place)
        fitted_ref = ray.put(fitted)
        pending = [place.remote(*common, shard_paths, *settings, fitted_ref,
                                {p: known[p] for p in shard_paths}, set(keep),
                                str(units_dir.resolve()), shard)
                   for shard, shard_paths in by_shard.items()]
        parts = []
        with tqdm(total=len(pending), desc="clustering: placing shards on Ray",
                  unit="shard", disable=not progress, file=sys.stderr,
                  dynamic_ncols=True) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                parts.append(ray.get(done[0]))
                bar.update(1)
        timings["place_s"] = time.perf_counter() - mark
    finally:
        if started:
            ray.shutdown()
    return _merged(parts, paths, fitted, len(fit_rows), level, timings)


def _merged(parts: list, paths: List[str], fitted, n_fit: int, level: str,
            timings: dict) -> RayClusters:
    """The shards' answers as one set of arrays, `file` indexing `paths`."""
    from discovery.embed import WindowTable
    from discovery.segments import SegmentTable

    index = {path: i for i, path in enumerate(paths)}
    occurrences, windows, window_units, segments, valid = [], [], [], [], {}
    for part in parts:
        to_global = np.asarray([index[p] for p in part["paths"]], np.int64)
        file, *rest = part["occurrences"]
        occurrences.append((to_global[np.asarray(file, np.int64)], *rest))
        if part["sample"] is not None:
            sample = part["sample"]
            file, *rest = sample["windows"]
            windows.append((to_global[file], *rest))
            window_units.append(sample["units"])
            valid.update(sample["valid_fraction"])
            if "segments" in sample:
                file, *rest = sample["segments"]
                segments.append((to_global[file], *rest))

    def joined(pieces, width):
        columns = [np.concatenate(c) for c in zip(*pieces)] if pieces else \
            [np.zeros(0, np.int64)] + [np.zeros(0)] * (width - 1)
        order = np.lexsort((columns[1], columns[0]))
        return [c[order] for c in columns]

    occurrence_columns = joined(occurrences, 6)
    table = joined([(*w, *u) for w, u in zip(windows, window_units)], 7)
    window_table = WindowTable(list(paths), table[0], table[1], table[2],
                               table[3] if len(table[0]) else np.zeros((0, fitted.n_features_in_)),
                               table[4])
    segment_table = segment_unit = segment_probability = None
    if level == "segments":
        columns = joined(segments, 7)
        width = fitted.n_features_in_
        segment_table = SegmentTable(list(paths), columns[0].astype(np.int64), columns[1],
                                     columns[2], columns[3] if len(columns[0]) else
                                     np.zeros((0, width), np.float32),
                                     columns[4].astype(np.int64))
        segment_unit, segment_probability = columns[5].astype(np.int64), columns[6]
    sample = (window_table, table[5].astype(np.int64), table[6].astype(np.float64),
              segment_table, segment_unit, segment_probability, valid)
    return RayClusters(tuple(occurrence_columns), sample,
                       sum(p["n_windows"] for p in parts),
                       sum(p["n_segments"] for p in parts), n_fit, fitted, timings)
