"""Behaviour does not change: the quick start's job, seeded (k-means on PCA), gives the
run stored in tests/data/stored_run (first written before the stage-folder renovation;
rewritten, as its run.json says, when the shipped default model changed on purpose). Bit for bit with the library versions it was stored with (run.json there);
with margins for what a new release of TensorFlow or scikit-learn may move in the
last digits, so the test keeps meaning "the same result" on a fresh install."""

import csv
import json
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import confusion_matrix

from discovery.cli import main
import pytest

# The whole quick-start job, compared with a stored run.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
STORED = ROOT / "tests" / "data" / "stored_run"


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _agreement(stored, now):
    """Share of windows whose unit matches after the best one-to-one relabelling."""
    labels = np.union1d(stored, now)
    counts = confusion_matrix(stored, now, labels=labels)
    rows, cols = linear_sum_assignment(-counts)
    return counts[rows, cols].sum() / len(stored)


def test_the_stored_run_is_reproduced(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # units.csv names the files as given: data/...
    out = tmp_path / "now"
    command = json.loads((STORED / "run.json").read_text())["command"].split()[2:]
    argv = ["run", *[str(out) if word == "DIR" else word for word in command]]
    # The stored run predates segments: it is a window-level run.
    if "--level" not in argv:
        argv += ["--level", "windows"]
    assert main(argv) == 0
    with np.load(STORED / "embeddings.npz") as before, np.load(out / "embeddings.npz") as now:
        assert set(before.files) <= set(now.files)
        for name in ("file", "start_s", "end_s"):
            np.testing.assert_array_equal(now[name], before[name])
        np.testing.assert_allclose(now["embedding"], before["embedding"], atol=1e-4)
        np.testing.assert_allclose(now["silence"], before["silence"], atol=1e-4)
        assert _agreement(before["unit"], now["unit"]) >= 0.99
    before_rows, now_rows = _rows(STORED / "units.csv"), _rows(out / "units.csv")
    assert abs(len(now_rows) - len(before_rows)) <= 0.02 * len(before_rows)
    assert {r["file"] for r in now_rows} == {r["file"] for r in before_rows}
    # With the library versions the run was stored with, nothing may move at all.
    from discovery import bundle

    stored_versions = json.loads((STORED / "run.json").read_text())["versions"]
    if all(bundle.versions().get(k) == v for k, v in stored_versions.items()
           if k != "discovery"):
        assert (out / "units.csv").read_bytes() == (STORED / "units.csv").read_bytes()
