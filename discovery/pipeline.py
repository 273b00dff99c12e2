"""The main job, `discovery run`: recordings -> embeddings -> units -> outputs.

    recordings --embed.py--> windows, z_mean, P(silence)
      --clustering.py--> unit per window (-1: silence or noise) --> merged occurrences
      --evaluate.py--> scores, where annotations sit beside recordings
      --report.py--> units.csv, embeddings.npz, report.html, Raven and Audacity tables,
                     run.json, scores.json

Everything is written into a staging folder inside the output folder and moved into
place at the end (`discovery.files.output_folder`), so an output folder never mixes two
runs, a failed run leaves nothing half-written, and the inputs are never touched.
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

from discovery.frontend import annotations
from discovery import bundle, files
from discovery.units.clustering import METHODS, MIN_WINDOWS, REDUCTIONS, UnitClusterer
from discovery.units.occurrences import merge_units
from discovery.embed import RecordingEmbedding, combine, embed_paths, resolve_model_dir
from discovery.errors import AudioError, DiscoveryError, ParameterError
from discovery.evaluate import unit_scores
from discovery.files import Failure
from discovery.outputs.report import write_html_report
from discovery.result import DiscoveryResult, RecordingInfo
from discovery.outputs.tables import (
    write_audacity_labels,
    write_raven_table,
    write_units_csv,
)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of the clustering stage of `discovery run`."""

    # "hdbscan" (density-based discovery: finds the number of units) or "kmeans".
    method: str = "hdbscan"
    # k for k-means (k-means only); None chooses it by silhouette.
    n_clusters: Optional[int] = None
    # HDBSCAN's smallest unit, in windows (HDBSCAN only); None picks it from the number
    # of windows.
    min_cluster_size: Optional[int] = None
    # "umap" or "pca": the reduction before clustering, and the dimensions it keeps.
    reduction: str = "umap"
    n_components: int = 10
    # Windows at least this likely to be silence are left out.
    silence_threshold: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ParameterError(f"Invalid value for `method`: expected one of "
                                 f"{METHODS}, received {self.method!r}.")
        if self.reduction not in REDUCTIONS:
            raise ParameterError(f"Invalid value for `reduction`: expected one of "
                                 f"{REDUCTIONS}, received {self.reduction!r}.")
        # A setting the chosen method ignores is a mistake to point out, not to record.
        if self.n_clusters is not None and self.method != "kmeans":
            raise ParameterError(f"Invalid value for `n_clusters` (--clusters): it sets "
                                 f"k-means' k and does not apply to method "
                                 f"{self.method!r}, received {self.n_clusters!r}.")
        if self.min_cluster_size is not None and self.method != "hdbscan":
            raise ParameterError(f"Invalid value for `min_cluster_size` "
                                 f"(--min-cluster-size): it applies to HDBSCAN only, "
                                 f"not to method {self.method!r}, received "
                                 f"{self.min_cluster_size!r}.")
        # The clusterer checks the rest (types, ranges) before any heavy work starts.
        UnitClusterer(method=self.method, n_clusters=self.n_clusters,
                      min_cluster_size=self.min_cluster_size, reduction=self.reduction,
                      n_components=self.n_components,
                      silence_threshold=self.silence_threshold,
                      random_state=self.seed)._check_params()


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


# What `run` writes into its folder; `--overwrite` replaces a folder of these alone.
RUN_OUTPUTS = ("units.csv", "embeddings.npz", "report.html", "tables", "run.json",
               "scores.json")
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


def _scores(recordings: Sequence[RecordingEmbedding], found: dict, units: np.ndarray,
            offsets: np.ndarray, silence_threshold: float,
            window_sound_fraction: float) -> Optional[dict]:
    items = []
    for index, item in enumerate(recordings):
        annotation = found.get(Path(item.recording.path))
        if annotation is None:
            continue
        rows = slice(offsets[index], offsets[index + 1])
        items.append({"annotation": annotation, "duration_s": item.recording.features.duration,
                      "start_s": item.recording.windows.start_s,
                      "end_s": item.recording.windows.end_s, "unit": units[rows],
                      "silence": item.silence >= silence_threshold,
                      "valid_fraction": item.recording.windows.n_valid
                      / item.recording.windows.values.shape[1]})
    if not items:
        return None
    scores = unit_scores(items, window_sound_fraction=window_sound_fraction)
    scores["n_annotated_recordings"] = len(items)
    return scores


def run(inputs: Sequence, out_dir, *, model_dir=None, config: RunConfig = RunConfig(),
        overwrite: bool = False, progress: bool = True,
        command: Optional[str] = None) -> RunSummary:
    """Discover units in recordings and write every output into `out_dir`.

    Args:
        inputs: audio files or folders. A missing one, or a file that cannot be read,
            is listed in the summary's failures and the others are processed.
        out_dir: a new or empty folder (the current folder too), never an input nor
            holding one; with `overwrite`, a previous run there is replaced.
        model_dir: a model bundle folder or a shipped bundle's name; None takes the
            shipped `models/default`.
        config: clustering settings.
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
    timings = {}
    started = time.perf_counter()
    # Every check that can refuse the run comes before the model loads and the work starts.
    paths, failures = files.find_inputs(inputs)
    model_dir = resolve_model_dir(model_dir)
    if config.reduction == "umap":
        _warm_up_umap()
    with files.output_folder(out_dir, inputs=inputs, overwrite=overwrite,
                             owned=RUN_OUTPUTS, marker=RUN_MARKER,
                             command="discovery run") as staging:
        found, annotation_failures = _read_annotations(paths)
        failures += annotation_failures
        model = bundle.load_model(model_dir)
        timings["load_model_s"] = time.perf_counter() - started

        mark = time.perf_counter()
        recordings, embed_failures = embed_paths(paths, model, progress=progress,
                                                 keep_features=False)
        failures += embed_failures
        if not recordings:
            reasons = "; ".join(f.message for f in failures) or "no audio files"
            raise AudioError(f"no readable recordings: {reasons}")
        embeddings = combine(recordings)
        timings["features_and_embedding_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        n_sound = int(np.sum(embeddings.silence < config.silence_threshold))
        if n_sound < MIN_WINDOWS:
            raise ParameterError(
                f"{inputs[0]}: too little sound to find units: {n_sound} of "
                f"{len(embeddings)} windows are not silence, at least {MIN_WINDOWS} are "
                "needed; give longer or more recordings.")
        clusterer = UnitClusterer(method=config.method, n_clusters=config.n_clusters,
                                  min_cluster_size=config.min_cluster_size,
                                  reduction=config.reduction,
                                  n_components=config.n_components,
                                  silence_threshold=config.silence_threshold,
                                  random_state=config.seed, verbose=progress)
        clusterer.fit(embeddings.embedding, silence=embeddings.silence)
        units, probabilities = clusterer.labels_, clusterer.probabilities_
        occurrences = merge_units(embeddings.file, embeddings.start_s, embeddings.end_s,
                                  units, probabilities)
        timings["clustering_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        offsets = np.concatenate([[0], np.cumsum([len(r.embedding) for r in recordings])])
        scores = _scores(recordings, found, units, offsets, config.silence_threshold,
                         model.pipeline_config.silence.window_sound_fraction)
        timings["scores_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        result = DiscoveryResult(
            recordings=[RecordingInfo(
                path=r.recording.path, duration_s=r.recording.features.duration,
                feature_config=r.recording.features.config,
                reference_db=r.recording.features.reference_db,
                annotation=found.get(Path(r.recording.path)),
                digital_silence=bool(np.all(r.recording.window_digital_silence)))
                for r in recordings],
            window_file=embeddings.file, window_start_s=embeddings.start_s,
            window_end_s=embeddings.end_s, embedding=embeddings.embedding,
            silence=embeddings.silence, unit=units, probability=probabilities,
            occurrences=occurrences, scores=scores, timings=timings,
            settings={"model": str(model_dir), "run": dataclasses.asdict(config),
                      "pipeline": model.pipeline_config.to_dict(),
                      "versions": bundle.versions()})
        _write_outputs(staging, result, embeddings, progress=progress)
        timings["report_s"] = time.perf_counter() - mark
        timings["total_s"] = time.perf_counter() - started
        files.write_text(staging / RUN_MARKER, json.dumps({
            "written_by": "discovery run", "command": command,
            "inputs": [str(p) for p in inputs],
            "recordings": embeddings.files, "failures": [f.message for f in failures],
            "n_windows": int(len(embeddings)), "n_units": int(clusterer.n_clusters_),
            "n_occurrences": int(len(occurrences["unit"])),
            "settings": result.settings, "timings_s": timings}, indent=2, default=str))
    return RunSummary(out_dir, len(recordings), len(embeddings), int(clusterer.n_clusters_),
                      int(len(occurrences["unit"])), scores, timings, failures)


def _write_outputs(folder: Path, result: DiscoveryResult, embeddings, *,
                   progress: bool) -> None:
    write_units_csv(folder / "units.csv", result)
    files.save_npz(folder / "embeddings.npz",
                   {**embeddings.to_arrays(unit=result.unit),
                    "probability": result.probability.astype(np.float32)})
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
