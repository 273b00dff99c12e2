"""Pair mining: cepstral frames, mutual matches across recordings, aligned frames."""

import json
from pathlib import Path

import numpy as np
import pytest

from discovery.cli import main
from discovery.errors import ParameterError
from discovery.mining import (MinedPairs, _mutual, join, mine_pairs, mining_frames,
                              mining_report, voice_clusters)

DATA = Path(__file__).resolve().parent.parent / "data"
N_MELS = 16


def _word(kind: int, n_frames: int, rng) -> np.ndarray:
    """A made-up word: a formant that rises (kind 0), falls (1) or jumps (2) over time,
    drawn at `n_frames` frames, with a little noise."""
    t = np.linspace(0.0, 1.0, n_frames)[:, None]
    bins = np.arange(N_MELS)[None, :]
    centre = {0: 3 + 9 * t, 1: 12 - 9 * t, 2: np.where(t < 0.5, 3.0, 12.0)}[kind]
    values = np.exp(-0.5 * ((bins - centre) / 1.5) ** 2)
    return np.clip(values + 0.02 * rng.standard_normal(values.shape), 0, 1)


def _recording(kinds, lengths, rng, offset=0.0):
    """Words separated by 10 silent frames, each recording with its own level offset."""
    parts, bounds, at = [np.zeros((10, N_MELS))], [], 10
    for kind, n in zip(kinds, lengths):
        parts += [_word(kind, n, rng) + offset, np.zeros((10, N_MELS))]
        bounds.append((at, at + n))
        at += n + 10
    return np.concatenate(parts).astype(np.float32), np.asarray(bounds)


@pytest.fixture
def recordings(rng):
    """Four recordings of three word kinds at different speeds and levels."""
    made = [_recording([0, 1, 2], [30, 24, 28], rng),
            _recording([2, 0, 1], [22, 36, 30], rng, offset=0.1),
            _recording([1, 2, 0], [34, 30, 26], rng, offset=0.05),
            _recording([0, 2, 1], [28, 26, 22], rng)]
    kinds = [[0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 2, 1]]
    return [m[0] for m in made], [m[1] for m in made], kinds


def test_mining_frames_are_unit_cepstra_blind_to_a_constant_offset(rng):
    values = rng.random((20, N_MELS))
    frames = mining_frames(values)
    assert frames.shape == (20, 12) and frames.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(frames, axis=1), 1.0, atol=1e-5)
    # A fixed channel (one offset per band, the same in every frame) cancels.
    offset = rng.random(N_MELS)
    np.testing.assert_allclose(mining_frames(values + offset), frames, atol=1e-5)


def test_pairs_match_the_same_word_across_recordings_only(recordings):
    features, bounds, kinds = recordings
    mined = mine_pairs(features, bounds, n_candidates=6, mutual_top=2)
    assert len(mined) >= 6
    word = {(r, int(a)): kinds[r][k] for r in range(4) for k, (a, _) in enumerate(bounds[r])}
    for i, j in mined.pairs:
        (ri, ai, _), (rj, aj, _) = mined.segments[i], mined.segments[j]
        assert ri != rj and i < j
        assert word[(ri, ai)] == word[(rj, aj)]
    assert np.all(np.diff(mined.cost) == np.diff(mined.cost))  # finite
    assert np.all((mined.cost >= 0) & (mined.cost <= 2))


def test_saved_pairs_load_back_with_their_recordings(recordings, tmp_path):
    features, bounds, _ = recordings
    mined = mine_pairs(features, bounds, n_candidates=6, mutual_top=2)
    names = ["a.wav", "b.wav", "c.wav", "d.wav"]
    mined.save(tmp_path / "pairs.npz", names)
    loaded, files = MinedPairs.load(tmp_path / "pairs.npz")
    assert files == names and len(loaded) == len(mined) > 0
    for name in ("segments", "pairs", "cost", "frames"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(mined, name))
    np.testing.assert_array_equal(loaded.groups(), mined.groups())


def test_aligned_frames_lie_in_their_segments_and_run_forward(recordings):
    features, bounds, _ = recordings
    mined = mine_pairs(features, bounds, n_candidates=6, mutual_top=2, path_step=1)
    for index, (i, j) in enumerate(mined.pairs):
        rows = mined.frames[mined.frames[:, 0] == index]
        (ri, ai, bi), (rj, aj, bj) = mined.segments[i], mined.segments[j]
        assert np.all(rows[:, 1] == ri) and np.all(rows[:, 3] == rj)
        assert rows[0, 2] == ai and rows[0, 4] == aj  # the path starts at both starts
        assert rows[-1, 2] == bi - 1 and rows[-1, 4] == bj - 1  # and ends at both ends
        assert np.all(np.diff(rows[:, 2]) >= 0) and np.all(np.diff(rows[:, 4]) >= 0)
    halved = mine_pairs(features, bounds, n_candidates=6, mutual_top=2, path_step=2)
    assert len(halved.frames) < len(mined.frames)


def test_mutual_keeps_pairs_each_among_the_others_cheapest():
    candidates = np.array([[0, 1], [0, 2], [1, 0], [1, 2], [2, 1], [2, 0]])
    cost = np.array([0.1, 0.5, 0.1, 0.2, 0.3, 0.4])
    pairs, kept = _mutual(candidates, cost, 1, None)
    # 0's best is 1 and 1's best is 0; 2's best is 1, but 1's best is not 2.
    assert pairs.tolist() == [[0, 1]] and kept.tolist() == [0.1]
    pairs, _ = _mutual(candidates, cost, 2, None)
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 2]]
    pairs, _ = _mutual(candidates, cost, 2, 0.35)
    assert pairs.tolist() == [[0, 1], [1, 2]]


def test_groups_are_the_pair_graphs_connected_components():
    # Segments 0-1-2 are linked through 1; 3-4 on their own; 5 in no pair.
    mined = MinedPairs(segments=np.array([[r, 0, 5] for r in range(6)]),
                       pairs=np.array([[0, 1], [3, 4], [1, 2]]), cost=np.zeros(3),
                       frames=np.zeros((0, 5), np.int64))
    groups = mined.groups()
    assert groups.shape == (3,)
    assert groups[0] == groups[2] != groups[1]


def test_voices_keep_candidates_apart_and_learned_frames_are_matched(recordings):
    features, bounds, kinds = recordings
    voices = np.array([0, 0, 1, 1])
    # The learned frames: each frame's word kind, one-hot, so every match is exact.
    word = {(r, int(a)): kinds[r][k] for r in range(4) for k, (a, _) in enumerate(bounds[r])}
    learned = []
    for r, values in enumerate(features):
        frames = np.zeros((len(values), 3), np.float32)
        for k, (a, b) in enumerate(bounds[r]):
            frames[a:b, kinds[r][k]] = 1.0
        learned.append(frames)
    mined = mine_pairs(features, bounds, n_candidates=6, mutual_top=2, learned=learned,
                       voices=voices)
    assert len(mined) >= 6
    for i, j in mined.pairs:
        (ri, ai, _), (rj, aj, _) = mined.segments[i], mined.segments[j]
        assert voices[ri] != voices[rj]
        assert word[(ri, ai)] == word[(rj, aj)]
        assert mined.cost[(mined.pairs == [i, j]).all(axis=1)][0] < 1e-3
    with pytest.raises(ParameterError, match="voices"):
        mine_pairs(features, bounds, voices=[0, 1])
    # One voice: nothing lies across voices.
    assert len(mine_pairs(features, bounds, voices=[0, 0, 0, 0])) == 0


def test_voice_clusters_find_recordings_of_one_colouring(rng):
    # Six recordings of two "voices": band levels tilted up or down.
    tilt = np.linspace(-1, 1, N_MELS)
    features, bounds = [], []
    for r in range(6):
        values = rng.random((40, N_MELS)) * 0.2 + 0.5 + (0.3 if r % 2 else -0.3) * tilt
        features.append(values.astype(np.float32))
        bounds.append(np.array([[5, 35]]))
    voices = voice_clusters(features, bounds, max_voices=4)
    assert voices.shape == (6,)
    assert len(set(voices[0::2])) == 1 and len(set(voices[1::2])) == 1
    assert voices[0] != voices[1]
    # Too few recordings to cluster: each its own voice.
    assert voice_clusters(features[:2], bounds[:2]).tolist() == [0, 1]


def test_join_keeps_the_base_groups_and_gives_extra_pairs_their_first_segments():
    segments = np.array([[r, 0, 5] for r in range(6)])
    frames = np.array([[0, 0, 1, 1, 1]])
    base = MinedPairs(segments, np.array([[0, 1], [2, 3]]), np.zeros(2),
                      np.concatenate([frames, frames + [1, 2, 0, 2, 0]]))
    extra = MinedPairs(segments, np.array([[1, 2], [4, 5]]), np.ones(2), frames.copy())
    both, groups = join(base, extra)
    assert both.pairs.tolist() == [[0, 1], [2, 3], [1, 2], [4, 5]]
    assert both.frames[:, 0].tolist() == [0, 1, 2]  # the extra frame points at pair 2
    base_groups = base.groups()
    assert groups[:2].tolist() == base_groups.tolist()
    assert groups[2] == base_groups[0]  # segment 1's component, not merged with 2's
    assert groups[3] not in base_groups.tolist()  # segment 4 is in no base pair
    with pytest.raises(ParameterError, match="extra"):
        join(base, MinedPairs(segments[:3], extra.pairs, extra.cost, extra.frames))


def test_one_recording_mines_nothing(recordings):
    features, bounds, _ = recordings
    mined = mine_pairs(features[:1], bounds[:1])
    assert len(mined) == 0 and mined.frames.shape == (0, 5)


@pytest.mark.parametrize("name, value", [("n_candidates", 0), ("mutual_top", 1.5),
                                         ("path_step", True)])
def test_bad_settings_are_named(recordings, name, value):
    features, bounds, _ = recordings
    with pytest.raises(ParameterError, match=name):
        mine_pairs(features, bounds, **{name: value})


def test_report_counts_precision_and_speakers():
    mined = MinedPairs(segments=np.array([[0, 0, 5], [1, 0, 5], [2, 0, 5], [3, 0, 5]]),
                       pairs=np.array([[0, 1], [0, 2], [2, 3]]), cost=np.zeros(3),
                       frames=np.zeros((7, 5), np.int64))
    report = mining_report(mined, labels=["a", "a", "b", "b"],
                           speakers=["x", "y", "x", "x"])
    assert report["n_pairs"] == 3 and report["n_aligned_frames"] == 7
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["across_speaker_share"] == pytest.approx(1 / 3)
    assert report["across_speaker_precision"] == 1.0


def test_mine_command_on_the_sample_recordings(tmp_path, capsys):
    # The sample digits and one long recording of digits: pairs join a clip to a word
    # of the recording (never two words of one recording).
    out = tmp_path / "mined"
    assert main(["mine", str(DATA / "fsdd"), str(DATA / "recordings"), "--out", str(out),
                 "--quiet"]) == 0
    assert "mined" in capsys.readouterr().out
    report = json.loads((out / "mining.json").read_text())
    assert report["n_recordings"] == 11 and report["n_pairs"] >= 1
    assert "precision" not in report  # no labels, nothing to score
    with np.load(out / "mined_pairs.npz") as stored:
        segments, pairs = stored["segments"], stored["pairs"]
    assert len(pairs) == report["n_pairs"]
    assert np.all(segments[pairs[:, 0], 0] != segments[pairs[:, 1], 0])
    # Written once: a second run into the folder is refused.
    assert main(["mine", str(DATA / "fsdd"), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    # As the second round mines: the model's frames, across voices.
    across = tmp_path / "across"
    assert main(["mine", str(DATA / "fsdd"), "--out", str(across), "--across-voices",
                 "--quiet"]) == 0
    assert "voices" in capsys.readouterr().out
    report = json.loads((across / "mining.json").read_text())
    assert report["across_voices"] and report["n_voices"] >= 2


def test_mine_refuses_a_name_without_a_label(tmp_path, capsys):
    assert main(["mine", str(DATA / "fsdd"), str(DATA / "recordings"), "--out",
                 str(tmp_path / "m"), "--label-regex", r"^(\d)_", "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "rec_01.wav" in error
    assert not (tmp_path / "m" / "mining.json").exists()


@pytest.mark.slow
def test_pairs_mined_on_the_shared_digits_are_precise(shared_data, tmp_path, capsys):
    """Labels only score the pairs: most join two tokens of one digit."""
    out = tmp_path / "mined"
    assert main(["mine", str(shared_data / "fsdd"), "--out", str(out), "--label-regex",
                 r"^(\d)_", "--speaker-regex", r"^\d_([a-z]+)_", "--quiet"]) == 0
    report = json.loads((out / "mining.json").read_text())
    # Measured: 5,181 pairs, precision 0.987.
    assert report["n_pairs"] >= 1000 and report["precision"] >= 0.9
