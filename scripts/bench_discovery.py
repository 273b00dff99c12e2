"""Unit discovery quality: our embeddings against raw-feature baselines, in one run.

For each data set, every method sees the same windows (the model bundle's feature and
window settings) and the same silence decision (the model's detector), so only the
representation differs:

    baseline : the flattened log-mel window (frames x bands), PCA to 16 dimensions
    ours     : the model's z_mean, UMAP to 10 dimensions (what `discovery run` does)

and each is clustered with k-means (k = the number of annotated labels) and with
HDBSCAN (density-based, finds k itself). The crossed pairs are printed too, so the
share of the gain that is the reduction's and the share that is the model's can be
read off: raw windows with UMAP (10 dimensions), and our embeddings with PCA (16, as
the baseline; `discovery run --reduction pca` keeps 10). Scores are frame-level (10 ms) against the
annotations (`discovery.evaluate.unit_scores`): NMI over annotated frames, with "no
unit" counted as one more class.

    python scripts/bench_discovery.py       # models/default on speech, models/birdsong on finch
    python scripts/bench_discovery.py --finch-model models/default   # one model for both
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
from discovery.units.clustering import UnitClusterer  # noqa: E402
from discovery.embed import embed_recording  # noqa: E402
from discovery.evaluate import unit_scores  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Reductions and the dimensions they keep: PCA to 16 is the baseline's; UMAP to 10 is
# what `discovery run` uses.
REDUCTIONS = {"pca": 16, "umap": 10}
SHARED = ROOT.parent / "shared" / "data"


def evaluate_dataset(name: str, folder: Path, model_dir: Path, *, seed: int) -> list:
    loaded = bundle.Bundle.load(model_dir)
    items, raw, latent, silence = [], [], [], []
    for path in audio.find_audio_files([folder]):
        annotation = annotations.find_annotation(path)
        if annotation is None:
            continue
        result = embed_recording(path, model=loaded.model, config=loaded.config)
        windows = result.recording.windows
        raw.append(windows.values.reshape(len(windows), -1).astype(np.float32))
        latent.append(result.embedding)
        silence.append(result.silence)
        items.append({"annotation": annotation,
                      "duration_s": result.recording.features.duration,
                      "start_s": windows.start_s, "end_s": windows.end_s})
    n_labels = len(np.unique(np.concatenate([it["annotation"].labels for it in items])))
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
            rows.append({"dataset": name, "representation": representation,
                         "method": method, "reduction": reduction,
                         "n_units": int(clusterer.n_clusters_),
                         "seconds": seconds, "n_labels": n_labels,
                         "n_windows": int(len(values)), **scores})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech-model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--finch-model", type=Path, default=ROOT / "models" / "birdsong")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data}: the shared data is needed for this benchmark", file=sys.stderr)
        return 2
    rows = (evaluate_dataset("FSDD recordings (digits)", args.data / "recordings",
                             args.speech_model, seed=args.seed)
            + evaluate_dataset("Bengalese finch (syllables)", args.data / "bfsongrepo",
                               args.finch_model, seed=args.seed))
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
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
