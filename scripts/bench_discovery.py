"""Unit discovery against annotations: ours against plain baselines, windows and segments.

Window level (the first table). Every method sees the same windows (the model
bundle's feature and window settings) and the same silence decision (the model's
detector), so only the representation differs:

    baseline : the flattened log-mel window (frames x bands), PCA to 16 dimensions
    ours     : the model's z_mean, UMAP to 10 dimensions (what `discovery run
               --level windows` does)

each clustered with k-means (k = the number of annotated labels) and with HDBSCAN
(density-based, finds k itself). The crossed pairs are printed too, so the share of
the gain that is the reduction's and the share that is the model's can be read off:
raw windows with UMAP (10 dimensions), and our embeddings with PCA (16, as the
baseline; `discovery run --reduction pca` keeps 10). One seed (`--seed`).

Segment level (one table per data set). The plain AVGN-style pipeline
(`scripts/avgn_baseline.py`; Sainburg et al. 2020, with an energy segmenter in place
of hand segments), no learning at all: one energy threshold per recording (floor +
0.25 * (loud - floor), 10th / 99th percentiles of frame energy), each segment's
log-mel resized to the model's window length and flattened, UMAP to 2-D (min_dist 0),
then HDBSCAN (smallest cluster 3 % of the segments, at least 5) and k-means (k = the
number of labels, 10 inits). It runs on its own segments and on OUR segments
(`frontend.segments.find_segments` with the bundle's settings), so the segmenter's
share of a difference can be told from the representation's. Then ours through
`pipeline.discover`: level "segments" with segment_features "image" and "model", and
level "windows"; each with HDBSCAN and k-means (k = labels). Columns: k-means NMI,
HDBSCAN NMI, HDBSCAN coverage (annotated frames with a unit) and units, and the
sound decision's frame-level balanced accuracy against the annotations (the
segmenter's; at the window level, the model's silence detector). With `--seeds N` the
segment-level rows are run for seeds `--seed` .. `--seed` + N - 1 (UMAP and k-means
seeds; the segments and embeddings do not depend on it) and printed as "mean (min)".

All scores are frame-level (10 ms) against the annotations, from one scorer
(`discovery.evaluate.unit_scores`): NMI over annotated frames, with "no unit" counted
as one more class; at the segment level a frame takes the unit of the segment holding
it, and no unit outside every segment.

    python scripts/bench_discovery.py       # models/default on speech, models/birdsong on finch
    python scripts/bench_discovery.py --seeds 3 --json bench.json
    python scripts/bench_discovery.py --finch-model models/default   # one model for both

Needs the shared data (`--data`, default ../shared/data): exits 2 without it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from discovery.frontend import annotations, audio  # noqa: E402
from discovery import bundle  # noqa: E402
from discovery.config import ClusterConfig  # noqa: E402
from discovery.units.clustering import UnitClusterer  # noqa: E402
from discovery.embed import embed_recording  # noqa: E402
from discovery.evaluate import unit_scores  # noqa: E402
from discovery.frontend.segments import find_segments  # noqa: E402
from discovery.pipeline import discover  # noqa: E402

import avgn_baseline  # noqa: E402  (scripts/ is on the path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
# Reductions and the dimensions they keep: PCA to 16 is the baseline's; UMAP to 10 is
# what `discovery run` uses.
REDUCTIONS = {"pca": 16, "umap": 10}
SHARED = ROOT.parent / "shared" / "data"
# The segment-level table's rows, in print order: (key, label).
PIPELINES = (("avgn_energy", "plain AVGN, its energy segments"),
             ("avgn_ours", "plain AVGN, our segments"),
             ("ours_image", "ours, segments, image"),
             ("ours_model", "ours, segments, model"),
             ("ours_windows", "ours, windows"))
# Ours at each level, through `discover`: (key, level, segment_features).
OURS = (("ours_image", "segments", "image"), ("ours_model", "segments", "model"),
        ("ours_windows", "windows", "image"))


def embed_dataset(folder: Path, loaded: bundle.Bundle) -> list:
    """Every annotated recording in `folder`, embedded once for both sections:
    [(annotation, `RecordingEmbedding`)]."""
    embedded = []
    for path in audio.find_audio_files([folder]):
        annotation = annotations.find_annotation(path)
        if annotation is not None:
            embedded.append((annotation, embed_recording(path, model=loaded.model,
                                                         config=loaded.config)))
    return embedded


def count_labels(embedded: list) -> int:
    return len(np.unique(np.concatenate([a.labels for a, _ in embedded])))


def window_rows(name: str, embedded: list, *, seed: int) -> list:
    """The window-level crossed table's rows: raw / latent x PCA / UMAP x methods."""
    items, raw, latent, silence = [], [], [], []
    for annotation, result in embedded:
        windows = result.recording.windows
        raw.append(windows.values.reshape(len(windows), -1).astype(np.float32))
        latent.append(result.embedding)
        silence.append(result.silence)
        items.append({"annotation": annotation,
                      "duration_s": result.recording.features.duration,
                      "start_s": windows.start_s, "end_s": windows.end_s})
    n_labels = count_labels(embedded)
    silence = np.concatenate(silence)
    offsets = np.cumsum([0] + [len(r) for r in raw])
    rows = []
    for representation, values in (("raw", np.concatenate(raw)),
                                   ("latent", np.concatenate(latent))):
        for (method, reduction) in itertools.product(("kmeans", "hdbscan"), REDUCTIONS):
            started = time.perf_counter()
            clusterer = UnitClusterer(method=method, random_state=seed,
                                      reduction=reduction, n_components=REDUCTIONS[reduction],
                                      n_clusters=n_labels if method == "kmeans" else None)
            clusterer.fit(values, silence=silence)
            seconds = time.perf_counter() - started
            scored = [dict(item, unit=clusterer.labels_[offsets[i]:offsets[i + 1]],
                           silence=silence[offsets[i]:offsets[i + 1]] >= 0.5)
                      for i, item in enumerate(items)]
            scores = unit_scores(scored)
            rows.append({"section": "windows_crossed", "dataset": name,
                         "representation": representation,
                         "method": method, "reduction": reduction,
                         "n_units": int(clusterer.n_clusters_),
                         "seconds": seconds, "n_labels": n_labels, "seed": seed,
                         "n_windows": int(len(values)), **scores})
    return rows


def print_window_table(rows: list) -> None:
    print(f"{'data set':30s} {'method':8s} {'baseline':>9s} {'ours':>6s} {'ratio':>6s} "
          f"{'raw+UMAP':>9s} {'ours+PCA':>9s} {'ours cov':>8s} {'units':>6s}   (frame NMI)")
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for method in ("kmeans", "hdbscan"):
            def pick(representation, reduction):
                return next(r for r in rows if r["dataset"] == dataset
                            and r["method"] == method and r["reduction"] == reduction
                            and r["representation"] == representation)
            baseline, ours = pick("raw", "pca"), pick("latent", "umap")
            print(f"{dataset:30s} {method:8s} {baseline['nmi']:9.3f} {ours['nmi']:6.3f} "
                  f"{ours['nmi'] / max(baseline['nmi'], 1e-9):6.2f} "
                  f"{pick('raw', 'umap')['nmi']:9.3f} {pick('latent', 'pca')['nmi']:9.3f} "
                  f"{ours['coverage']:8.3f} {ours['n_units']:6d}")


def _segment_item(annotation, recording, bounds: np.ndarray, unit: np.ndarray) -> dict:
    """One recording for `unit_scores` at the segment level. The one dummy window only
    fills the window keys: with `segments` given, frames take their segment's unit."""
    duration = recording.features.duration
    hop = recording.features.config.hop_length / recording.features.config.sample_rate
    return {"annotation": annotation, "duration_s": duration,
            "start_s": np.array([0.0]), "end_s": np.array([duration]),
            "unit": np.array([-1]), "silence": np.array([False]),
            "segments": {"start_s": bounds[:, 0] * hop, "end_s": bounds[:, 1] * hop,
                         "unit": unit}}


def plain_rows(name: str, embedded: list, loaded: bundle.Bundle, *, seeds) -> tuple:
    """The plain AVGN pipeline on its energy segments and on ours, for each seed.

    Returns:
        (rows, {segmenter key: number of segments}).
    """
    config = loaded.config
    frame_rate = config.features.frame_rate
    segmenters = {
        "avgn_energy": lambda f: avgn_baseline.energy_segments(
            f.energy_db, frame_rate=frame_rate, min_seconds=config.segments.min_seconds,
            digital_silence=f.digital_silence),
        "avgn_ours": lambda f: find_segments(
            f.energy_db, frame_rate=frame_rate, silence=config.silence,
            segments=config.segments, digital_silence=f.digital_silence),
    }
    n_labels = count_labels(embedded)
    rows, counts = [], {}
    for key, segmenter in segmenters.items():
        bounds = [segmenter(result.recording.features) for _, result in embedded]
        vectors = np.concatenate([
            avgn_baseline.segment_vectors(result.recording.features.values, b,
                                          config.input_frames)
            for (_, result), b in zip(embedded, bounds)])
        offsets = np.cumsum([0] + [len(b) for b in bounds])
        counts[key] = int(offsets[-1])
        for seed in seeds:
            started = time.perf_counter()
            clustered = avgn_baseline.cluster_segments(vectors, n_clusters=n_labels,
                                                       seed=seed)
            seconds = time.perf_counter() - started
            for method in ("kmeans", "hdbscan"):
                unit = getattr(clustered, method)
                items = [_segment_item(annotation, result.recording, b,
                                       unit[offsets[i]:offsets[i + 1]])
                         for i, ((annotation, result), b)
                         in enumerate(zip(embedded, bounds))]
                rows.append({"section": "segments", "dataset": name, "pipeline": key,
                             "method": method, "seed": seed, "seconds": seconds,
                             "n_labels": n_labels, "n_segments": counts[key],
                             **unit_scores(items)})
    return rows, counts


def ours_rows(name: str, folder: Path, loaded: bundle.Bundle, n_labels: int, *,
              seeds) -> list:
    """Ours through `discover` at both levels, each method, for each seed."""
    rows = []
    for seed, (key, level, features), method in itertools.product(
            seeds, OURS, ("kmeans", "hdbscan")):
        config = ClusterConfig(method=method, level=level, segment_features=features,
                               n_clusters=n_labels if method == "kmeans" else None,
                               seed=seed)
        started = time.perf_counter()
        result = discover([folder], loaded, config, progress=False)
        seconds = time.perf_counter() - started
        n_segments = None if result.segments is None else len(result.segments)
        rows.append({"section": "segments", "dataset": name, "pipeline": key,
                     "method": method, "seed": seed, "seconds": seconds,
                     "n_labels": n_labels, "n_segments": n_segments,
                     "timings": result.timings, **result.scores})
    return rows


def summarise(rows: list) -> list:
    """Mean and min over seeds of each (data set, pipeline, method)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["pipeline"], row["method"]), []).append(row)
    summary = []
    for (dataset, pipeline, method), group in groups.items():
        def values(name):
            return np.array([r[name] for r in group], dtype=float)
        summary.append({
            "section": "segments_summary", "dataset": dataset, "pipeline": pipeline,
            "method": method, "seeds": [r["seed"] for r in group],
            "nmi_mean": float(values("nmi").mean()), "nmi_min": float(values("nmi").min()),
            "coverage_mean": float(values("coverage").mean()),
            "n_units_mean": float(values("n_units").mean()),
            "sound_balanced_accuracy": float(
                values("silence_balanced_accuracy_frames").mean()),
            "n_segments": group[0]["n_segments"]})
    return summary


def print_segment_table(dataset: str, summary: list, *, n_seeds: int, n_labels: int,
                        n_annotated: int, counts: dict) -> None:
    def nmi(entry):
        text = f"{entry['nmi_mean']:.3f}"
        return text + (f" ({entry['nmi_min']:.3f})" if n_seeds > 1 else "")

    width = 15 if n_seeds > 1 else 7
    print(f"\n{dataset}: {n_labels} labels, {n_annotated} annotated units; segments: "
          f"plain energy {counts['avgn_energy']}, ours {counts['avgn_ours']}; frame NMI"
          + (f", mean (min) over {n_seeds} seeds" if n_seeds > 1 else ""))
    print(f"  {'pipeline':34s} {'k-means':>{width}s} {'HDBSCAN':>{width}s} "
          f"{'HDB cov':>7s} {'HDB units':>9s} {'sound BA':>8s}")
    for key, label in PIPELINES:
        pick = {r["method"]: r for r in summary
                if r["dataset"] == dataset and r["pipeline"] == key}
        units = pick["hdbscan"]["n_units_mean"]
        units = f"{units:.0f}" if n_seeds == 1 else f"{units:.1f}"
        print(f"  {label:34s} {nmi(pick['kmeans']):>{width}s} "
              f"{nmi(pick['hdbscan']):>{width}s} "
              f"{pick['hdbscan']['coverage_mean']:7.3f} {units:>9s} "
              f"{pick['hdbscan']['sound_balanced_accuracy']:8.3f}")
    print("  sound BA: frame-level balanced accuracy of the sound decision (segments: "
          "the segmenter's; windows: the model's silence detector)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech-model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--finch-model", type=Path, default=ROOT / "models" / "birdsong")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--seed", type=int, default=0,
                        help="the window-level table's seed and the first segment-level "
                        "seed (default 0)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="segment-level seeds: --seed .. --seed + N - 1 (default 1)")
    parser.add_argument("--json", type=Path, help="also write every row as JSON")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds: expected an integer >= 1, received {args.seeds}")
    datasets = (("FSDD recordings (digits)", args.data / "recordings", args.speech_model),
                ("Bengalese finch (syllables)", args.data / "bfsongrepo", args.finch_model))
    missing = [str(folder) for _, folder, _ in datasets if not folder.is_dir()]
    if missing:
        print(f"{', '.join(missing)}: the shared data is needed for this benchmark",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    seeds = range(args.seed, args.seed + args.seeds)
    window, segment, tables = [], [], []
    for name, folder, model_dir in datasets:
        loaded = bundle.Bundle.load(model_dir)
        embedded = embed_dataset(folder, loaded)
        window += window_rows(name, embedded, seed=args.seed)
        plain, counts = plain_rows(name, embedded, loaded, seeds=seeds)
        n_labels = count_labels(embedded)
        segment += plain + ours_rows(name, folder, loaded, n_labels, seeds=seeds)
        tables.append((name, n_labels, sum(len(a.labels) for a, _ in embedded), counts))
    summary = summarise(segment)
    print_window_table(window)
    for name, n_labels, n_annotated, counts in tables:
        print_segment_table(name, summary, n_seeds=args.seeds, n_labels=n_labels,
                            n_annotated=n_annotated, counts=counts)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(window + segment + summary, indent=2,
                                        default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
