"""ABX discriminability: triplets drawn as defined, errors on hand-built tokens whose
answer is known, and `discovery abx` end to end."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from discovery.cli import main
from discovery.errors import ParameterError
from discovery.evaluate.abx import (
    abx_error,
    abx_scores,
    make_triplets,
    sound_span,
    trim_to_span,
)

ROOT = Path(__file__).resolve().parents[2]
LABELS = np.array(["p", "p", "q", "q", "p", "p", "q", "q"])
SPEAKERS = np.array(["s1", "s1", "s1", "s1", "s2", "s2", "s2", "s2"])


def test_within_speaker_triplets_share_one_speaker():
    triplets = make_triplets(LABELS, SPEAKERS, n_triplets=50, mode="within", seed=3)
    a, b, x = triplets.T
    assert np.all(SPEAKERS[a] == SPEAKERS[b]) and np.all(SPEAKERS[a] == SPEAKERS[x])
    assert np.all(LABELS[a] == LABELS[x]) and np.all(LABELS[a] != LABELS[b])
    assert np.all(a != x)
    assert len({tuple(t) for t in triplets}) == len(triplets)  # distinct
    # 2 speakers x 4 choices of A x 2 of B x 1 of X: 16 exist, all found.
    assert len(triplets) == 16
    np.testing.assert_array_equal(
        triplets, make_triplets(LABELS, SPEAKERS, n_triplets=50, mode="within", seed=3))


def test_across_speaker_triplets_take_x_from_another_speaker():
    triplets = make_triplets(LABELS, SPEAKERS, n_triplets=10, mode="across", seed=0)
    a, b, x = triplets.T
    assert len(triplets) == 10
    assert np.all(SPEAKERS[a] == SPEAKERS[b]) and np.all(SPEAKERS[a] != SPEAKERS[x])
    assert np.all(LABELS[a] == LABELS[x]) and np.all(LABELS[a] != LABELS[b])


def test_a_held_out_speaker_owns_a_and_b():
    within = make_triplets(LABELS, SPEAKERS, n_triplets=50, mode="within", speaker="s2")
    assert len(within) == 8 and np.all(SPEAKERS[within] == "s2")
    across = make_triplets(LABELS, SPEAKERS, n_triplets=50, mode="across", speaker="s2")
    a, b, x = across.T
    assert np.all(SPEAKERS[a] == "s2") and np.all(SPEAKERS[b] == "s2")
    assert np.all(SPEAKERS[x] == "s1")
    with pytest.raises(ParameterError, match="'s3'"):
        make_triplets(LABELS, SPEAKERS, n_triplets=5, mode="within", speaker="s3")


@pytest.mark.parametrize("mode", ["within", "across"])
def test_no_valid_triplet_is_a_clear_error(mode):
    # One token per label and speaker: neither kind of triplet exists.
    with pytest.raises(ParameterError, match=f"No {mode}-speaker ABX triplet"):
        make_triplets(["p", "q"], ["s1", "s2"], n_triplets=5, mode=mode)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_triplet_count_is_checked(bad):
    with pytest.raises(ParameterError, match="triplets"):
        make_triplets(LABELS, SPEAKERS, n_triplets=bad, mode="within")


def _tokens(directions, lengths):
    """A token per label: its frames all point along the label's direction, scaled."""
    rng = np.random.default_rng(0)
    return [direction[None, :] * rng.uniform(0.5, 5.0, (length, 1))
            for direction, length in zip(directions, lengths)]


def test_a_representation_that_separates_the_labels_makes_no_error():
    e1, e2 = np.eye(3)[0], np.eye(3)[1]
    directions = [e1 if label == "p" else e2 for label in LABELS]
    tokens = _tokens(directions, [5, 7, 6, 4, 8, 5, 6, 9])
    triplets = make_triplets(LABELS, SPEAKERS, n_triplets=16, mode="within")
    # Frames are L2-normalised: each token's scale is irrelevant, the direction is all.
    assert abx_error(tokens, triplets) == 0.0
    # X is made a copy of B: the triplet is an error.
    a, b, x = triplets[0]
    swapped = list(tokens)
    swapped[x] = tokens[b]
    assert abx_error(swapped, triplets[:1]) == 1.0


def test_a_representation_that_sees_nothing_scores_chance_by_ties():
    tokens = [np.ones((4, 3))] * len(LABELS)
    triplets = make_triplets(LABELS, SPEAKERS, n_triplets=16, mode="within")
    assert abx_error(tokens, triplets) == 0.5


def test_a_label_code_that_differs_by_speaker_fails_across_speaker_only():
    # Speaker s1 codes p and q along axes 0 and 1, speaker s2 the other way round:
    # within one speaker the labels are apart, across speakers X lands on B.
    axis = {("p", "s1"): 0, ("q", "s1"): 1, ("p", "s2"): 1, ("q", "s2"): 0}
    tokens = _tokens([np.eye(2)[axis[label, speaker]]
                      for label, speaker in zip(LABELS, SPEAKERS)], [5] * len(LABELS))
    scores = abx_scores({"swapped": tokens}, LABELS, SPEAKERS, n_triplets=16)
    assert scores["swapped"] == {"within": 0.0, "across": 1.0}
    assert scores["n_triplets"] == {"within": 16, "across": 16}


def test_the_sound_span_runs_from_the_first_sound_to_the_last(rng):
    from discovery.config import PipelineConfig

    config = PipelineConfig()  # 10 ms frames
    # Silence, a word, a short pause, a word, silence.
    energy = np.concatenate([np.full(50, -80.0), np.full(30, -20.0), np.full(15, -80.0),
                             np.full(25, -25.0), np.full(40, -80.0)])
    energy += rng.normal(0, 0.5, len(energy))
    first, last = sound_span(energy, config)
    assert abs(first - 50) <= 2 and abs(last - 120) <= 2
    # No sound at all: the whole token.
    assert sound_span(energy, config, digital_silence=np.ones(len(energy), bool)) == (
        0, len(energy))


def test_trimming_keeps_the_frames_or_the_windows_inside_the_span():
    frames = np.arange(20, dtype=float)[:, None]
    assert trim_to_span(frames, (5, 9))[:, 0].tolist() == [5, 6, 7, 8]
    windows = np.arange(6, dtype=float)[:, None]  # centred on frames 16, 24, ... 56
    centres = 16 + 8 * np.arange(6)
    assert trim_to_span(windows, (20, 41), centres)[:, 0].tolist() == [1, 2, 3]
    # A sound shorter than the hop between windows keeps the window nearest its middle.
    assert trim_to_span(windows, (26, 30), centres)[:, 0].tolist() == [1]


@pytest.fixture
def tokens_folder(tmp_path):
    """Two labels said twice by each of two speakers, from the sample clips (a
    speaker's second token of a label is a copy of the first), so every kind of
    triplet exists."""
    folder = tmp_path / "tokens"
    folder.mkdir()
    clips = {("0", "george"): "0_george_0.wav", ("4", "george"): "4_george_0.wav",
             ("1", "jackson"): "1_jackson_0.wav", ("5", "jackson"): "5_jackson_0.wav"}
    # "george" says 0 and 4, "jackson" 1 and 5: labelled a and b for both speakers.
    for (digit, speaker), name in clips.items():
        label = "a" if digit in ("0", "1") else "b"
        for token in range(2):
            shutil.copy(ROOT / "data" / "fsdd" / name, folder / f"{label}_{speaker}_{token}.wav")
    return folder


@pytest.mark.slow
def test_the_command_writes_abx_json_and_prints_the_table(tokens_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["abx", str(tokens_folder), "--label-regex", r"^([ab])_",
                 "--speaker-regex", r"^[ab]_([a-z]+)_", "--out", str(out),
                 "--triplets", "20", "--quiet"]) == 0
    printed = capsys.readouterr().out
    for name in ("log-mel", "mfcc", "model"):
        assert name in printed
    written = json.loads((out / "abx.json").read_text())
    assert written["n_files"] == 8 and written["n_speakers"] == 2
    for name in ("log-mel", "mfcc", "model"):
        for mode in ("within", "across"):
            # Within speaker, X is an exact copy of A: no representation may err.
            error = written["results"][name][mode]
            assert 0.0 <= error <= 1.0
        assert written["results"][name]["within"] == 0.0
    # A second run into the same folder is refused without --overwrite.
    assert main(["abx", str(tokens_folder), "--label-regex", r"^([ab])_",
                 "--speaker-regex", r"^[ab]_([a-z]+)_", "--out", str(out), "--quiet"]) == 2


@pytest.mark.slow
def test_sound_tokens_leave_out_the_silence_around_each_token(tokens_folder, tmp_path,
                                                               capsys):
    import soundfile

    # Each speaker's second token of a label is the first with a second of silence
    # (-60 dB noise) before it and after it: the same sound, another token length.
    rng = np.random.default_rng(0)
    for path in sorted(tokens_folder.glob("*_1.wav")):
        samples, rate = soundfile.read(path)
        quiet = 1e-3 * np.abs(samples).max() * rng.standard_normal(rate)
        soundfile.write(path, np.concatenate([quiet, samples, quiet[::-1]]), rate)
    out = tmp_path / "sound"
    assert main(["abx", str(tokens_folder), "--label-regex", r"^([ab])_",
                 "--speaker-regex", r"^[ab]_([a-z]+)_", "--out", str(out),
                 "--triplets", "20", "--tokens", "sound", "--quiet"]) == 0
    assert "tokens trimmed to their sound" in capsys.readouterr().out
    written = json.loads((out / "abx.json").read_text())
    assert written["tokens"] == "sound"
    for name in ("log-mel", "mfcc", "model"):
        # X is A's sound again: trimmed, every representation finds it.
        assert written["results"][name]["within"] == 0.0, name


def test_a_regex_that_does_not_match_exits_2_with_one_line(tokens_folder, tmp_path, capsys):
    assert main(["abx", str(tokens_folder), "--label-regex", r"^(\d)_",
                 "--speaker-regex", r"_([a-z]+)_", "--out", str(tmp_path / "out"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("discovery: error:")]
    assert len(lines) == 1 and "label_regex" in lines[0] and "Traceback" not in err


# -- windows at another hop, for alignment (`Bundle.with_hop`, `embed --hop-seconds`) --

def test_with_hop_changes_the_hop_and_nothing_else():
    from discovery.bundle import Bundle

    bundle = Bundle.load("default")
    assert bundle.with_hop(None) is bundle
    finer = bundle.with_hop(0.02)
    assert finer.model is bundle.model and finer.path == bundle.path
    assert finer.config.windows.hop_seconds == 0.02
    assert finer.config.windows.window_seconds == bundle.config.windows.window_seconds
    assert finer.config.input_frames == bundle.config.input_frames
    with pytest.raises(ParameterError, match="whole number of feature hops"):
        bundle.with_hop(0.015)
    for bad in (0, -0.01, True, "0.02"):
        with pytest.raises(ParameterError, match="hop_seconds"):
            bundle.with_hop(bad)


@pytest.mark.slow
def test_embed_at_a_finer_hop_writes_more_windows(tmp_path, capsys):
    import soundfile

    # The first 6 s of a sample recording: 8x the windows at a hop 8x finer.
    samples, rate = soundfile.read(ROOT / "data" / "recordings" / "rec_01.wav")
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, samples[:6 * rate], rate)
    counts = {}
    for hop in ("0.08", "0.01"):
        out = tmp_path / hop
        assert main(["embed", str(clip), "--out", str(out), "--hop-seconds", hop,
                     "--quiet"]) == 0
        with np.load(out / "embeddings.npz") as arrays:
            counts[hop] = len(arrays["start_s"])
            starts = arrays["start_s"]
        assert np.allclose(np.diff(starts), float(hop), atol=1e-6)
    assert counts["0.01"] > 7 * counts["0.08"]
    assert main(["embed", str(clip), "--out", str(tmp_path / "bad"), "--hop-seconds",
                 "0.015", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "windows.hop_seconds" in err and "Traceback" not in err
