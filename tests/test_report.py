"""Report writers: units.csv, Raven and Audacity tables, the self-contained HTML report.

The results here are built by hand from real audio (features and windows of the sample
recordings, PCA of the flattened windows as the embedding, k-means as the units), so
the report sees realistic data without the model.
"""

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from discovery.annotations import find_annotation
from discovery.config import PipelineConfig
from discovery.errors import ParameterError
from discovery.recording import analyse
from discovery.report import write_html_report
from discovery.results import (
    DiscoveryResult,
    RecordingInfo,
    write_audacity_labels,
    write_raven_table,
    write_units_csv,
)

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT_SCRIPT = ROOT / "scripts" / "screenshot_report.py"


def merge_runs(window_file, start_s, end_s, unit, probability) -> dict:
    """Occurrences: runs of consecutive windows of one unit in one file, merged."""
    rows = {k: [] for k in ("file", "start_s", "end_s", "unit", "confidence", "n_windows")}
    i = 0
    while i < len(unit):
        j = i
        while j + 1 < len(unit) and unit[j + 1] == unit[i] and window_file[j + 1] == window_file[i]:
            j += 1
        if unit[i] >= 0:
            for key, value in (("file", window_file[i]), ("start_s", start_s[i]),
                               ("end_s", end_s[j]), ("unit", unit[i]),
                               ("confidence", probability[i:j + 1].mean()),
                               ("n_windows", j - i + 1)):
                rows[key].append(value)
        i = j + 1
    types = {"file": int, "unit": int, "n_windows": int}
    return {k: np.asarray(v, dtype=types.get(k, float)) for k, v in rows.items()}


def build_result(paths, *, n_units=6, seed=0, config=None) -> DiscoveryResult:
    """A realistic `DiscoveryResult` of real recordings, without the model."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    config = config or PipelineConfig()
    recordings, files, starts, ends, windows, silence = [], [], [], [], [], []
    for index, path in enumerate(paths):
        analysed = analyse(path, config)
        recordings.append(RecordingInfo(
            path=str(path), duration_s=analysed.features.duration,
            features=analysed.features.values, frame_hop_s=config.features.hop_seconds,
            annotation=find_annotation(path)))
        n = len(analysed.windows.start_s)
        files.append(np.full(n, index))
        starts.append(analysed.windows.start_s)
        ends.append(analysed.windows.end_s)
        windows.append(analysed.windows.values.reshape(n, -1))
        silence.append(np.where(analysed.window_silence, 0.9, 0.1)
                       * (1 - 0.1 * analysed.window_sound_fraction))
    flat = np.concatenate(windows)
    embedding = PCA(16, random_state=seed).fit_transform(flat)
    silence = np.concatenate(silence)
    unit = np.full(len(flat), -1)
    probability = np.zeros(len(flat))
    sound = silence < 0.5
    if sound.sum() >= n_units:
        kmeans = KMeans(n_units, n_init=4, random_state=seed).fit(embedding[sound])
        distances = kmeans.transform(embedding[sound])
        nearest = np.sort(distances, axis=1)
        confidence = 1 - nearest[:, 0] / np.maximum(nearest[:, 1], 1e-9)
        labels = np.where(confidence > 0.1, kmeans.labels_, -1)  # ambiguous -> noise
        unit[sound], probability[sound] = labels, np.where(labels >= 0, confidence, 0)
    files, starts, ends = np.concatenate(files), np.concatenate(starts), np.concatenate(ends)
    return DiscoveryResult(
        recordings=recordings, window_file=files, window_start_s=starts, window_end_s=ends,
        embedding=embedding, silence=silence, unit=unit, probability=probability,
        occurrences=merge_runs(files, starts, ends, unit, probability),
        scores={"nmi": 0.412, "v_measure": 0.412, "homogeneity": 0.45, "completeness": 0.38,
                "purity": 0.51, "coverage": 0.87, "silence_balanced_accuracy": float("nan"),
                "n_frames": 1234, "n_labels": 10},
        settings={"features": config.features.to_dict(), "windows": config.windows.to_dict(),
                  "versions": {"discovery": "test"}},
        timings={"features_s": 1.2, "embedding_s": 3.4, "clustering_s": 0.5, "total_s": 5.5})


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """Two short real recordings: 8 kHz spoken digits and a 32 kHz finch song."""
    data = ROOT / "data"
    return build_result([data / "fsdd" / "0_george_0.wav",
                         data / "bfsongrepo" / "gy6or6_baseline_230312_0811.159.wav"])


@pytest.fixture(scope="module")
def report(result, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_html_report(path, result, max_examples=3, max_map_points=400)
    return path


def _leftovers(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_units_csv_has_one_row_per_occurrence(result, tmp_path):
    path = tmp_path / "units.csv"
    write_units_csv(path, result)
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    assert header == ["file", "start_s", "end_s", "unit", "confidence"]
    assert len(rows) == len(result.occurrences["unit"]) > 0
    paths = {r.path for r in result.recordings}
    for file, start, end, unit, confidence in rows:
        assert file in paths
        assert float(start) < float(end)
        assert re.fullmatch(r"\d+\.\d{6}", start)
        assert int(unit) >= 0 and 0 <= float(confidence) <= 1
    assert _leftovers(tmp_path) == []


def test_raven_table_parses_back(result, tmp_path):
    path = tmp_path / "rec.selections.txt"
    write_raven_table(path, result, 1)
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["Selection", "View", "Channel", "Begin Time (s)",
                                    "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                                    "Unit", "Confidence"]
    mine = result.occurrences["file"] == 1
    assert len(lines) - 1 == mine.sum() > 0
    rows = [line.split("\t") for line in lines[1:]]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    assert {r[1] for r in rows} == {"Spectrogram 1"} and {r[2] for r in rows} == {"1"}
    np.testing.assert_allclose([float(r[3]) for r in rows],
                               np.sort(result.occurrences["start_s"][mine]), atol=1e-6)
    # The finch song is at 32 kHz: Nyquist 16 kHz by default.
    assert {float(r[6]) for r in rows} == {16000.0}


def test_raven_frequency_band_and_bad_index(result, tmp_path):
    path = tmp_path / "band.txt"
    write_raven_table(path, result, 0, low_freq_hz=300, high_freq_hz=3000)
    row = path.read_text().splitlines()[1].split("\t")
    assert (float(row[5]), float(row[6])) == (300.0, 3000.0)
    with pytest.raises(ParameterError, match="recording_index"):
        write_raven_table(tmp_path / "x.txt", result, 5)


def test_audacity_labels_parse_back(result, tmp_path):
    path = tmp_path / "labels.txt"
    write_audacity_labels(path, result, 0)
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    mine = result.occurrences["file"] == 0
    assert len(rows) == mine.sum() > 0
    order = np.argsort(result.occurrences["start_s"][mine])
    np.testing.assert_allclose([float(r[1]) for r in rows],
                               result.occurrences["end_s"][mine][order], atol=1e-6)
    assert [r[2] for r in rows] == [f"unit {u}" for u in result.occurrences["unit"][mine][order]]


def test_html_report_is_self_contained(result, report):
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    assert "<audio" in text and "data:audio/wav;base64," in text
    assert "data:image/png;base64," in text
    for unit in np.unique(result.occurrences["unit"]):
        assert f'id="unit-{unit}"' in text
    for heading in ("Summary", "Map of the windows", "Units", "Unit galleries", "Timelines",
                    "Scores against annotations", "Settings and versions", "Timings"):
        assert heading in text
    assert "t-SNE" in text
    assert "labelled frames scored: 1,234" in text and "<b>5.50 s</b>" in text
    assert report.stat().st_size < 3_000_000
    assert _leftovers(report.parent) == []


def test_html_audio_snippets_are_short_and_at_most_16_khz(report):
    import base64
    import io

    import soundfile

    text = report.read_text()
    snippets = re.findall(r"data:audio/wav;base64,([A-Za-z0-9+/=]+)", text)
    assert snippets
    for encoded in snippets:
        samples, rate = soundfile.read(io.BytesIO(base64.b64decode(encoded)))
        assert rate <= 16000 and len(samples) / rate <= 2.0 + 1e-6


def test_html_escapes_file_names(result, tmp_path):
    odd = tmp_path / "a<b>&c.wav"
    shutil.copy(result.recordings[0].path, odd)
    recordings = [RecordingInfo(**{**vars(r), "path": str(odd) if i == 0 else r.path})
                  for i, r in enumerate(result.recordings)]
    path = tmp_path / "report.html"
    write_html_report(path, DiscoveryResult(**{**vars(result), "recordings": recordings}),
                      title="<units> & more", max_examples=1, max_map_points=50,
                      max_timelines=1)
    text = path.read_text()
    assert "a&lt;b&gt;&amp;c.wav" in text and "a<b>" not in text
    assert "&lt;units&gt; &amp; more" in text


def test_html_with_no_units(result, tmp_path):
    empty = {k: v[:0] for k, v in result.occurrences.items()}
    # A 60-dimensional embedding also takes the PCA-before-t-SNE path.
    wide = np.hstack([result.embedding ** p for p in (1, 2, 3)] + [result.embedding[:, :12]])
    wide = wide.tolist()  # lists are accepted too
    nothing = DiscoveryResult(**{**vars(result), "unit": np.full(len(result.unit), -1),
                                 "occurrences": empty, "scores": None, "embedding": wide})
    path = tmp_path / "report.html"
    write_html_report(path, nothing, max_map_points=50, max_timelines=1)
    text = path.read_text()
    assert "No units were found" in text and "<audio" not in text
    assert "PCA from 60 to" in text
    write_units_csv(tmp_path / "units.csv", nothing)
    assert (tmp_path / "units.csv").read_text() == "file,start_s,end_s,unit,confidence\n"
    assert _leftovers(tmp_path) == []


def test_html_with_many_recordings_caps_timelines(result, tmp_path):
    many = DiscoveryResult(**{**vars(result), "recordings": result.recordings * 13})
    path = tmp_path / "report.html"
    write_html_report(path, many, max_examples=1, max_map_points=50, max_timelines=3)
    text = path.read_text()
    assert "Timelines are drawn for the first 3 of 26 recordings" in text
    assert text.count('alt="features and units of') == 3


def test_inconsistent_result_is_rejected(result, tmp_path):
    broken = DiscoveryResult(**{**vars(result), "silence": result.silence[:-1]})
    with pytest.raises(ParameterError, match="silence"):
        write_html_report(tmp_path / "report.html", broken)
    with pytest.raises(ParameterError, match="max_examples"):
        write_html_report(tmp_path / "report.html", result, max_examples=-1)
    with pytest.raises(ParameterError, match="silence_threshold"):
        write_html_report(tmp_path / "report.html", result, silence_threshold=2)
    with pytest.raises(ParameterError, match="occurrences"):
        write_units_csv(tmp_path / "units.csv",
                        DiscoveryResult(**{**vars(result), "occurrences": {"file": []}}))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(result, tmp_path, monkeypatch):
    import discovery.report as report_module

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(report_module, "_summary", fail)
    with pytest.raises(RuntimeError):
        write_html_report(tmp_path / "report.html", result, max_map_points=50)
    assert list(tmp_path.iterdir()) == []


def test_unit_colors_are_stable_and_distinct():
    from discovery import plots

    assert plots.unit_colors(3) == plots.unit_colors(60)[:3]
    colors = plots.unit_colors(60)
    assert len(set(colors)) == 60 and plots.NOISE_COLOR not in colors


def test_plot_functions_return_their_axes(result):
    from discovery import plots

    figure, axes = plots.new_figure(6, 6, nrows=5)
    recording = result.recordings[0]
    assert plots.unit_map(result.embedding[:, :2], result.unit, ax=axes[0]) is axes[0]
    assert plots.density_map(result.embedding[:, :2], ax=axes[1]) is axes[1]
    assert plots.spectrogram(recording.features, frame_hop_s=0.01, ax=axes[2]) is axes[2]
    assert plots.unit_timeline([0.1], [0.3], [2], duration_s=1.0, ax=axes[3],
                               labels=([0.1], [0.2], ["a"])) is axes[3]
    assert plots.unit_gallery_example(recording.features[:30], ax=axes[4], unit=1) is axes[4]
    assert plots.figure_to_png_bytes(figure).startswith(b"\x89PNG")


def test_distance_histograms_png(rng):
    from discovery import plots

    distances = {name: {mode: (rng.normal(1, 0.3, 50), rng.normal(2, 0.3, 60))
                        for mode in ("closed", "open_end")} for name in ("raw", "latent")}
    distances["latent"]["prefix"] = (np.zeros(0), np.zeros(0))
    assert plots.distance_histograms_png(distances).startswith(b"\x89PNG")


def _screenshot_module():
    """`scripts/screenshot_report.py`, loaded by path (scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("screenshot_report", SCREENSHOT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_screenshot_with_chromium(report, tmp_path):
    if _screenshot_module().find_browser() is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH")
    png = tmp_path / "report.png"
    completed = subprocess.run([sys.executable, str(SCREENSHOT_SCRIPT), str(report), str(png),
                                "--height", "1600"], capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000


def test_screenshot_without_browser_exits_2(report, tmp_path, monkeypatch):
    module = _screenshot_module()
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    assert module.main([str(report), str(tmp_path / "x.png")]) == 2
