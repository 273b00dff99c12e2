"""The jobs: recordings -> windows -> units -> outputs, in memory or into a folder.

    discover(inputs, bundle, cluster_config) -> DiscoveryResult     (nothing written)
      level "windows":
      recordings --Bundle.embed--> WindowTable (file, times, z_mean, P(silence))
        --UnitClusterer--> unit per window (-1: silence or noise)
        --merge_units--> Occurrences;  --fit_map--> 2-D map of the clustered windows
      level "segments" (the default):
      recordings --segments.embed_segments--> WindowTable + SegmentTable (file, times,
        description) --UnitClusterer--> unit per segment (-1: noise) = Occurrences;
        each window takes the unit of the segment holding its centre
      either --unit_scores--> scores, where annotations sit beside recordings
    run(inputs, out)  = discover + units.csv, embeddings.npz (segments.npz), report.html,
                        Raven and Audacity tables, run.json, scores.json (`discovery run`)
    write_features, write_embeddings, pairs: `discovery features`, `embed`, `pairs`

`run` writes everything into a staging folder inside the output folder and moves it
into place at the end (`discovery.files.output_folder`), so an output folder never
mixes two runs, a failed run leaves nothing half-written, and the inputs are never
touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from discovery import files
from discovery.bundle import Bundle, versions
from discovery.config import ClusterConfig, PipelineConfig
from discovery.embed import RecordingInfo, WindowTable, embed_with_features
from discovery.errors import AudioError, DiscoveryError, ParameterError
from discovery.evaluate import (
    abx_scores,
    check_pair_settings,
    labels_from_names,
    siamese_evaluation,
    unit_scores,
    values_from_names,
)
from discovery.files import Failure
from discovery.frontend import annotations
from discovery.frontend.recording import analyse
from discovery.outputs import plots
from discovery.outputs.report import write_html_report
from discovery.outputs.tables import (
    write_audacity_labels,
    write_raven_table,
    write_units_csv,
)
from discovery.result import DiscoveryResult
from discovery.segments import (
    SegmentTable,
    describe_stored_segments,
    embed_segments,
    segment_window_units,
)
from discovery.store import Store
from discovery.units.clustering import MIN_WINDOWS, UnitClusterer
from discovery.units.maps import fit_map
from discovery.units.occurrences import Occurrences, merge_units

# HDBSCAN's smallest unit at the segment level, as a share of the segments (at least
# MIN_SEGMENT_CLUSTER); a unit rarer than this is noise to HDBSCAN. Chosen leaving one
# recording out (docs/benchmarks.md): over the 8 subsets of 7 shared finch songs, mean
# NMI 0.854 / 0.908 / 0.925 / 0.937 / 0.944 at 1-5 %; the speech recordings' subsets
# score the same up to 4 % and lose at 5 %.
SEGMENT_CLUSTER_SHARE = 0.04
MIN_SEGMENT_CLUSTER = 5
# Segments are clustered as AVGN does: a 2-D UMAP (min_dist 0), then HDBSCAN or k-means.
SEGMENT_COMPONENTS = 2

# The clustering settings' old name, kept for scripts that import it from here.
RunConfig = ClusterConfig


@dataclasses.dataclass
class RunSummary:
    """What `run` wrote."""

    out_dir: Path
    n_recordings: int
    n_windows: int
    n_units: int
    n_occurrences: int
    scores: Optional[dict]
    timings: dict
    failures: List[Failure]
    n_segments: Optional[int] = None


@dataclasses.dataclass
class PairsSummary:
    """What `pairs` wrote: `results` as in pairs.json ({representation: {mode:
    separation}})."""

    out_dir: Path
    n_files: int
    results: dict
    failures: List[Failure]


# What `run` writes into its folder; `--overwrite` replaces a folder of these alone.
RUN_OUTPUTS = ("units.csv", "embeddings.npz", "segments.npz", "report.html", "tables",
               "run.json", "scores.json", "embeddings")
RUN_MARKER = "run.json"


def _warm_up_umap() -> None:
    """Import pynndescent (umap's nearest-neighbour library) in a background thread.

    Its import compiles dozens of numba kernels: about 25 s of one core the first time
    after an install (numba caches them for later runs). Compiling runs in LLVM with the
    GIL released, so on a second core it overlaps loading the model and embedding,
    and clustering's own `import umap` waits only for what is left. pynndescent
    imports nothing that the main thread imports meanwhile (TensorFlow), so the two
    imports cannot deadlock.
    """
    def work():
        with contextlib.suppress(Exception):  # clustering imports it again and reports
            importlib.import_module("pynndescent")

    threading.Thread(target=work, name="warm-up-pynndescent", daemon=True).start()


def _read_annotations(paths: Sequence[Path]) -> tuple:
    """Each recording's annotation (or None), read and checked before any heavy work.

    Returns:
        (dict path -> Annotation or None, failures: a bad annotation is listed and its
        recording is processed without scores).
    """
    found, failures = {}, []
    for path in paths:
        try:
            found[path] = annotations.find_annotation(path)
        except DiscoveryError as error:
            found[path] = None
            failures.append(Failure(str(annotations.annotation_path(path)),
                                    f"{error} The recording is processed without scores."))
    return found, failures


def _scores(recordings: Sequence[RecordingInfo], windows: WindowTable, units: np.ndarray,
            *, silence_threshold: float, window_sound_fraction: float,
            segments: Optional[SegmentTable] = None,
            segment_unit: Optional[np.ndarray] = None) -> Optional[dict]:
    items = []
    for index, recording in enumerate(recordings):
        if recording.annotation is None:
            continue
        rows = windows.rows(index)
        item = {"annotation": recording.annotation,
                "duration_s": recording.duration_s,
                "start_s": windows.start_s[rows], "end_s": windows.end_s[rows],
                "unit": units[rows],
                "silence": windows.silence[rows] >= silence_threshold,
                "valid_fraction": recording.window_valid_fraction}
        if segments is not None:
            mine = segments.file == index
            item["segments"] = {"start_s": segments.start_s[mine],
                                "end_s": segments.end_s[mine], "unit": segment_unit[mine]}
        items.append(item)
    if not items:
        return None
    scores = unit_scores(items, window_sound_fraction=window_sound_fraction)
    scores["n_annotated_recordings"] = len(items)
    return scores


def discover(inputs: Sequence, bundle=None, cluster_config: ClusterConfig = ClusterConfig(),
             *, progress: bool = True, stored: Optional[tuple] = None) -> DiscoveryResult:
    """Find the units in recordings, in memory: nothing is written.

    Args:
        inputs: audio files or folders (searched recursively). A missing one, or a
            file that cannot be read, is listed in the result's `failures` and the
            others are processed.
        bundle: a `Bundle`, a bundle folder, a shipped bundle's name ("default",
            "birdsong"), or None for the shipped default.
        cluster_config: `ClusterConfig`, the clustering settings.
        progress: show progress (stderr).
        stored: (`store.Store`, paths or None, failures so far): cluster the windows
            and segments already in an embedding store (those of `paths`, in order,
            or all) instead of embedding `inputs`; `bundle` is then not loaded.

    Returns:
        `DiscoveryResult`: recordings, window table, unit per window, occurrences,
        scores where annotations sit beside recordings, a 2-D map of the clustered
        windows, settings, timings and failures.

    Raises:
        ModelError: the model bundle is missing or broken.
        AudioError: no recording could be read (each file's reason is named).
        ParameterError: too little sound to cluster.

    Example:
        >>> result = discover(["data/recordings"], "default")
        >>> result.occurrences.unit, result.windows.start_s
    """
    started = time.perf_counter()
    timings = {}
    config = cluster_config
    if stored is not None:
        store, chosen, failures = stored
        paths, failures = [Path(p) for p in (store.paths() if chosen is None
                                             else chosen)], list(failures)
    else:
        paths, failures = files.find_inputs(inputs)
    found, annotation_failures = _read_annotations(paths)
    failures += annotation_failures
    if stored is None and not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    timings["load_model_s"] = time.perf_counter() - started

    mark = time.perf_counter()
    segments = None
    if stored is not None:
        pipeline_config, model_name = store.config, store.model
        windows, recordings, segments = store.read([str(p) for p in paths])
        if config.level == "windows":
            segments = None
        elif config.segment_features == "model":
            segments = describe_stored_segments(windows, segments)
        embed_failures = []
    elif config.level == "segments":
        pipeline_config, model_name = bundle.config, str(bundle.path)
        (windows, recordings, embed_failures), segments = embed_segments(
            paths, model=bundle.model, config=bundle.config,
            features=config.segment_features, progress=progress)
    else:
        pipeline_config, model_name = bundle.config, str(bundle.path)
        windows, recordings, embed_failures = bundle.embed(paths, progress=progress)
    failures += embed_failures
    if not recordings:
        reasons = "; ".join(f.message for f in failures) or "no audio files"
        raise AudioError(f"no readable recordings: {reasons}")
    recordings = [dataclasses.replace(r, annotation=found.get(Path(r.path)))
                  for r in recordings]
    timings["features_and_embedding_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    if segments is None:
        clustered = _cluster_windows(windows, config, inputs, progress=progress)
    else:
        clustered = _cluster_segments(windows, segments, config, inputs, progress=progress)
    units, probabilities, occurrences, map_rows, segment_unit, segment_probability = clustered
    timings["clustering_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    unit_map = (fit_map(windows.embedding, rows=map_rows, reduction=config.reduction,
                        seed=config.seed) if len(map_rows) >= 5 else None)
    timings["map_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    scores = _scores(recordings, windows, units, silence_threshold=config.silence_threshold,
                     window_sound_fraction=pipeline_config.silence.window_sound_fraction,
                     segments=segments, segment_unit=segment_unit)
    if scores is not None:
        scores["level"] = config.level
    timings["scores_s"] = time.perf_counter() - mark
    return DiscoveryResult(
        recordings=recordings, windows=windows, unit=units, probability=probabilities,
        occurrences=occurrences, scores=scores, timings=timings, map=unit_map,
        failures=failures, level=config.level, segments=segments,
        segment_unit=segment_unit, segment_probability=segment_probability,
        settings={"model": model_name, "run": config.to_dict(),
                  "pipeline": pipeline_config.to_dict(), "versions": versions()})


def _clusterer(config: ClusterConfig, *, min_cluster_size: Optional[int],
               n_components: Optional[int], progress: bool) -> UnitClusterer:
    return UnitClusterer(method=config.method, n_clusters=config.n_clusters,
                         min_cluster_size=min_cluster_size, reduction=config.reduction,
                         n_components=n_components,
                         silence_threshold=config.silence_threshold,
                         random_state=config.seed, verbose=progress)


def _segment_clusterer(config: ClusterConfig, n_segments: int, *,
                       progress: bool) -> UnitClusterer:
    size = config.min_cluster_size
    if size is None and config.method == "hdbscan":
        size = max(MIN_SEGMENT_CLUSTER, int(round(SEGMENT_CLUSTER_SHARE * n_segments)))
    return _clusterer(config, min_cluster_size=size, n_components=SEGMENT_COMPONENTS,
                      progress=progress)


def _cluster_windows(windows: WindowTable, config: ClusterConfig, inputs: Sequence, *,
                     progress: bool) -> tuple:
    """One unit per window; runs of one unit merged into occurrences."""
    n_sound = int(np.sum(windows.silence < config.silence_threshold))
    if n_sound < MIN_WINDOWS:
        raise ParameterError(
            f"{inputs[0]}: too little sound to find units: {n_sound} of "
            f"{len(windows)} windows are not silence, at least {MIN_WINDOWS} are "
            "needed; give longer or more recordings.")
    clusterer = _clusterer(config, min_cluster_size=config.min_cluster_size,
                           n_components=config.n_components, progress=progress)
    clusterer.fit(windows.embedding, silence=windows.silence)
    units, probabilities = clusterer.labels_, clusterer.probabilities_
    occurrences = merge_units(windows.file, windows.start_s, windows.end_s, units,
                              probabilities)
    return units, probabilities, occurrences, clusterer.fit_indices_, None, None


def _cluster_segments(windows: WindowTable, segments: SegmentTable, config: ClusterConfig,
                      inputs: Sequence, *, progress: bool) -> tuple:
    """One unit per segment (HDBSCAN's noise: -1); each window takes the unit of the
    segment holding its centre, -1 outside every segment."""
    if len(segments) < MIN_WINDOWS:
        raise ParameterError(
            f"{inputs[0]}: too little sound to find units: {len(segments)} segments "
            f"(sounds between silences) were found, at least {MIN_WINDOWS} are needed; "
            "give longer or more recordings, or use --level windows.")
    clusterer = _segment_clusterer(config, len(segments), progress=progress)
    clusterer.fit(segments.embedding)
    segment_unit = clusterer.labels_.astype(np.int64)
    segment_probability = clusterer.probabilities_.astype(np.float64)
    keep = segment_unit >= 0
    occurrences = Occurrences(file=segments.file[keep], start_s=segments.start_s[keep],
                              end_s=segments.end_s[keep], unit=segment_unit[keep],
                              confidence=segment_probability[keep],
                              n_windows=segments.n_windows[keep])
    units, probabilities = segment_window_units(windows, segments, segment_unit,
                                                segment_probability)
    return (units, probabilities, occurrences, np.flatnonzero(units >= 0), segment_unit,
            segment_probability)


def run(inputs: Sequence, out_dir, *, bundle=None, config: ClusterConfig = ClusterConfig(),
        engine: str = "local", address: Optional[str] = None, workers: Optional[int] = None,
        embeddings=None, overwrite: bool = False, progress: bool = True,
        command: Optional[str] = None) -> RunSummary:
    """Discover units in recordings (`discover`) and write every output into `out_dir`.

    Args:
        inputs: audio files or folders. A missing one, or a file that cannot be read,
            is listed in the summary's failures and the others are processed.
        out_dir: a new or empty folder (the current folder too), never an input nor
            holding one; with `overwrite`, a previous run there is replaced.
        bundle: a `Bundle`, a bundle folder or a shipped bundle's name; None takes
            the shipped `models/default`.
        config: `ClusterConfig`, the clustering settings.
        engine: "local" (in this process, the default) or "ray": the recordings are
            embedded on a Ray cluster into `out_dir/embeddings/` (a Parquet store,
            `discovery.store`), then clustered here as the local engine does.
        address: the Ray cluster's address; None starts a local Ray (engine "ray").
        workers: Ray workers; None: one per GPU, else per CPU of the cluster.
        embeddings: an embedding store folder (`discovery embed --engine ray`):
            cluster its windows instead of embedding `inputs`, which must be empty.
        overwrite: replace the outputs of a previous `discovery run` in `out_dir`
            (a folder holding anything else is refused).
        progress: show progress.
        command: the command line, recorded in run.json.

    Raises:
        ParameterError: `out_dir` is refused (see `discovery.files.output_folder`), or
            too little sound to cluster.
        ModelError: the model bundle is missing or broken.
        AudioError: no recording could be read (each file's reason is named).
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    # Every check that can refuse the run comes before the model loads and the work starts.
    stored, engine_info = None, {"name": engine}
    _check_engine(engine, inputs, embeddings, workers, address)
    if embeddings is not None:
        stored = (Store.open(embeddings), None, [])
        inputs = [embeddings]  # what the output folder must not hold
        engine_info["embeddings"] = str(embeddings)
    if config.reduction == "umap":
        _warm_up_umap()
    with files.output_folder(out_dir, inputs=inputs, overwrite=overwrite,
                             owned=RUN_OUTPUTS, marker=RUN_MARKER,
                             command="discovery run") as staging:
        if engine == "ray":
            result, totals, engine_info = _discover_on_ray(
                inputs, staging / "embeddings", bundle=bundle, config=config,
                address=address, workers=workers, progress=progress)
        else:
            result = discover(inputs, bundle, config, progress=progress, stored=stored)
            totals = (len(result.windows),
                      None if result.segments is None else len(result.segments))
        timings = result.timings
        mark = time.perf_counter()
        # The Ray engine's window table is in embeddings/ (with each window's unit in
        # embeddings/_units/); the result holds only the report's recordings.
        _write_outputs(staging, result, progress=progress, arrays=engine != "ray")
        timings["report_s"] = time.perf_counter() - mark
        timings["total_s"] = time.perf_counter() - started
        files.write_text(staging / RUN_MARKER, json.dumps({
            "written_by": "discovery run", "command": command,
            "inputs": [str(p) for p in inputs],
            "recordings": result.windows.files,
            "failures": [f.message for f in result.failures],
            "engine": engine_info,
            "level": result.level, "n_windows": totals[0], "n_segments": totals[1],
            "n_units": result.n_units,
            "n_occurrences": len(result.occurrences),
            "settings": result.settings, "timings_s": timings}, indent=2, default=str))
    return RunSummary(out_dir, len(result.recordings), totals[0], result.n_units,
                      len(result.occurrences), result.scores, timings, result.failures,
                      totals[1])


ENGINES = ("local", "ray")


def _check_engine(engine: str, inputs: Sequence, embeddings,
                  workers: Optional[int] = None, address: Optional[str] = None) -> None:
    """Refuse an unknown engine, a missing Ray, a bad worker count, a cluster address
    where nothing answers, or inputs given with a store: before any work."""
    if engine not in ENGINES:
        raise ParameterError(f"Invalid value for `engine`: expected one of {ENGINES}, "
                             f"received {engine!r}.")
    from discovery.distributed import check_workers

    check_workers(workers)
    if embeddings is not None:
        if inputs:
            raise ParameterError(f"{inputs[0]}: give recordings or --embeddings, not "
                                 "both (the store already holds its recordings' windows).")
        if engine != "local":
            raise ParameterError("--embeddings clusters a store on this machine; it "
                                 "takes no --engine.")
    elif not inputs:
        raise ParameterError("no recordings given: name audio files or folders, or an "
                             "embedding store with --embeddings.")
    if engine == "ray":
        from discovery.distributed import check_reachable, require_ray

        require_ray()
        if address and address != "auto":
            check_reachable(address)


def _bundle_for_store(bundle, hop_seconds: Optional[float] = None) -> Bundle:
    """The bundle whose settings a store records (loaded here too, so a broken model
    fails in one line before any worker starts)."""
    if not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    return bundle.with_hop(hop_seconds)


def _discover_on_ray(inputs: Sequence, store_dir: Path, *, bundle, config: ClusterConfig,
                     address, workers, progress: bool) -> tuple:
    """`discover` on Ray: embed `inputs` into a store at `store_dir`, then cluster it
    with the driver holding only the fit sample and the report's recordings
    (`distributed_clustering.cluster_on_ray`).

    Returns:
        (`DiscoveryResult` whose window table holds the report's recordings, (windows,
        segments or None) in all, run.json's engine record).
    """
    from discovery.distributed import connect, embed_to_store
    from discovery.distributed_clustering import REPORT_WINDOWS, cluster_on_ray

    started = time.perf_counter()
    paths, failures = files.find_inputs(inputs)
    found, annotation_failures = _read_annotations(paths)
    failures += annotation_failures
    bundle = _bundle_for_store(bundle)
    timings = {"load_model_s": time.perf_counter() - started}
    store = Store.create(store_dir, bundle.config, model=str(bundle.path))
    ray_started = connect(address, workers=workers)
    try:
        done = embed_to_store(paths, store, bundle_dir=bundle.path, address=address,
                              workers=workers, progress=progress)
        timings["features_and_embedding_s"] = done.seconds
        failures += done.failures
        entries = store.entries()
        chosen = [str(p) for p in paths if str(p) in entries]
        if not chosen:
            reasons = "; ".join(f.message for f in failures) or "no audio files"
            raise AudioError(f"no readable recordings: {reasons}")
        # The report's recordings: every annotated one (for the scores), then the
        # others in order while the windows stay under REPORT_WINDOWS.
        keep, budget = [], REPORT_WINDOWS
        for path in chosen:
            n = int(entries[path]["n_windows"])
            if found.get(Path(path)) is not None or n <= budget:
                keep.append(path)
                budget -= n
        n_segments = sum(int(entries[p]["n_segments"]) for p in chosen)
        prototype = (_segment_clusterer(config, n_segments, progress=progress)
                     if config.level == "segments" else
                     _clusterer(config, min_cluster_size=config.min_cluster_size,
                                n_components=config.n_components, progress=progress))
        mark = time.perf_counter()
        clusters = cluster_on_ray(store, chosen, prototype, level=config.level,
                                  segment_features=config.segment_features,
                                  silence_threshold=config.silence_threshold, keep=keep,
                                  address=address, workers=workers, progress=progress)
        timings["clustering_s"] = time.perf_counter() - mark
        timings.update({f"clustering_{k}": v for k, v in clusters.timings.items()})
    finally:
        if ray_started:
            from discovery.distributed import require_ray

            require_ray().shutdown()
    windows, units, probabilities, segments, segment_unit, segment_probability, valid = \
        clusters.sample
    recordings = [dataclasses.replace(info, annotation=found.get(Path(info.path)),
                                      window_valid_fraction=valid.get(info.path))
                  for info in store.infos(chosen)]
    mark = time.perf_counter()
    rows = np.flatnonzero(units >= 0)
    unit_map = (fit_map(windows.embedding, rows=rows, reduction=config.reduction,
                        seed=config.seed) if len(rows) >= 5 else None)
    timings["map_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    scores = _scores(recordings, windows, units, silence_threshold=config.silence_threshold,
                     window_sound_fraction=bundle.config.silence.window_sound_fraction,
                     segments=segments, segment_unit=segment_unit)
    if scores is not None:
        scores["level"] = config.level
    timings["scores_s"] = time.perf_counter() - mark
    result = DiscoveryResult(
        recordings=recordings, windows=windows, unit=units, probability=probabilities,
        occurrences=Occurrences(*clusters.occurrences), scores=scores, timings=timings,
        map=unit_map, failures=failures, level=config.level, segments=segments,
        segment_unit=segment_unit, segment_probability=segment_probability,
        settings={"model": str(bundle.path), "run": config.to_dict(),
                  "pipeline": bundle.config.to_dict(), "versions": versions()})
    info = {"name": "ray", "address": address, "workers": done.workers,
            "cluster": done.cluster, "fitted_on": clusters.n_fit,
            "report_recordings": len(keep)}
    totals = (clusters.n_windows, clusters.n_segments if config.level == "segments" else None)
    return result, totals, info


def write_store(inputs: Sequence, out_dir, *, bundle=None, hop_seconds=None,
                address: Optional[str] = None, workers: Optional[int] = None,
                overwrite: bool = False, progress: bool = True) -> tuple:
    """`discovery embed --engine ray`: embed on Ray into `out_dir/embeddings/`, a
    Parquet store (`discovery.store`), skipping recordings already there.

    Returns:
        (the store's path, `distributed.RayEmbedding`, failures: missing inputs and
        unreadable files).

    Raises:
        ParameterError: Ray is missing or unreachable, `out_dir` is refused, or the
            store holds embeddings made with other settings (without `overwrite`).
        ModelError: the model bundle is missing or broken.
    """
    from discovery.distributed import embed_to_store

    _check_engine("ray", inputs, None, workers, address)
    paths, failures = files.find_inputs(inputs)
    out = files.check_output_location(out_dir, inputs) / "embeddings"
    bundle = _bundle_for_store(bundle, hop_seconds)
    store = Store.create(out, bundle.config, model=str(bundle.path), overwrite=overwrite)
    done = embed_to_store(paths, store, bundle_dir=bundle.path,
                          hop_seconds=hop_seconds, address=address, workers=workers,
                          progress=progress)
    return out, done, failures + done.failures


def _write_outputs(folder: Path, result: DiscoveryResult, *, progress: bool,
                   arrays: bool = True) -> None:
    write_units_csv(folder / "units.csv", result)
    if arrays:
        files.save_npz(folder / "embeddings.npz",
                       {**result.windows.to_arrays(unit=result.unit),
                        "probability": result.probability.astype(np.float32)})
    if arrays and result.segments is not None:
        files.save_npz(folder / "segments.npz",
                       {**result.segments.to_arrays(unit=result.segment_unit),
                        "confidence": result.segment_probability.astype(np.float32)})
    paths = [Path(r.path) for r in result.recordings]
    for index, table in enumerate(files.output_paths(paths, folder / "tables", "")):
        write_raven_table(table.with_name(table.name + ".selections.txt"), result, index)
        write_audacity_labels(table.with_name(table.name + ".labels.txt"), result, index)
    if result.scores is not None:
        files.write_text(folder / "scores.json", json.dumps(result.scores, indent=2))
    if progress:
        print("writing report.html", file=sys.stderr)
    write_html_report(folder / "report.html", result,
                      silence_threshold=result.settings["run"]["silence_threshold"])


def write_features(inputs: Sequence, out_dir, config: PipelineConfig, *,
                   overwrite: bool = False, progress: bool = True) -> tuple:
    """`discovery features`: one `.npz` per recording under `out_dir` (features,
    window times, silence targets, and the settings as JSON).

    Returns:
        (written `.npz` paths, failures: missing inputs and unreadable files).

    Raises:
        ParameterError: `out_dir` is an input or holds one, or a file to write exists
            and not `overwrite`.
    """
    paths, missing = files.find_inputs(inputs)
    files.check_output_location(out_dir, inputs)
    outputs = dict(zip(paths, files.output_paths(paths, out_dir, ".npz")))
    files.refuse_existing(list(outputs.values()), overwrite=overwrite)
    config_json = config.to_json()

    def work(path: Path):
        arrays = analyse(path, config).to_arrays()
        arrays["config"] = config_json
        files.save_npz(outputs[path], arrays)
        return outputs[path]

    written, failures = files.for_each_file(paths, work, description="features",
                                            progress=progress)
    return written, missing + failures


def write_embeddings(inputs: Sequence, out_dir, *, bundle=None, overwrite: bool = False,
                     hop_seconds: Optional[float] = None, progress: bool = True) -> tuple:
    """`discovery embed`: `out_dir/embeddings.npz`, one row per window (file, start_s,
    end_s, embedding, silence); nothing is written when no recording could be read.

    Args:
        bundle: a `Bundle`, a bundle folder, a shipped bundle's name, or None for the
            shipped default.
        hop_seconds: seconds between windows, a whole number of feature hops, or None
            for the bundle's own (`Bundle.with_hop`).

    Returns:
        (`WindowTable`, path written or None, failures).

    Raises:
        ParameterError: `out_dir` is refused, or embeddings.npz exists and not
            `overwrite` (checked before the model loads).
        ModelError: the model bundle is missing or broken.
    """
    out = files.check_output_location(out_dir, inputs) / "embeddings.npz"
    files.refuse_existing([out], overwrite=overwrite)
    if not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    windows, _, failures = bundle.with_hop(hop_seconds).embed(inputs, progress=progress)
    if not windows.files:
        return windows, None, failures
    files.save_npz(out, windows.to_arrays())
    return windows, out, failures


def pairs(inputs: Sequence, out_dir, *, label_regex: str, bundle=None, n_pairs: int = 1000,
          prefix_frames: Optional[int] = None, seed: int = 0,
          hop_seconds: Optional[float] = None, overwrite: bool = False,
          progress: bool = True) -> PairsSummary:
    """`discovery pairs`: Siamese-pair DTW evaluation of features and embeddings.

    Files are labelled by name; seeded, balanced duplicate (same label) and
    non-duplicate pairs are compared by DTW on raw features and on windowed embeddings
    (`evaluate.siamese_evaluation`). Writes `pairs.json` and `pairs.png` (distance
    histograms) into `out_dir`.

    Args:
        label_regex: the label from each file name: the first group, else the match.
        bundle: a `Bundle`, a bundle folder, a shipped bundle's name, or None for the
            shipped default.
        n_pairs: int >= 1. Pairs of each kind. Defaults to 1000.
        prefix_frames: int >= 1 or None. Also score the first K frames with an open
            end. Defaults to None.
        seed: int. Seeds the choice of pairs. Defaults to 0.
        hop_seconds: seconds between the model's windows (`Bundle.with_hop`); None for
            the bundle's own.

    Raises:
        ParameterError: labels, pair settings or `out_dir` are refused, all before the
            model loads.
    """
    # Labels, pairs and the output folder are checked before anything is embedded.
    paths, failures = files.find_inputs(inputs)
    labels_from_names(paths, label_regex)
    check_pair_settings(n_pairs=n_pairs, prefix_frames=prefix_frames)
    out = files.check_output_location(out_dir, inputs)
    files.refuse_existing([out / "pairs.json", out / "pairs.png"], overwrite=overwrite)
    if not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    bundle = bundle.with_hop(hop_seconds)
    recordings, embed_failures = embed_with_features(paths, model=bundle.model,
                                                     config=bundle.config,
                                                     progress=progress)
    failures += embed_failures
    labels = labels_from_names([r.recording.path for r in recordings], label_regex)
    if progress:
        print(f"DTW on {n_pairs} duplicate and {n_pairs} non-duplicate pairs",
              file=sys.stderr)
    results, distances = siamese_evaluation(recordings, labels, n_pairs=n_pairs,
                                            prefix_frames=prefix_frames, seed=seed)
    files.write_text(out / "pairs.json", json.dumps(
        {"n_files": len(recordings), "n_labels": int(len(set(labels))),
         "label_regex": label_regex, "model": str(bundle.path),
         "hop_seconds": bundle.config.windows.hop_seconds, "results": results},
        indent=2))
    with files.atomic_path(out / "pairs.png") as temporary:
        temporary.write_bytes(plots.distance_histograms_png(distances))
    return PairsSummary(out, len(recordings), results, failures)


def abx(inputs: Sequence, out_dir, *, label_regex: str, speaker_regex: str, bundle=None,
        n_triplets: int = 2000, seed: int = 0, hop_seconds: Optional[float] = None,
        speaker: Optional[str] = None, tokens: str = "whole", overwrite: bool = False,
        progress: bool = True) -> tuple:
    """`discovery abx`: within- and across-speaker ABX error of log-mel, MFCC with deltas
    and the model's window embeddings, on the same seeded triplets (`evaluate.abx`).

    Each file is one token; its label and speaker come from its name. Writes
    `abx.json` into `out_dir`.

    Args:
        hop_seconds: seconds between the model's windows (`Bundle.with_hop`); None for
            the bundle's own.
        speaker: only triplets whose A and B are this speaker's (a speaker the model
            never saw); None for all.
        tokens: "whole" (each file) or "sound" (each file's span from its first
            segment to its last, the same frames for every representation:
            `evaluate.abx.sound_span`). Defaults to "whole".

    Returns:
        (scores as in abx.json's "results", failures).

    Raises:
        ParameterError: the regexes, the triplet count or `out_dir` are refused, or no
            triplet exists, all before the model loads.
    """
    from discovery.evaluate.abx import (
        TOKENS,
        make_triplets,
        mfcc_with_deltas,
        sound_span,
        trim_to_span,
    )

    if tokens not in TOKENS:
        raise ParameterError(f"Invalid value for `tokens`: expected one of {TOKENS}, "
                             f"received {tokens!r}.")
    paths, failures = files.find_inputs(inputs)
    labels = values_from_names(paths, label_regex, name="label_regex")
    speakers = values_from_names(paths, speaker_regex, name="speaker_regex")
    for mode in ("within", "across"):  # fail fast, before the model loads
        make_triplets(labels, speakers, n_triplets=n_triplets, mode=mode, seed=seed,
                      speaker=speaker)
    out = files.check_output_location(out_dir, inputs)
    files.refuse_existing([out / "abx.json"], overwrite=overwrite)
    if not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    bundle = bundle.with_hop(hop_seconds)
    recordings, embed_failures = embed_with_features(paths, model=bundle.model,
                                                     config=bundle.config,
                                                     progress=progress)
    failures += embed_failures
    # The tokens that could be read, with their labels and speakers.
    position = {str(path): index for index, path in enumerate(paths)}
    kept = [position[str(r.recording.path)] for r in recordings]
    labels, speakers = labels[kept], speakers[kept]
    representations = {
        "log-mel": [r.recording.features.values for r in recordings],
        "mfcc": [mfcc_with_deltas(r.recording.path, bundle.config.features)
                 for r in recordings],
        "model": [r.embedding for r in recordings]}
    if tokens == "sound":
        spans = [sound_span(r.recording.features.energy_db, bundle.config,
                            r.recording.features.digital_silence) for r in recordings]
        # Each window stands at the frame it is centred on.
        centres = [r.recording.windows.start_frame + bundle.config.input_frames // 2
                   for r in recordings]
        representations = {
            name: [trim_to_span(sequence, span, centre if name == "model" else None)
                   for sequence, span, centre in zip(sequences, spans, centres)]
            for name, sequences in representations.items()}
    if progress:
        print(f"ABX: DTW on up to {n_triplets} triplets within and across speaker",
              file=sys.stderr)
    scores = abx_scores(representations, labels, speakers, n_triplets=n_triplets, seed=seed,
                        speaker=speaker)
    files.write_text(out / "abx.json", json.dumps(
        {"n_files": len(recordings), "n_labels": int(len(set(labels))),
         "n_speakers": int(len(set(speakers))), "label_regex": label_regex,
         "speaker_regex": speaker_regex, "speaker": speaker, "model": str(bundle.path),
         "seed": seed, "tokens": tokens,
         "window_hop_seconds": bundle.config.windows.hop_seconds,
         "distance": "DTW over L2-normalised frames, divided by the path length",
         "results": scores}, indent=2))
    return scores, failures


def mine(inputs: Sequence, out_dir, *, bundle=None, settings=None,
         label_regex: Optional[str] = None, speaker_regex: Optional[str] = None,
         across_voices: bool = False, overwrite: bool = False,
         progress: bool = True) -> tuple:
    """`discovery mine`: the pairs the Siamese stage would learn from, and how good they
    are where file names carry labels (the labels score the pairs; they never choose
    them).

    Segments are cut with the bundle's settings and matched across recordings
    (`mining.mine_pairs`). Writes `mined_pairs.npz` and `mining.json` into `out_dir`.

    Args:
        bundle: whose feature and segment settings to use; None for the shipped
            default.
        settings: `SiameseConfig` (its mining settings); None for the defaults.
        label_regex, speaker_regex: labels and speakers from file names, for the
            report only. Defaults to None: no precision is reported.
        across_voices: bool. Mine as the stage's second round does: on the bundle's
            frame embeddings, only between recordings of different voices
            (`mining.voice_clusters`). Defaults to False: on cepstra, between any
            two recordings.

    Returns:
        (report as in mining.json, failures).

    Raises:
        ParameterError: a regex or `out_dir` is refused, before anything is read.
    """
    from discovery.config import SiameseConfig
    from discovery.mining import mine_pairs, mining_report
    from discovery.tuning import mine_across_voices, read_recordings

    settings = settings or SiameseConfig()
    paths, failures = files.find_inputs(inputs)
    for regex, name in ((label_regex, "label_regex"), (speaker_regex, "speaker_regex")):
        if regex is not None:
            values_from_names(paths, regex, name=name)
    out = files.check_output_location(out_dir, inputs)
    files.refuse_existing([out / "mined_pairs.npz", out / "mining.json"],
                          overwrite=overwrite)
    if not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    results, read_failures = read_recordings(paths, bundle.config, progress=progress)
    failures += read_failures
    if not results:
        raise AudioError(f"{inputs[0]}: no readable recordings to mine.")
    if progress:
        print("mining pairs: DTW between segments of different recordings", file=sys.stderr)
    started = time.perf_counter()
    features = [data.features for _, data in results]
    segments = [data.segments for _, data in results]
    voices = None
    if across_voices:
        mined, voices = mine_across_voices(bundle.model, features, segments, settings,
                                           progress=progress)
    else:
        mined = mine_pairs(features, segments, n_candidates=settings.n_candidates,
                           mutual_top=settings.mutual_top, path_step=settings.path_step,
                           progress=progress)
    names = [path for path, _ in results]
    labels = (values_from_names(names, label_regex, name="label_regex")
              if label_regex is not None else np.arange(len(names)))
    speakers = (values_from_names(names, speaker_regex, name="speaker_regex")
                if speaker_regex is not None else None)
    report = mining_report(mined, labels, speakers)
    if label_regex is None:  # the stand-in labels (one per recording) score nothing
        report.pop("precision")
        report.pop("across_speaker_precision", None)
    report.update({"n_recordings": len(results), "seconds": time.perf_counter() - started,
                   "n_candidates": settings.n_candidates, "mutual_top": settings.mutual_top,
                   "label_regex": label_regex, "speaker_regex": speaker_regex,
                   "across_voices": across_voices,
                   "n_voices": None if voices is None else int(len(np.unique(voices)))})
    mined.save(out / "mined_pairs.npz", names)
    files.write_text(out / "mining.json", json.dumps(report, indent=2))
    return report, failures
