"""The main job, `discovery run`: recordings -> embeddings -> units -> outputs.

    recordings --embed.py--> windows, z_mean, P(silence)
      --clustering.py--> unit per window (-1: silence or noise) --> merged occurrences
      --evaluate.py--> scores, where annotations sit beside recordings
      --report.py--> units.csv, embeddings.npz, report.html, Raven and Audacity tables,
                     run.json, scores.json

Everything is written into a new folder beside the output folder and moved into place
at the end, so an output folder never mixes two runs and a failed run leaves nothing
half-written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from discovery import annotations, bundle, files
from discovery.clustering import MIN_WINDOWS, REDUCTIONS, UnitClusterer, merge_units
from discovery.embed import RecordingEmbedding, combine, embed_recordings, resolve_model_dir
from discovery.errors import ParameterError
from discovery.evaluate import unit_scores
from discovery.files import Failure
from discovery.report import write_html_report
from discovery.results import (DiscoveryResult, RecordingInfo, write_audacity_labels,
                               write_raven_table, write_units_csv)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of the clustering stage of `discovery run`."""

    # "hdbscan" (density-based discovery: finds the number of units) or "kmeans".
    method: str = "hdbscan"
    # k for k-means; None chooses it by silhouette.
    n_clusters: Optional[int] = None
    # HDBSCAN's smallest unit, in windows; None picks it from the number of windows.
    min_cluster_size: Optional[int] = None
    # "umap" or "pca": the reduction before clustering, and the dimensions it keeps.
    reduction: str = "umap"
    n_components: int = 10
    # Windows at least this likely to be silence are left out.
    silence_threshold: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if self.method not in ("hdbscan", "kmeans"):
            raise ParameterError(f"Invalid value for `method`: expected 'hdbscan' or "
                                 f"'kmeans', received {self.method!r}.")
        if self.reduction not in REDUCTIONS:
            raise ParameterError(f"Invalid value for `reduction`: expected one of "
                                 f"{REDUCTIONS}, received {self.reduction!r}.")


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


def _prepare_output(out_dir: Path, overwrite: bool) -> Path:
    """A fresh staging folder beside `out_dir`; refuses to mix with an old run."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"{out_dir}: exists and is not a folder.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ParameterError(f"{out_dir}: the output folder already holds files; choose a "
                             "new folder or pass --overwrite to replace it.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    # mkdtemp makes the folder private (0700); give it the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    return staging


def _commit_output(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


def _scores(recordings: Sequence[RecordingEmbedding], units: np.ndarray,
            offsets: np.ndarray, silence_threshold: float) -> Optional[dict]:
    items = []
    for index, item in enumerate(recordings):
        annotation = annotations.find_annotation(item.recording.path)
        if annotation is None:
            continue
        rows = slice(offsets[index], offsets[index + 1])
        items.append({"annotation": annotation, "duration_s": item.recording.features.duration,
                      "start_s": item.recording.windows.start_s,
                      "end_s": item.recording.windows.end_s, "unit": units[rows],
                      "silence": item.silence >= silence_threshold})
    if not items:
        return None
    scores = unit_scores(items)
    scores["n_annotated_recordings"] = len(items)
    return scores


def run(inputs: Sequence, out_dir, *, model_dir=None, config: RunConfig = RunConfig(),
        overwrite: bool = False, progress: bool = True,
        command: Optional[str] = None) -> RunSummary:
    """Discover units in recordings and write every output into `out_dir`.

    Args:
        inputs: audio files or folders.
        out_dir: a new (or empty) folder; with `overwrite`, an old run there is replaced.
        model_dir: a model bundle; None takes the shipped `models/default`.
        config: clustering settings.
        overwrite: replace an existing, non-empty `out_dir`.
        progress: show progress.
        command: the command line, recorded in run.json.

    Raises:
        ParameterError: `out_dir` holds files and `overwrite` is False.
        ModelError: the model bundle is missing or broken.
        AudioError: no recording could be read.
    """
    from discovery.errors import AudioError

    out_dir = Path(out_dir)
    timings = {}
    started = time.perf_counter()
    staging = _prepare_output(out_dir, overwrite)
    try:
        model_dir = resolve_model_dir(model_dir)
        model = bundle.load_model(model_dir)
        timings["load_model_s"] = time.perf_counter() - started

        mark = time.perf_counter()
        _, recordings, failures = embed_recordings(inputs, model, progress=progress)
        if not recordings:
            raise AudioError(f"{inputs[0]}: no readable recordings.")
        embeddings = combine(recordings)
        timings["features_and_embedding_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        n_sound = int(np.sum(embeddings.silence < config.silence_threshold))
        if n_sound < MIN_WINDOWS:
            raise ParameterError(
                f"{inputs[0]}: too little sound to find units: {n_sound} of "
                f"{len(embeddings)} windows are not silence, at least {MIN_WINDOWS} are "
                "needed; give longer or more recordings.")
        if progress:
            print(f"clustering {len(embeddings)} windows ({config.method})",
                  file=sys.stderr)
        clusterer = UnitClusterer(method=config.method, n_clusters=config.n_clusters,
                                  min_cluster_size=config.min_cluster_size,
                                  reduction=config.reduction,
                                  n_components=config.n_components,
                                  silence_threshold=config.silence_threshold,
                                  random_state=config.seed)
        clusterer.fit(embeddings.embedding, silence=embeddings.silence)
        units, probabilities = clusterer.labels_, clusterer.probabilities_
        occurrences = merge_units(embeddings.file, embeddings.start_s, embeddings.end_s,
                                  units, probabilities)
        timings["clustering_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        offsets = np.concatenate([[0], np.cumsum([len(r.embedding) for r in recordings])])
        scores = _scores(recordings, units, offsets, config.silence_threshold)
        timings["scores_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        result = DiscoveryResult(
            recordings=[RecordingInfo(
                path=r.recording.path, duration_s=r.recording.features.duration,
                features=r.recording.features.values,
                frame_hop_s=r.recording.features.config.hop_length
                / r.recording.features.config.sample_rate,
                annotation=annotations.find_annotation(r.recording.path))
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
        files.write_text(staging / "run.json", json.dumps({
            "command": command, "inputs": [str(p) for p in inputs],
            "recordings": embeddings.files, "failures": [f.message for f in failures],
            "n_windows": int(len(embeddings)), "n_units": int(clusterer.n_clusters_),
            "n_occurrences": int(len(occurrences["unit"])),
            "settings": result.settings, "timings_s": timings}, indent=2, default=str))
        _commit_output(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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
