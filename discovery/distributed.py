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


def check_workers(workers: Optional[int]) -> None:
    """Raises ParameterError unless `workers` is None or an integer >= 1."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ParameterError(f"Invalid value for `workers`: expected an integer >= 1, "
                             f"received {workers!r}.")


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
    check_workers(workers)
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
