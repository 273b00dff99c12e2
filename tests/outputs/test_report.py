"""Report writers: units.csv, Raven and Audacity tables, the self-contained HTML report.

The results here are built by hand from real audio (features and windows of the sample
recordings, PCA of the flattened windows as the embedding, k-means as the units), so
the report sees realistic data without the model.
"""

import csv
import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from discovery.frontend import features
from discovery.frontend.annotations import find_annotation
from discovery.config import FEATURE_PRESETS, FeatureConfig, PipelineConfig
from discovery.errors import ParameterError
from discovery.frontend.recording import analyse
from discovery.outputs.report import write_html_report
from discovery.embed import WindowTable
from discovery.result import DiscoveryResult, RecordingInfo
from discovery.units.maps import UnitMap
from discovery.units.occurrences import Occurrences
from discovery.outputs.tables import (
    write_audacity_labels,
    write_raven_table,
    write_units_csv,
)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_SCRIPT = ROOT / "scripts" / "screenshot_report.py"


def merge_runs(window_file, start_s, end_s, unit, probability) -> Occurrences:
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
    return Occurrences(**rows)


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
            feature_config=config.features, reference_db=analysed.features.reference_db,
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
        recordings=recordings,
        windows=WindowTable(files=[str(p) for p in paths], file=files, start_s=starts,
                            end_s=ends, embedding=embedding, silence=silence),
        unit=unit, probability=probability,
        occurrences=merge_runs(files, starts, ends, unit, probability),
        scores={"nmi": 0.412, "v_measure": 0.412, "homogeneity": 0.45, "completeness": 0.38,
                "purity": 0.51, "coverage": 0.87,
                "silence_balanced_accuracy_windows": 0.982,
                "silence_balanced_accuracy_frames": float("nan"),
                "n_frames": 1234, "n_windows": 321, "n_labels": 10},
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
    assert len(rows) == len(result.occurrences) > 0
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
                                    "Annotation", "Confidence"]
    mine = result.occurrences.file == 1
    assert len(lines) - 1 == mine.sum() > 0
    rows = [line.split("\t") for line in lines[1:]]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    assert {r[1] for r in rows} == {"Spectrogram 1"} and {r[2] for r in rows} == {"1"}
    np.testing.assert_allclose([float(r[3]) for r in rows],
                               np.sort(result.occurrences.start_s[mine]), atol=1e-6)
    # The model's band, not the file's: 32 kHz song analysed at 16 kHz, 0 to 8 kHz.
    assert {(float(r[5]), float(r[6])) for r in rows} == {(0.0, 8000.0)}
    assert all(re.fullmatch(r"unit \d+", r[7]) for r in rows)


# crowsetta's own pandas call, not ours.
@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_raven_table_reads_back_with_crowsetta(result, tmp_path):
    crowsetta = pytest.importorskip("crowsetta")
    path = tmp_path / "rec.Table.1.selections.txt"
    write_raven_table(path, result, 1)
    # The reader's defaults: no annotation column named.
    boxes = crowsetta.formats.bbox.Raven.from_file(path).to_bbox()
    mine = result.occurrences.file == 1
    order = np.argsort(result.occurrences.start_s[mine], kind="stable")
    np.testing.assert_allclose([b.onset for b in boxes],
                               result.occurrences.start_s[mine][order], atol=1e-6)
    np.testing.assert_allclose([b.offset for b in boxes],
                               result.occurrences.end_s[mine][order], atol=1e-6)
    assert [b.label for b in boxes] == [f"unit {u}"
                                        for u in result.occurrences.unit[mine][order]]
    assert {(b.low_freq, b.high_freq) for b in boxes} == {(0.0, 8000.0)}
    annotation = crowsetta.Transcriber(format="raven").from_file(path).to_annot()
    assert len(annotation.bboxes) == len(boxes)


def test_raven_band_follows_the_feature_config(result, tmp_path):
    # An 8 kHz digit analysed at 16 kHz holds nothing above its own Nyquist frequency.
    write_raven_table(tmp_path / "digit.txt", result, 0)
    row = (tmp_path / "digit.txt").read_text().splitlines()[1].split("\t")
    assert (float(row[5]), float(row[6])) == (0.0, 4000.0)
    banded = FeatureConfig(sample_rate=32000, fmin=500.0, fmax=10000.0)
    recordings = [dataclasses.replace(r, feature_config=banded) for r in result.recordings]
    write_raven_table(tmp_path / "song.txt", dataclasses.replace(result, recordings=recordings), 1)
    row = (tmp_path / "song.txt").read_text().splitlines()[1].split("\t")
    assert (float(row[5]), float(row[6])) == (500.0, 10000.0)


def test_raven_frequency_band_and_bad_index(result, tmp_path):
    path = tmp_path / "band.txt"
    write_raven_table(path, result, 0, low_freq_hz=300, high_freq_hz=3000)
    row = path.read_text().splitlines()[1].split("\t")
    assert (float(row[5]), float(row[6])) == (300.0, 3000.0)
    with pytest.raises(ParameterError, match="recording_index"):
        write_raven_table(tmp_path / "x.txt", result, 5)
    with pytest.raises(ParameterError, match="low_freq_hz"):
        write_raven_table(tmp_path / "x.txt", result, 0, low_freq_hz=-1)
    with pytest.raises(ParameterError, match="high_freq_hz"):
        write_raven_table(tmp_path / "x.txt", result, 0, low_freq_hz=3000, high_freq_hz=300)
    assert not (tmp_path / "x.txt").exists()


def test_audacity_labels_parse_back(result, tmp_path):
    path = tmp_path / "labels.txt"
    write_audacity_labels(path, result, 0)
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    mine = result.occurrences.file == 0
    assert len(rows) == mine.sum() > 0
    order = np.argsort(result.occurrences.start_s[mine])
    np.testing.assert_allclose([float(r[1]) for r in rows],
                               result.occurrences.end_s[mine][order], atol=1e-6)
    assert [r[2] for r in rows] == [f"unit {u}" for u in result.occurrences.unit[mine][order]]


@pytest.mark.slow
def test_html_report_is_self_contained(result, report):
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    assert "<audio" in text and "data:audio/wav;base64," in text
    assert "data:image/png;base64," in text
    for unit in np.unique(result.occurrences.unit):
        assert f'id="unit-{unit}"' in text
    for heading in ("Summary", "Map of the windows", "Units", "Unit galleries", "Timelines",
                    "Scores against annotations", "Settings and versions", "Timings"):
        assert heading in text
    assert "2-D UMAP" in text and "t-SNE" not in text
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


def _circle(result: DiscoveryResult, n: int) -> UnitMap:
    """A hand-made `UnitMap`: the first n non-silent windows on a circle, in order."""
    index = np.flatnonzero(result.windows.silence < 0.5)[:n]
    angle = np.linspace(0, 2 * np.pi, len(index), endpoint=False)
    return UnitMap(index, np.stack([np.cos(angle), np.sin(angle)], axis=1),
                   "A circle drawn by hand.")


def test_html_map_is_the_runs_own_map(result, tmp_path, monkeypatch):
    import discovery.outputs.report as report_module

    def refuse(*args, **kwargs):
        raise AssertionError("fit_map was called although the result carries its map")

    drawn = []
    unit_map = report_module.plots.unit_map

    def spy(xy, units, **kwargs):
        drawn.append((np.array(xy), np.array(units)))
        return unit_map(xy, units, **kwargs)

    monkeypatch.setattr(report_module, "fit_map", refuse)
    monkeypatch.setattr(report_module.plots, "unit_map", spy)
    circle = _circle(result, 40)
    path = tmp_path / "report.html"
    write_html_report(path, dataclasses.replace(result, map=circle), max_examples=1,
                      max_timelines=0)
    (xy, units), = drawn
    np.testing.assert_array_equal(xy, circle.xy)
    np.testing.assert_array_equal(units, result.unit[circle.index])
    text = path.read_text()
    assert ("Each point is one window, among the windows the clustering was fitted on "
            "(none silent). A circle drawn by hand.") in text
    assert "t-SNE" not in text

    # More points than the report draws: a seeded subsample of the stored map.
    drawn.clear()
    write_html_report(path, dataclasses.replace(result, map=circle), max_examples=1,
                      max_timelines=0, max_map_points=10)
    (xy, units), = drawn
    assert xy.shape == (10, 2)
    assert np.allclose(np.hypot(xy[:, 0], xy[:, 1]), 1)  # still on the circle
    assert "The report draws 10 of its 40 points, at random (seed 0)." in path.read_text()


def test_html_fits_a_map_when_the_result_has_none(report):
    text = report.read_text()
    caption = re.search(r"Each point is one window[^<]*", text).group(0)
    assert ("the windows that are not silent (the run stored no map of its own, so the "
            "report fitted this one)") in caption
    assert ("A 2-D UMAP of the embeddings of all " in caption
            and "with the clustering&#x27;s settings (min_dist 0, 15 neighbours, seed 0): "
                "the same windows and neighbourhoods the units were found in; as with any "
                "UMAP, distances between groups and their sizes are not meaningful."
            in caption)


@pytest.mark.parametrize("change, message", [
    ({"index": np.array([0, 1, 10 ** 9])}, r"`map`: expected `index` to hold window "
                                           r"indices, integers in \[0, \d+\], received int64"),
    ({"index": np.array([0.0, 1.0, 2.0])}, r"`map`: expected `index` .* received float64"),
    ({"xy": np.zeros((3, 3))}, r"`map`: expected `xy` of shape \(3, 2\)"),
    ({"xy": np.full((3, 2), np.nan)}, r"`map`: expected `xy` of shape \(3, 2\), finite"),
])
def test_html_refuses_a_map_that_does_not_fit(result, tmp_path, change, message):
    broken = UnitMap(**{"index": np.array([0, 1, 2]), "xy": np.zeros((3, 2)),
                        "method": "", **change})
    with pytest.raises(ParameterError, match=message):
        write_html_report(tmp_path / "report.html", dataclasses.replace(result, map=broken))
    assert list(tmp_path.iterdir()) == []


def test_html_escapes_file_names(result, tmp_path):
    odd = tmp_path / "a<b>&c.wav"
    shutil.copy(result.recordings[0].path, odd)
    recordings = [dataclasses.replace(r, path=str(odd) if i == 0 else r.path)
                  for i, r in enumerate(result.recordings)]
    path = tmp_path / "report.html"
    write_html_report(path, dataclasses.replace(result, recordings=recordings),
                      title="<units> & more", max_examples=1, max_map_points=50,
                      max_timelines=1)
    text = path.read_text()
    assert "a&lt;b&gt;&amp;c.wav" in text and "a<b>" not in text
    assert "&lt;units&gt; &amp; more" in text


def test_html_with_no_units(result, tmp_path):
    empty = Occurrences(**{k: v[:0] for k, v in vars(result.occurrences).items()})
    # A 60-dimensional embedding, mapped with the run's own reduction (PCA here).
    embedding = result.windows.embedding
    wide = np.hstack([embedding ** p for p in (1, 2, 3)] + [embedding[:, :12]])
    nothing = dataclasses.replace(
        result, unit=np.full(len(result.unit), -1), occurrences=empty, scores=None,
        windows=dataclasses.replace(result.windows, embedding=wide),
        settings={**result.settings, "run": {"reduction": "pca"}})
    path = tmp_path / "report.html"
    write_html_report(path, nothing, max_map_points=50, max_timelines=1)
    text = path.read_text()
    assert "No units were found" in text and "<audio" not in text
    assert "A 2-D PCA of the embeddings of 50 of" in text
    write_units_csv(tmp_path / "units.csv", nothing)
    assert (tmp_path / "units.csv").read_text() == "file,start_s,end_s,unit,confidence\n"
    assert _leftovers(tmp_path) == []


def test_html_with_many_recordings_caps_timelines(result, tmp_path):
    many = dataclasses.replace(result, recordings=result.recordings * 13)
    path = tmp_path / "report.html"
    write_html_report(path, many, max_examples=1, max_map_points=50, max_timelines=3)
    text = path.read_text()
    assert "Timelines are drawn for the first 3 of 26 recordings" in text
    assert text.count('alt="features and units of') == 3


def test_inconsistent_result_is_rejected(result, tmp_path):
    # A result checks itself when made; the report checks its limits and the map.
    with pytest.raises(ParameterError, match="silence"):
        dataclasses.replace(result.windows, silence=result.windows.silence[:-1])
    with pytest.raises(ParameterError, match="max_examples"):
        write_html_report(tmp_path / "report.html", result, max_examples=-1)
    with pytest.raises(ParameterError, match="silence_threshold"):
        write_html_report(tmp_path / "report.html", result, silence_threshold=2)
    with pytest.raises(ParameterError, match="seed"):
        write_html_report(tmp_path / "report.html", result, seed=2**32)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(result, tmp_path, monkeypatch):
    import discovery.outputs.report as report_module

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(report_module, "_summary", fail)
    with pytest.raises(RuntimeError):
        write_html_report(tmp_path / "report.html", result, max_map_points=50)
    assert list(tmp_path.iterdir()) == []


def _info(path, config: FeatureConfig, **changes) -> RecordingInfo:
    extracted = features.extract(path, config)
    return RecordingInfo(path=str(path), duration_s=extracted.duration, feature_config=config,
                         reference_db=extracted.reference_db, **changes)


@pytest.mark.parametrize("clip, config", [
    ("bfsongrepo/gy6or6_baseline_230312_0811.159.wav", FeatureConfig()),  # 32 -> 16 kHz
    ("fsdd/9_jackson_0.wav", FeatureConfig()),  # 8 -> 16 kHz
    ("recordings/rec_01.wav", FEATURE_PRESETS["fbank26"]),  # 8 kHz, 20 ms hops
    ("fsdd/9_jackson_0.wav", FeatureConfig(sample_rate=22050, kind="spectrogram",
                                           fmin=300.0)),  # rates with a small gcd
])
def test_features_read_on_demand_equal_the_whole_files(clip, config):
    from discovery.outputs.report import _recording_features

    path = ROOT / "data" / clip
    whole = features.extract(path, config).values
    info = _info(path, config)
    hop_s = info.frame_hop_s
    n = len(whole)
    for first, last in ((0, 7), (n // 3, n // 3 + 25), (n // 2, n // 2 + 1), (n - 9, n)):
        # Spans that do not start on a frame: the frames starting inside them.
        shown = _recording_features(info, (first - 0.6) * hop_s + 1e-4, (last - 0.5) * hop_s)
        np.testing.assert_allclose(shown, whole[first:last], atol=1e-4, err_msg=f"{first}")
    assert len(_recording_features(info, (n - 2) * hop_s, (n + 50) * hop_s)) == 2


def test_features_read_on_demand_average_channels(tmp_path, finch_song):
    import soundfile

    from discovery.outputs.report import _recording_features

    mono, rate = soundfile.read(finch_song, dtype="float32")
    stereo = tmp_path / "stereo.wav"
    soundfile.write(stereo, np.stack([mono, 0.25 * mono[::-1]], axis=1), rate, subtype="FLOAT")
    config = FeatureConfig()
    whole = features.extract(stereo, config).values
    shown = _recording_features(_info(stereo, config), 2.0, 2.5)
    np.testing.assert_allclose(shown, whole[200:250], atol=1e-4)


def test_features_read_on_demand_zero_digital_silence(tmp_path, digit_clip):
    import soundfile

    from discovery.outputs.report import _recording_features

    samples, rate = soundfile.read(digit_clip, dtype="float32")
    gapped = tmp_path / "gapped.wav"
    soundfile.write(gapped, np.concatenate([samples, np.zeros(rate // 4, np.float32), samples]),
                    rate, subtype="FLOAT")
    config = FeatureConfig()
    whole = features.extract(gapped, config).values
    shown = _recording_features(_info(gapped, config), 0.2, 0.7)
    np.testing.assert_allclose(shown, whole[20:70], atol=1e-4)
    assert not shown[12:30].any()  # inside the gap, 0.3-0.55 s


def test_report_reads_bounded_spans_with_the_audio_reader(tmp_path, monkeypatch,
                                                          annotated_recording):
    """Memory does not grow with the audio: the report keeps no features and reads from
    each file only the spans it draws, with `audio.read_span`: per gallery card, the
    image's frames at the feature rate and the snippet at the file's own rate."""
    import discovery.outputs.report as report_module
    from discovery.frontend import audio

    long_result = build_result([annotated_recording], n_units=4)
    for recording in long_result.recordings:
        assert not any(isinstance(v, np.ndarray) for v in vars(recording).values())
    reads = []
    read_span = audio.read_span

    def counting(path, **kwargs):
        reads.append((kwargs["end_s"] - kwargs["start_s"], kwargs.get("sample_rate")))
        return read_span(path, **kwargs)

    monkeypatch.setattr(audio, "read_span", counting)
    path = tmp_path / "report.html"
    write_html_report(path, long_result, max_examples=2, max_map_points=50,
                      timeline_seconds=10.0)
    n_cards = path.read_text().count('<div class="card"')
    assert n_cards > 0 and len(reads) == 2 * n_cards + 1  # two per card, one for the timeline
    rate = long_result.recordings[0].feature_config.sample_rate
    assert [r for _, r in reads] == [rate, None] * n_cards + [rate]
    longest = max(seconds for seconds, _ in reads)
    assert reads[-1][0] < 10.1 and longest < report_module.GALLERY_MAX_IMAGE_S + 0.1


def test_html_notes_digitally_silent_recordings(result, tmp_path):
    import soundfile

    silent = tmp_path / "nothing.wav"
    soundfile.write(silent, np.zeros(8000, dtype=np.float32), 8000)
    recordings = result.recordings + [RecordingInfo(
        path=str(silent), duration_s=1.0, feature_config=FeatureConfig(),
        reference_db=-100.0, digital_silence=True)]
    path = tmp_path / "report.html"
    write_html_report(path, dataclasses.replace(result, recordings=recordings),
                      max_examples=1, max_map_points=50)
    text = path.read_text()
    assert ("1 recording(s) are digitally silent (no sound at all): nothing.wav; they hold "
            "no units.") in text
    assert text.count('alt="features and units of') == 3
    assert "digitally silent" not in _report_text(result, tmp_path)


def _report_text(result, folder: Path) -> str:
    path = folder / "plain.html"
    write_html_report(path, result, max_examples=1, max_map_points=50, max_timelines=0)
    return path.read_text()


def test_unit_colors_are_stable_and_distinct():
    from discovery.outputs import plots

    assert plots.unit_colors(3) == plots.unit_colors(60)[:3]
    colors = plots.unit_colors(60)
    assert len(set(colors)) == 60 and plots.NOISE_COLOR not in colors


def test_plot_functions_return_their_axes(result, digit_clip):
    from discovery.outputs import plots

    figure, axes = plots.new_figure(6, 6, nrows=5)
    values = features.extract(digit_clip, FeatureConfig()).values
    xy = result.windows.embedding[:, :2]
    assert plots.unit_map(xy, result.unit, ax=axes[0]) is axes[0]
    assert plots.density_map(xy, ax=axes[1]) is axes[1]
    assert plots.spectrogram(values, frame_hop_s=0.01, ax=axes[2]) is axes[2]
    assert plots.unit_timeline([0.1], [0.3], [2], duration_s=1.0, ax=axes[3],
                               labels=([0.1], [0.2], ["a"])) is axes[3]
    assert plots.unit_gallery_example(values[:30], ax=axes[4], unit=1) is axes[4]
    assert plots.figure_to_png_bytes(figure).startswith(b"\x89PNG")


def test_distance_histograms_png(rng):
    from discovery.outputs import plots

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
