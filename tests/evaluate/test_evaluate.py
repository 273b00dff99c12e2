from pathlib import Path

import numpy as np
import pytest

from discovery import evaluate
from discovery.frontend.annotations import Annotation
from discovery.errors import ParameterError


def _annotation():
    return Annotation(np.array([1.0, 3.0]), np.array([2.0, 4.0]),
                      np.array(["a", "b"], dtype=object))


def _windows(unit_of):
    """Windows of 0.04 s every 0.02 s over 5 s, with units from a function of the centre."""
    start = np.arange(0, 4.961, 0.02)
    end = start + 0.04
    centre = (start + end) / 2
    return start, end, np.array([unit_of(c) for c in centre])


def test_perfect_units_score_one():
    def unit_of(t):
        return 0 if 1.0 <= t < 2.0 else 1 if 3.0 <= t < 4.0 else -1
    start, end, unit = _windows(unit_of)
    scores = evaluate.unit_scores([{"annotation": _annotation(), "duration_s": 5.0,
                                    "start_s": start, "end_s": end, "unit": unit,
                                    "silence": unit == -1}])
    for name in ("nmi", "v_measure", "homogeneity", "completeness", "purity"):
        assert scores[name] > 0.9, name
    assert scores["coverage"] > 0.9
    assert scores["silence_balanced_accuracy_frames"] > 0.9
    assert scores["silence_balanced_accuracy_windows"] > 0.9
    assert "silence_balanced_accuracy" not in scores  # one name per measure
    assert scores["n_labels"] == 2 and scores["n_units"] == 2
    assert scores["n_windows"] == len(unit)


def test_one_unit_for_everything_scores_low():
    start, end, unit = _windows(lambda t: 0)
    scores = evaluate.unit_scores([{"annotation": _annotation(), "duration_s": 5.0,
                                    "start_s": start, "end_s": end, "unit": unit,
                                    "silence": np.zeros(len(unit), bool)}])
    assert scores["nmi"] < 0.05 and scores["completeness"] == pytest.approx(1.0)
    assert scores["purity"] == pytest.approx(0.5, abs=0.02)
    assert scores["silence_balanced_accuracy_frames"] == pytest.approx(0.5)
    assert scores["silence_balanced_accuracy_windows"] == pytest.approx(0.5)


def test_silence_measures_per_window_and_per_frame_differ():
    """Windows called silence while up to a fifth of them is sound: right per window
    (the training rule), wrong on the sound frames at the edges per frame."""
    start = np.arange(0, 4.901, 0.01)  # 0.1 s windows every 10 ms
    end = start + 0.1
    truth = evaluate.window_silence_truth(_annotation(), start, end,
                                          window_sound_fraction=0.2)
    item = {"annotation": _annotation(), "duration_s": 5.0, "start_s": start, "end_s": end,
            "unit": np.where(truth, -1, 0), "silence": truth}
    scores = evaluate.unit_scores([item])
    assert scores["silence_balanced_accuracy_windows"] == pytest.approx(1.0)
    assert scores["silence_balanced_accuracy_frames"] < 0.995
    # The fraction is the model's: at 0 every window touching sound is sound in truth.
    strict = evaluate.unit_scores([item], window_sound_fraction=0.0)
    assert strict["silence_balanced_accuracy_windows"] < 1.0


def test_window_silence_truth_counts_padding_as_silence():
    annotation = Annotation(np.array([0.0]), np.array([1.0]), np.array(["a"], dtype=object))
    start, end = np.array([0.5, 0.9]), np.array([1.0, 1.0])
    np.testing.assert_array_equal(evaluate.window_silence_truth(
        annotation, start, end, window_sound_fraction=0.2), [False, False])
    # The second window is 90 % padding: 10 % sound, so silence.
    np.testing.assert_array_equal(evaluate.window_silence_truth(
        annotation, start, end, window_sound_fraction=0.2, valid_fraction=[1.0, 0.1]),
        [False, True])


def test_frame_units_picks_the_nearest_window():
    units = evaluate.frame_units(np.array([0.0, 1.0]), np.array([1.0, 2.0]),
                                 np.array([3, 7]), np.array([0.1, 0.9, 1.1, 1.9]))
    np.testing.assert_array_equal(units, [3, 3, 7, 7])


def test_pairs_are_balanced_seeded_and_correct():
    labels = np.repeat(np.arange(5), 10)
    duplicates, non_duplicates = evaluate.make_pairs(labels, n_pairs=100, seed=1)
    assert len(duplicates) == len(non_duplicates) == 100
    assert np.all(labels[duplicates[:, 0]] == labels[duplicates[:, 1]])
    assert np.all(labels[non_duplicates[:, 0]] != labels[non_duplicates[:, 1]])
    assert len({tuple(p) for p in duplicates}) == 100
    again = evaluate.make_pairs(labels, n_pairs=100, seed=1)
    assert isinstance(again, evaluate.Pairs)
    np.testing.assert_array_equal(duplicates, again.duplicates)
    np.testing.assert_array_equal(non_duplicates, again.non_duplicates)


def test_separation_of_distinct_and_equal_distributions(rng):
    near = rng.normal(1.0, 0.2, 1000)
    far = rng.normal(3.0, 0.2, 1000)
    good = evaluate.separation(near, far)
    assert good["roc_auc"] > 0.99 and good["equal_error_rate"] < 0.01
    assert good["kl"] > 5 and good["bhattacharyya"] > 2
    same = evaluate.separation(near, rng.normal(1.0, 0.2, 1000))
    assert 0.45 < same["roc_auc"] < 0.55 and same["kl"] < 0.5


def test_pair_distances_use_dtw(rng):
    sequences = [rng.random((n, 3)).astype(np.float32) for n in (5, 9, 7)]
    pairs = np.array([[0, 1], [1, 2], [0, 0]])
    distances = evaluate.pair_distances(sequences, pairs)
    assert distances[2] == pytest.approx(0.0, abs=1e-5)
    from discovery.dtw import dtw_distance
    expected = dtw_distance(sequences[0][None], sequences[1][None])
    assert distances[0] == pytest.approx(float(np.asarray(expected)[0]), rel=1e-5)


def test_labels_from_names():
    names = ["a/3_george_1.wav", "7_lucas_0.wav", "3_lucas_2.wav"]
    labels = evaluate.labels_from_names(names, r"^(\d)_")
    np.testing.assert_array_equal(labels, ["3", "7", "3"])
    with pytest.raises(ParameterError, match="does not match"):
        evaluate.labels_from_names(["x.wav"], r"^(\d)_")
    with pytest.raises(ParameterError, match="label_regex"):
        evaluate.labels_from_names(["x.wav"], r"(")


def test_labels_without_duplicates_fail_in_one_line():
    """One take per digit: no duplicate pair exists (numpy's `zero-size array` before)."""
    DATA = Path(__file__).resolve().parents[2] / "data"
    paths = sorted((DATA / "fsdd").glob("*.wav"))
    message = (r"no two files share a label \(10 files, 10 labels\): duplicate pairs "
               r"need at least two files of one label")
    with pytest.raises(ParameterError, match=message) as raised:
        evaluate.labels_from_names(paths, r"^(\d)_")
    assert "label_regex" in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(ParameterError, match="two labels"):
        evaluate.labels_from_names(paths, r"_0\.wav$")


def test_invalid_pair_requests():
    with pytest.raises(ParameterError, match="n_pairs"):
        evaluate.make_pairs(np.arange(4), n_pairs=0)
    with pytest.raises(ParameterError, match="two labels"):
        evaluate.make_pairs(np.zeros(4), n_pairs=3)
    with pytest.raises(ParameterError, match="no two items share a label"):
        evaluate.make_pairs(np.arange(4), n_pairs=3)


@pytest.mark.parametrize("changes, name", [
    ({"labels": np.arange(4)}, "no two recordings share a label"),
    ({"labels": np.array([0, 0, 1])}, "one per recording"),
    ({"n_pairs": 0}, "n_pairs"),
    ({"prefix_frames": -1}, "prefix_frames"),
    ({"prefix_frames": 0}, "prefix_frames"),
    ({"prefix_frames": 2.5}, "prefix_frames"),
    ({"prefix_frames": True}, "prefix_frames"),
])
def test_siamese_evaluation_checks_before_any_work(changes, name):
    # Placeholders, not recordings: a check that came late would fail on them instead.
    arguments = {"labels": np.array([0, 0, 1, 1]), "n_pairs": 3, "prefix_frames": None,
                 **changes}
    with pytest.raises(ParameterError, match=name):
        evaluate.siamese_evaluation([object()] * 4, arguments.pop("labels"), **arguments)


def test_pair_distances_check_prefix_frames(rng):
    sequences = [rng.random((5, 3)).astype(np.float32) for _ in range(2)]
    with pytest.raises(ParameterError, match="prefix_frames"):
        evaluate.pair_distances(sequences, np.array([[0, 1]]), prefix_frames=-1)


@pytest.mark.slow
def test_pairs_command_writes_json_and_png(tmp_path):
    """End to end on the sample clips, labelled by speaker: 3 + 3 + 1 + 1 = 8 duplicate
    pairs exist (george and jackson have three digits each, lucas and nicolas two)."""
    import json

    from discovery.cli import main

    DATA = Path(__file__).resolve().parents[2] / "data"

    out = tmp_path / "pairs"
    code = main(["pairs", str(DATA / "fsdd"), "--label-regex", r"^\d_([a-z]+)_",
                 "--pairs", "8", "--prefix-frames", "20", "--out", str(out), "--quiet"])
    assert code == 0
    written = json.loads((out / "pairs.json").read_text())
    assert written["n_files"] == 10 and written["n_labels"] == 4
    for representation in ("raw", "latent"):
        modes = written["results"][representation]
        assert set(modes) == {"normalized", "cosine", "closed", "open_end", "prefix"}
        for scores in modes.values():
            assert scores["n_duplicate"] == 8 and scores["n_non_duplicate"] == 8
            assert 0.0 <= scores["roc_auc"] <= 1.0
        # A path-length normalised distance is at most the plain sum.
        assert modes["normalized"]["duplicate_mean"] < modes["closed"]["duplicate_mean"]
    assert (out / "pairs.png").read_bytes().startswith(b"\x89PNG")
    assert not list(out.glob("*.tmp"))


def test_pairs_command_rejects_a_regex_that_does_not_match(tmp_path, capsys):
    from discovery.cli import main

    DATA = Path(__file__).resolve().parents[2] / "data"

    code = main(["pairs", str(DATA / "fsdd"), "--label-regex", r"^speaker(\d)",
                 "--out", str(tmp_path / "p"), "--quiet"])
    assert code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "label_regex" in message and "0_george_0.wav" in message


def test_pairs_command_on_one_take_per_digit_fails_in_one_line(tmp_path, capsys):
    from discovery.cli import main

    DATA = Path(__file__).resolve().parents[2] / "data"
    code = main(["pairs", str(DATA / "fsdd"), "--label-regex", r"^(\d)_",
                 "--out", str(tmp_path / "p"), "--quiet"])
    assert code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no two files share a label (10 files, 10 labels)" in message
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_pairs_command_prints_every_mode_headline_first(tmp_path, capsys):
    from discovery.cli import main

    DATA = Path(__file__).resolve().parents[2] / "data"
    assert main(["pairs", str(DATA / "fsdd"), "--label-regex", r"^\d_([a-z]+)_",
                 "--pairs", "8", "--prefix-frames", "20", "--out", str(tmp_path)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "ROC-AUC" in line]
    assert len(lines) == 10  # raw and latent x normalized, cosine, closed, open_end, prefix
    assert lines[0].split()[:2] == ["raw", "normalized"]
    assert lines[5].split()[:2] == ["latent", "normalized"]


@pytest.mark.slow
def test_silence_scores_need_an_annotation_and_score_each_recording():
    from discovery import bundle

    DATA = Path(__file__).resolve().parents[2] / "data"
    folder = bundle.default_model_dir()
    shipped = {"model": bundle.load_model(folder), "config": bundle.load_config(folder)}
    scores = evaluate.silence_scores([DATA / "recordings" / "rec_01.wav"], **shipped)
    assert set(scores) == {"rec_01.wav", "all"} and scores["all"] == scores["rec_01.wav"]
    assert 0.5 < scores["all"] <= 1.0
    with pytest.raises(ParameterError, match="0_george_0.wav: no annotation"):
        evaluate.silence_scores([DATA / "fsdd" / "0_george_0.wav"], **shipped)


def _zero_padded(sequences):
    """Plain NumPy reference: sequences zero-padded at the end to the longest."""
    lengths = np.array([len(s) for s in sequences])
    out = np.zeros((len(sequences), lengths.max(), sequences[0].shape[1]), np.float32)
    for k, sequence in enumerate(sequences):
        out[k, :len(sequence)] = sequence
    return out, lengths


def test_pad_equals_a_plain_zero_padding(rng, digit_clip):
    """`pairs._pad` (Keras's `pad_sequences`, post, zeros, float32) on random and real
    sequences."""
    from discovery.config import FeatureConfig
    from discovery.frontend import features
    from discovery.evaluate import pairs

    real = features.extract(digit_clip, FeatureConfig(sample_rate=8000)).values
    for sequences in ([rng.standard_normal((n, 3)) for n in (5, 1, 9, 7)],
                      [real, real[:10], real[3:40].astype(np.float64)]):
        padded, lengths = pairs._pad(sequences)
        expected, expected_lengths = _zero_padded(sequences)
        assert padded.dtype == np.float32
        np.testing.assert_array_equal(padded, expected)
        np.testing.assert_array_equal(lengths, expected_lengths)


def _seed_kl(p_values, q_values, bins=100, smoothing=1e-5):
    """The seed notebook's estimate written out: KL of smoothed, shared-bin histograms."""
    low = min(p_values.min(), q_values.min())
    high = max(p_values.max(), q_values.max())
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    p = np.histogram(p_values, edges)[0] + smoothing
    q = np.histogram(q_values, edges)[0] + smoothing
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


@pytest.mark.parametrize("shift", [0.0, 0.3, 2.0, 50.0])
def test_histogram_kl_equals_the_seed_estimate(rng, shift):
    """`histogram_kl` (scipy's `entropy` of the smoothed histograms) on random samples,
    overlapping, apart, and all equal."""
    p_values = rng.normal(1.0, 0.5, 700)
    q_values = rng.normal(1.0 + shift, 0.8, 300)
    assert evaluate.histogram_kl(p_values, q_values) == pytest.approx(
        _seed_kl(p_values, q_values), rel=1e-10, abs=1e-12)
    assert evaluate.histogram_kl(q_values, p_values, bins=7) == pytest.approx(
        _seed_kl(q_values, p_values, bins=7), rel=1e-10, abs=1e-12)
    constant = np.full(10, 3.0)
    assert evaluate.histogram_kl(constant, constant) == pytest.approx(0.0, abs=1e-12)


def test_silence_measures_are_nan_when_the_truth_holds_one_class():
    """Annotated sound from end to end: no silence in truth, so neither balanced
    accuracy is defined (NaN, as `unit_scores` documents), whatever the calls."""
    whole = Annotation(np.array([0.0]), np.array([5.0]), np.array(["a"], dtype=object))
    start, end, unit = _windows(lambda t: 0)
    for said in (np.zeros(len(unit), bool), np.arange(len(unit)) % 2 == 0):
        scores = evaluate.unit_scores([{"annotation": whole, "duration_s": 5.0,
                                        "start_s": start, "end_s": end, "unit": unit,
                                        "silence": said}])
        assert np.isnan(scores["silence_balanced_accuracy_windows"])
        assert np.isnan(scores["silence_balanced_accuracy_frames"])
        assert scores["coverage"] == 1.0


def test_siamese_evaluation_names_its_results(rng):
    from types import SimpleNamespace

    def item(n_frames):
        frames = rng.random((n_frames, 3)).astype(np.float32)
        windows = SimpleNamespace(start_frame=np.arange(0, n_frames, 2))
        recording = SimpleNamespace(features=SimpleNamespace(values=frames),
                                    windows=windows)
        return SimpleNamespace(recording=recording, embedding=frames[::2, :2])

    recordings = [item(n) for n in (9, 12, 10, 11)]
    evaluation = evaluate.siamese_evaluation(recordings, np.array([0, 0, 1, 1]),
                                             n_pairs=2)
    assert isinstance(evaluation, evaluate.SiameseEvaluation)
    results, distances = evaluation
    assert set(results) == set(distances) == {"raw", "latent"}
    assert set(results["raw"]) == {"normalized", "cosine", "closed", "open_end"}
    duplicate, non_duplicate = distances["raw"]["closed"]
    assert len(duplicate) == 2 and len(non_duplicate) == 2
    assert results["raw"]["closed"]["duplicate_mean"] == pytest.approx(duplicate.mean())
    # The cosine mode compares directions only: scaling each frame changes nothing.
    for recording in recordings:
        recording.recording.features.values *= rng.uniform(1, 5, (len(
            recording.recording.features.values), 1)).astype(np.float32)
    scaled = evaluate.siamese_evaluation(recordings, np.array([0, 0, 1, 1]), n_pairs=2)
    for before, after in zip(distances["raw"]["cosine"], scaled.distances["raw"]["cosine"]):
        np.testing.assert_allclose(before, after, rtol=1e-4, atol=1e-5)
    assert not np.allclose(distances["raw"]["normalized"][0],
                           scaled.distances["raw"]["normalized"][0])
