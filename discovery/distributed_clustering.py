"""A store's windows (or segments) clustered on Ray, with the driver's memory bounded
by the fit sample, not the archive (`discovery run --engine ray`).

    workers: count each recording's rows that are clustered (windows: those not silence)
    driver:  draw the seeded sample `UnitClusterer` would fit on (`max_fit_points`)
    workers: gather the sampled rows, shard by shard
    driver:  fit the reduction and the clusterer on the sample, with the sizes
             `UnitClusterer.fit` scales to it
    workers: place every other row (UMAP's transform, HDBSCAN's approximate_predict),
             merge occurrences per recording, write STORE/_units/windows-<shard>
    driver:  the occurrences, and the report's recordings whole

Where every row fits in the sample, the fit is the local engine's, and so are the units.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from discovery.distributed import connect, require_ray
from discovery.errors import ParameterError
from discovery.store import Store

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
