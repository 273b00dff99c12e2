"""Segments: find_segments on hand-built energy curves and on the annotated finch song,
segment images, SegmentConfig, the segment-level unit scores, and `discovery run
--level segments` end to end (segments.npz, units.csv and the Raven tables agree).
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.optimize import linear_sum_assignment

from discovery.cli import main
from discovery.config import ClusterConfig, PipelineConfig, SegmentConfig, SilenceConfig
from discovery.errors import ParameterError
from discovery.evaluate import interval_units, unit_scores
from discovery.frontend.annotations import Annotation, find_annotation
from discovery.frontend.recording import analyse
from discovery.frontend.segments import find_segments, segment_images
from discovery.nn.presets import PRESETS, SONG_SEGMENTS, SPEECH_SEGMENTS

ROOT = Path(__file__).resolve().parent.parent
FINCH = ROOT / "data" / "bfsongrepo" / "gy6or6_baseline_230312_0811.159.wav"
MODELS = ROOT / "models"

# Hand-built curves: 100 frames per second (a frame is 10 ms), quiet at -60 dB, loud at
# 0 dB. With the default SilenceConfig (floor: 10th percentile, loud: 99th) the
# thresholds are low = -54 dB and high = -42 dB whenever more than 10 % of the frames
# are quiet and more than 1 % loud.
RATE = 100.0
QUIET, LOUD = -60.0, 0.0


def _energy(n_frames, *spans, level=LOUD):
    energy = np.full(n_frames, QUIET)
    for start, end in spans:
        energy[start:end] = level
    return energy


def _segments(energy, *, frame_rate=RATE, digital_silence=None, **settings):
    return find_segments(energy, frame_rate=frame_rate, silence=SilenceConfig(),
                         segments=SegmentConfig(**settings),
                         digital_silence=digital_silence)


def _check_bounds(bounds, n_frames):
    assert bounds.dtype == np.int64
    assert bounds.ndim == 2 and bounds.shape[1] == 2
    if len(bounds):
        assert np.all(bounds[:, 0] < bounds[:, 1])
        assert bounds[0, 0] >= 0 and bounds[-1, 1] <= n_frames
        assert np.all(bounds[1:, 0] >= bounds[:-1, 1])  # sorted, not overlapping


# -- find_segments on hand-built energy curves ----------------------------------------

def test_a_dip_above_the_low_threshold_is_cut_at_its_minimum():
    energy = _energy(200, (50, 80), (90, 120))
    # Between -54 and -42 dB: never silence, never loud; deepest at frame 84.
    energy[80:90] = [-45, -48, -50, -52, -53, -51, -49, -47, -45, -44]
    bounds = _segments(energy, merge_gap_seconds=0.0)
    np.testing.assert_array_equal(bounds, [[50, 84], [84, 120]])
    # A cut is a gap of 0: any merge gap joins the two parts again.
    np.testing.assert_array_equal(_segments(energy, merge_gap_seconds=0.05), [[50, 120]])


def test_a_short_gap_is_merged_and_a_long_one_is_not():
    energy = _energy(300, (50, 70), (75, 95), (150, 170))
    np.testing.assert_array_equal(_segments(energy, merge_gap_seconds=0.1),
                                  [[50, 95], [150, 170]])
    np.testing.assert_array_equal(_segments(energy, merge_gap_seconds=0.0),
                                  [[50, 70], [75, 95], [150, 170]])


def test_a_sound_shorter_than_min_seconds_is_dropped():
    energy = _energy(300, (50, 52), (100, 103), (150, 200))
    np.testing.assert_array_equal(_segments(energy, min_seconds=0.03),
                                  [[100, 103], [150, 200]])
    np.testing.assert_array_equal(_segments(energy, min_seconds=0.01),
                                  [[50, 52], [100, 103], [150, 200]])


def test_a_long_sound_is_cut_into_pieces_that_tile_it(rng):
    energy = _energy(500, (100, 400))
    energy[100:400] += rng.uniform(-1, 1, 300)  # a 3 s sound
    bounds = _segments(energy, max_seconds=1.0)
    _check_bounds(bounds, 500)
    assert len(bounds) >= 3
    assert bounds[0, 0] == 100 and bounds[-1, 1] == 400
    np.testing.assert_array_equal(bounds[1:, 0], bounds[:-1, 1])  # no gap, no overlap
    assert np.all(np.diff(bounds, axis=1) <= 100)


def test_a_long_sound_is_cut_at_its_deepest_minimum():
    energy = _energy(300, (100, 250))
    energy[180] = -20.0  # still loud; the deepest point in the middle half
    np.testing.assert_array_equal(_segments(energy, max_seconds=1.0),
                                  [[100, 180], [180, 250]])


def test_digital_silence_everywhere_gives_no_segments(rng):
    energy = rng.normal(-30, 20, 400)
    bounds = _segments(energy, digital_silence=np.ones(400, bool))
    assert bounds.shape == (0, 2) and bounds.dtype == np.int64


def test_digital_silence_is_never_in_a_segment():
    energy = _energy(300, (50, 150))
    digital = np.zeros(300, bool)
    digital[100:300] = True
    np.testing.assert_array_equal(_segments(energy, digital_silence=digital),
                                  [[50, 100]])


def test_a_flat_curve_gives_an_empty_int64_table():
    bounds = _segments(np.full(100, -30.0))
    assert bounds.shape == (0, 2) and bounds.dtype == np.int64


@pytest.mark.parametrize("seed", range(5))
def test_bounds_are_sorted_and_within_the_settings(seed):
    rng = np.random.default_rng(seed)
    energy = np.convolve(rng.normal(0, 10, 3000), np.ones(15) / 15, mode="same") * 5
    bounds = _segments(energy, merge_gap_seconds=0.05, min_seconds=0.03, max_seconds=0.5)
    _check_bounds(bounds, 3000)
    assert len(bounds) > 5
    lengths = np.diff(bounds, axis=1)
    assert lengths.min() >= 3 and lengths.max() <= 50


# Frame counts that are not whole: at the birdsong preset's 125 frames per second,
# `min_seconds` 0.02 is 2.5 frames and `max_seconds` 0.3 is 37.5 frames: a segment
# must last 3 frames and may last 37.
def test_min_seconds_between_whole_frames_drops_the_shorter_sound():
    energy = _energy(400, (50, 52), (150, 250))
    np.testing.assert_array_equal(_segments(energy, frame_rate=125.0, min_seconds=0.02),
                                  [[150, 250]])


def test_max_seconds_between_whole_frames_is_never_exceeded():
    energy = _energy(400, (100, 138))  # 38 frames: 0.304 s
    bounds = _segments(energy, frame_rate=125.0, max_seconds=0.3)
    assert np.all(np.diff(bounds, axis=1) / 125.0 <= 0.3)


# -- the hand-checked finch song ------------------------------------------------------

@pytest.fixture(scope="module")
def finch_segments():
    config = PRESETS["birdsong"]
    recording = analyse(FINCH, config)
    features = recording.features
    bounds = find_segments(features.energy_db, frame_rate=config.features.frame_rate,
                           silence=config.silence, segments=config.segments,
                           digital_silence=features.digital_silence)
    hop = config.features.hop_length / config.features.sample_rate
    return bounds, bounds[:, 0] * hop, bounds[:, 1] * hop


def test_finch_segments_match_the_expert_syllables(finch_segments):
    """Measured (8 ms frames): 51 segments for 49 syllables (one syllable in
    three parts, a 16 ms noise blip, and 16 ms slivers that min_seconds now drops);
    48 of 49 syllables (98 %) matched
    one-to-one at IoU >= 0.5; median |onset error| 8.3 ms (segments start about one hop
    early: a frame is dated by its first sample), median |offset error| 2.7 ms. The
    margins below are about twice those."""
    bounds, start_s, end_s = finch_segments
    annotation = find_annotation(FINCH)
    n_syllables = len(annotation.start_s)
    assert n_syllables == 49
    _check_bounds(bounds, bounds[-1, 1])
    inter = np.clip(np.minimum(annotation.end_s[:, None], end_s[None])
                    - np.maximum(annotation.start_s[:, None], start_s[None]), 0, None)
    union = ((annotation.end_s - annotation.start_s)[:, None] + (end_s - start_s)[None]
             - inter)
    iou = inter / union
    syllable, segment = linear_sum_assignment(-iou)
    matched = iou[syllable, segment] >= 0.5
    assert matched.sum() >= 0.9 * n_syllables
    syllable, segment = syllable[matched], segment[matched]
    onset_ms = np.abs(start_s[segment] - annotation.start_s[syllable]) * 1000
    offset_ms = np.abs(end_s[segment] - annotation.end_s[syllable]) * 1000
    assert np.median(onset_ms) < 16.0
    assert np.median(offset_ms) < 8.0
    assert abs(len(bounds) - n_syllables) <= 0.15 * n_syllables


# -- segment images -------------------------------------------------------------------

def test_segment_images_resize_each_segment(rng):
    values = rng.normal(size=(60, 5)).astype(np.float32)
    values[20:40] = 0.25  # a constant segment
    bounds = np.array([[2, 10], [15, 16], [20, 40], [41, 60]], np.int64)
    images = segment_images(values, bounds, 12)
    assert images.shape == (4, 12, 5) and images.dtype == np.float32
    for image, (start, end) in zip(images, bounds):
        np.testing.assert_allclose(image[0], values[start], rtol=1e-6)
        np.testing.assert_allclose(image[-1], values[end - 1], rtol=1e-6)
    np.testing.assert_allclose(images[1], np.broadcast_to(values[15], (12, 5)))
    np.testing.assert_allclose(images[2], 0.25)
    assert segment_images(values, np.zeros((0, 2), np.int64), 12).shape == (0, 12, 5)


# -- settings -------------------------------------------------------------------------

@pytest.mark.parametrize("values,name", [
    ({"merge_gap_seconds": -0.1}, "merge_gap_seconds"),
    ({"merge_gap_seconds": float("nan")}, "merge_gap_seconds"),
    ({"merge_gap_seconds": True}, "merge_gap_seconds"),
    ({"min_seconds": -0.01}, "min_seconds"),
    ({"min_seconds": float("nan")}, "min_seconds"),
    ({"min_seconds": False}, "min_seconds"),
    ({"max_seconds": 0.0}, "max_seconds"),
    ({"max_seconds": -1.0}, "max_seconds"),
    ({"max_seconds": float("nan")}, "max_seconds"),
    ({"max_seconds": float("inf")}, "max_seconds"),
    ({"max_seconds": True}, "max_seconds"),
    ({"max_seconds": "1"}, "max_seconds"),
    ({"min_seconds": 0.5, "max_seconds": 0.2}, "max_seconds"),
])
def test_segment_config_refuses_bad_values(values, name):
    with pytest.raises(ParameterError, match=name) as error:
        SegmentConfig(**values)
    assert isinstance(error.value, ValueError)


def test_segment_section_round_trips_through_json():
    config = PipelineConfig(segments=SegmentConfig(merge_gap_seconds=0.05, min_seconds=0.02,
                                                   max_seconds=0.5))
    again = PipelineConfig.from_json(config.to_json())
    assert again == config and again.segments == config.segments
    assert json.loads(config.to_json())["segments"] == {
        "merge_gap_seconds": 0.05, "min_seconds": 0.02, "max_seconds": 0.5}
    assert PipelineConfig.from_json(PRESETS["birdsong"].to_json()) == PRESETS["birdsong"]


def test_an_old_config_without_segments_loads_the_defaults():
    values = json.loads((MODELS / "birdsong" / "config.json").read_text())
    del values["segments"]
    config = PipelineConfig.from_dict(values)
    assert config.segments == SegmentConfig()
    with pytest.raises(ParameterError, match="gap_seconds"):
        PipelineConfig.from_dict(dict(values, segments={"gap_seconds": 0.1}))


def test_shipped_bundles_save_their_presets_segments():
    for name, expected in (("default", SPEECH_SEGMENTS), ("birdsong", SONG_SEGMENTS)):
        config = PipelineConfig.from_json((MODELS / name / "config.json").read_text())
        assert config.segments == expected == PRESETS[name].segments


def test_cluster_config_level_and_segment_features():
    assert (ClusterConfig().level, ClusterConfig().segment_features) == ("segments", "image")
    with pytest.raises(ParameterError, match="level"):
        ClusterConfig(level="syllables")
    with pytest.raises(ParameterError, match="segment_features"):
        ClusterConfig(segment_features="mean")


# -- segment-level scores -------------------------------------------------------------

def test_interval_units_gives_each_time_its_segment():
    times = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.7])
    found = interval_units([0.1, 0.5], [0.3, 0.6], [2, 0], times)
    np.testing.assert_array_equal(found, [-1, 2, 2, -1, -1, 0, 0, -1, -1])


def test_interval_units_without_segments_is_all_no_unit():
    found = interval_units(np.zeros(0), np.zeros(0), np.zeros(0, int), np.array([0.1, 0.2]))
    np.testing.assert_array_equal(found, [-1, -1])


def _scored(segment_unit, segment_bounds):
    annotation = Annotation(np.array([0.1, 0.5, 0.9]), np.array([0.3, 0.7, 1.1]),
                            np.array(["a", "b", "a"]))
    start_s = np.arange(0.0, 1.1, 0.1)
    bounds = np.asarray(segment_bounds, float)
    return unit_scores([{
        "annotation": annotation, "duration_s": 1.2,
        "start_s": start_s, "end_s": start_s + 0.2,
        "unit": np.full(len(start_s), -1), "silence": np.zeros(len(start_s), bool),
        "segments": {"start_s": bounds[:, 0], "end_s": bounds[:, 1],
                     "unit": np.asarray(segment_unit)}}])


def test_a_perfect_segmentation_scores_one():
    exact = [[0.1, 0.3], [0.5, 0.7], [0.9, 1.1]]
    scores = _scored([4, 1, 4], exact)
    assert scores["nmi"] == pytest.approx(1.0)
    assert scores["coverage"] == pytest.approx(1.0)
    assert scores["purity"] == pytest.approx(1.0)
    assert scores["silence_balanced_accuracy_frames"] == pytest.approx(1.0)
    assert scores["n_units"] == 2 and scores["n_labels"] == 2
    # One syllable in no segment: a third of the sound has no unit.
    partial = _scored([4, 1], exact[:2])
    assert partial["coverage"] == pytest.approx(2 / 3)
    assert partial["nmi"] < 1.0
    assert _scored([0, 0, 0], exact)["nmi"] == pytest.approx(0.0)


# -- `discovery run --level segments` end to end --------------------------------------

def _errors(text):
    return [line for line in text.splitlines() if line.startswith("discovery: error:")]


@pytest.fixture(scope="module")
def segment_run(tmp_path_factory):
    """`discovery run data/bfsongrepo --model birdsong --level segments`, in process
    (the first run pays for TensorFlow and numba; later runs in this file are cheap)."""
    out = tmp_path_factory.mktemp("segment_run") / "out"
    code = main(["run", str(FINCH.parent), "--model", "birdsong", "--level", "segments",
                 "--out", str(out), "--quiet"])
    assert code == 0
    return out


@pytest.mark.slow
def test_each_window_takes_the_unit_of_the_segment_holding_its_centre(segment_run):
    with np.load(segment_run / "segments.npz") as arrays:
        start, end, unit = arrays["start_s"], arrays["end_s"], arrays["unit"]
    with np.load(segment_run / "embeddings.npz") as arrays:
        centres = (arrays["start_s"] + arrays["end_s"]) / 2
        window_unit = arrays["unit"]
    # One recording here, so times alone say which segment holds a window.
    holder = np.searchsorted(start, centres, side="right") - 1
    inside = (holder >= 0) & (centres < end[np.maximum(holder, 0)])
    np.testing.assert_array_equal(window_unit[inside], unit[holder[inside]])
    assert np.all(window_unit[~inside] == -1)
    assert inside.sum() > 0.3 * len(centres)


def _units_csv(out):
    with open(out / "units.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_segments_npz_matches_units_csv(segment_run):
    rows = _units_csv(segment_run)
    with np.load(segment_run / "segments.npz") as arrays:
        segments = {name: arrays[name] for name in arrays.files}
    assert set(segments) == {"file", "start_s", "end_s", "embedding", "unit", "confidence"}
    n = len(segments["file"])
    assert 40 <= n <= 70  # 49 syllables
    assert all(len(values) == n for values in segments.values())
    config = PRESETS["birdsong"]
    assert segments["embedding"].shape[1] == config.input_frames * config.input_features
    keep = segments["unit"] >= 0
    order = np.lexsort((segments["start_s"][keep], segments["file"][keep]))
    assert len(rows) == keep.sum() > 0
    assert [r["file"] for r in rows] == list(segments["file"][keep][order])
    np.testing.assert_allclose([float(r["start_s"]) for r in rows],
                               segments["start_s"][keep][order], atol=1e-6)
    np.testing.assert_allclose([float(r["end_s"]) for r in rows],
                               segments["end_s"][keep][order], atol=1e-6)
    np.testing.assert_array_equal([int(r["unit"]) for r in rows],
                                  segments["unit"][keep][order])
    run = json.loads((segment_run / "run.json").read_text())
    assert run["level"] == "segments" and run["n_segments"] == n


@pytest.mark.slow
def test_units_csv_rows_lie_inside_the_recording_and_do_not_overlap(segment_run):
    rows = _units_csv(segment_run)
    duration = soundfile.info(FINCH).duration
    by_file = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append((float(row["start_s"]),
                                                    float(row["end_s"])))
    assert list(by_file) == [str(FINCH)]
    for spans in by_file.values():
        spans = np.array(spans)
        assert np.all(spans[:, 0] >= 0) and np.all(spans[:, 1] <= duration + 1e-6)
        assert np.all(spans[:, 0] < spans[:, 1])
        assert np.all(spans[1:, 0] >= spans[:-1, 1] - 1e-9)


@pytest.mark.slow
def test_raven_table_holds_the_segments_of_units_csv(segment_run):
    tables = sorted((segment_run / "tables").glob("*.selections.txt"))
    assert [t.name for t in tables] == [FINCH.name + ".selections.txt"]
    with open(tables[0], newline="", encoding="utf-8") as handle:
        selections = list(csv.DictReader(handle, delimiter="\t"))
    rows = [r for r in _units_csv(segment_run) if r["file"] == str(FINCH)]
    assert len(selections) == len(rows) > 0
    assert [int(s["Selection"]) for s in selections] == list(range(1, len(rows) + 1))
    np.testing.assert_allclose([float(s["Begin Time (s)"]) for s in selections],
                               [float(r["start_s"]) for r in rows], atol=1e-3)
    np.testing.assert_allclose([float(s["End Time (s)"]) for s in selections],
                               [float(r["end_s"]) for r in rows], atol=1e-3)
    assert [s["Annotation"] for s in selections] == [f"unit {r['unit']}" for r in rows]


@pytest.mark.slow
def test_window_level_writes_no_segments_npz(tmp_path):
    out = tmp_path / "out"
    code = main(["run", str(FINCH.parent), "--model", "birdsong", "--level", "windows",
                 "--out", str(out), "--quiet", "--method", "kmeans", "--clusters", "3",
                 "--reduction", "pca"])
    assert code == 0
    assert (out / "units.csv").is_file() and (out / "embeddings.npz").is_file()
    assert not (out / "segments.npz").exists()
    assert json.loads((out / "run.json").read_text())["level"] == "windows"


def test_an_unknown_level_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "discovery.cli", "run", str(FINCH),
                             "--out", str(tmp_path / "out"), "--level", "bogus"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--level" in lines[0] and "bogus" in lines[0], lines
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_silent_recording_is_refused_with_a_reason(tmp_path, capsys):
    path = tmp_path / "zeros.wav"
    soundfile.write(path, np.zeros(32000 * 3, np.float32), 32000)
    capsys.readouterr()
    code = main(["run", str(path), "--model", "birdsong", "--out", str(tmp_path / "out"),
                 "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = _errors(err)
    assert len(lines) == 1, err
    assert str(path) in lines[0] and "too little sound" in lines[0]
    assert not (tmp_path / "out" / "units.csv").exists()


@pytest.mark.slow
def test_a_silent_recording_beside_a_song_gets_no_unit(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / FINCH.name).write_bytes(FINCH.read_bytes())
    soundfile.write(folder / "zeros.wav", np.zeros(32000 * 3, np.float32), 32000)
    out = tmp_path / "out"
    assert main(["run", str(folder), "--model", "birdsong", "--out", str(out), "--quiet",
                 "--method", "kmeans", "--clusters", "3", "--reduction", "pca"]) == 0
    assert "zeros.wav" not in (out / "units.csv").read_text()
