"""ABX discriminability of a representation (Schatz et al. 2013; the ZeroSpeech measure).

A triplet (A, B, X): A and X are two tokens of one label (a word, a syllable type), B a
token of another label. The representation errs on the triplet when X is closer to B
than to A (a tie counts half). Distances are DTW over L2-normalised frames (so the
local cost is a monotone function of the cosine distance), divided by the optimal
path's length (`discovery.dtw`, `normalized=True`).

- within speaker: A, B and X share one speaker;
- across speaker: A and B share one speaker, X comes from another, so the
  representation must carry the label across speakers.

Triplets are drawn seeded and at random among every valid one; labels and speakers
come from file names (`evaluate.pairs.labels_from_names`-style regexes).

A token is a whole file, or (`tokens="sound"`) the span of it that holds sound: from
its first segment's start to its last one's end, the energy-based segments `run`
cuts (no label read), the same span for every representation (`sound_span`,
`trim_to_span`), as word tokens cut from running speech hold no silence.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from discovery.config import FeatureConfig, PipelineConfig
from discovery.errors import ParameterError
from discovery.frontend.audio import PathLike

MODES = ("within", "across")
TOKENS = ("whole", "sound")
# Tries per wanted triplet before giving up on finding more (the valid ones are rare).
DRAWS_PER_TRIPLET = 50


def make_triplets(labels: Sequence, speakers: Sequence, *, n_triplets: int, mode: str,
                  seed: int = 0, speaker=None) -> np.ndarray:
    """Draw distinct ABX triplets of token indices, seeded.

    Args:
        labels: (n,) label of each token.
        speakers: (n,) speaker of each token.
        n_triplets: int >= 1. Triplets wanted; fewer come back when fewer exist.
        mode: "within" (A, B, X one speaker) or "across" (A, B one speaker, X another).
        seed: int. Seeds the draw.
        speaker: a speaker whose tokens A and B must be (one held out of training:
            within speaker all three are theirs, across speaker X is another's), or
            None for any. Defaults to None.

    Returns:
        (k, 3) int64 rows (a, b, x), k <= n_triplets, k >= 1.

    Raises:
        ParameterError: an invalid mode or count, or no valid triplet exists.
    """
    if mode not in MODES:
        raise ParameterError(f"Invalid value for `mode`: expected one of {MODES}, received "
                             f"{mode!r}.")
    if isinstance(n_triplets, bool) or not isinstance(n_triplets, (int, np.integer)) \
            or n_triplets < 1:
        raise ParameterError(f"Invalid value for `triplets`: expected an integer >= 1, "
                             f"received {n_triplets!r}.")
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    rng = np.random.default_rng(seed)
    n = len(labels)
    firsts = np.arange(n) if speaker is None else np.flatnonzero(speakers == speaker)
    if not len(firsts):
        raise ParameterError(f"Invalid value for `speaker`: no file of speaker {speaker!r} "
                             f"among the {len(set(speakers.tolist()))} speakers found.")
    found, seen = [], set()
    for _ in range(n_triplets * DRAWS_PER_TRIPLET):
        if len(found) == n_triplets:
            break
        a = int(rng.choice(firsts))
        same_speaker = speakers == speakers[a]
        b_choices = np.flatnonzero(same_speaker & (labels != labels[a]))
        x_speaker = same_speaker if mode == "within" else ~same_speaker
        x_choices = np.flatnonzero(x_speaker & (labels == labels[a]))
        x_choices = x_choices[x_choices != a]
        if not len(b_choices) or not len(x_choices):
            continue
        triplet = (a, int(rng.choice(b_choices)), int(rng.choice(x_choices)))
        if triplet not in seen:
            seen.add(triplet)
            found.append(triplet)
    if not found:
        need = ("two tokens of one label and one of another, all of one speaker"
                if mode == "within" else
                "one label spoken by two speakers, and another label by the first")
        raise ParameterError(f"No {mode}-speaker ABX triplet in these {n} files: it needs "
                             f"{need}.")
    return np.asarray(found, dtype=np.int64)


def mfcc_with_deltas(path: PathLike, config: FeatureConfig, *, n_mfcc: int = 13) -> np.ndarray:
    """The classic anchor: MFCC (librosa) with deltas and delta-deltas, on the frames of
    `config` (sample rate, frame length, hop).

    Returns:
        (n_frames, 3 * n_mfcc) float array.
    """
    import librosa

    from discovery.frontend import audio

    samples = audio.load(path, sample_rate=config.sample_rate)
    mfcc = librosa.feature.mfcc(y=samples, sr=config.sample_rate, n_mfcc=n_mfcc,
                                n_fft=config.fft_size, win_length=config.frame_length,
                                hop_length=config.hop_length)
    n_frames = mfcc.shape[1]
    # librosa's deltas take an odd window of 3 frames up to the clip's length.
    width = min(9, n_frames if n_frames % 2 else n_frames - 1)
    deltas = ([librosa.feature.delta(mfcc, width=width),
               librosa.feature.delta(mfcc, order=2, width=width)] if width >= 3
              else [np.zeros_like(mfcc)] * 2)
    return np.concatenate([mfcc, *deltas]).T


def sound_span(energy_db: np.ndarray, config: PipelineConfig,
               digital_silence: Optional[np.ndarray] = None) -> Tuple[int, int]:
    """[first, last) feature frames of a token's sound: its first segment's start to
    its last one's end (`frontend.segments.find_segments` with `config`'s silence and
    segment settings); the whole token where no segment is found.

    Args:
        energy_db: (n_frames,) the token's frame energies in dB.
        config: the settings the token's features were made with.
        digital_silence: (n_frames,) bool or None, frames that are never sound.

    Returns:
        (first, last) ints, 0 <= first < last <= n_frames (for n_frames >= 1).
    """
    from discovery.frontend.segments import find_segments

    bounds = find_segments(energy_db, frame_rate=config.features.frame_rate,
                           silence=config.silence, segments=config.segments,
                           digital_silence=digital_silence)
    if not len(bounds):
        return 0, len(energy_db)
    return int(bounds[0, 0]), int(bounds[-1, 1])


def trim_to_span(sequence: np.ndarray, span: Tuple[int, int],
                 centres: Optional[np.ndarray] = None) -> np.ndarray:
    """The rows of `sequence` inside `span` (feature frames).

    Args:
        sequence: (n, D) rows: one per feature frame, or one per window.
        span: (first, last) feature frames, as `sound_span` gives.
        centres: (n,) the feature frame each window is centred on, for a sequence of
            windows; None for a sequence of frames (row i is frame i).

    Returns:
        (k, D), k >= 1 for n >= 1: the rows inside the span, or, where none is (a sound
        shorter than the hop between windows), the row centred nearest its middle.
    """
    first, last = span
    at = np.arange(len(sequence)) if centres is None else np.asarray(centres)
    inside = (at >= first) & (at < last)
    if inside.any() or not len(sequence):
        return sequence[inside]
    return sequence[[int(np.argmin(np.abs(at - 0.5 * (first + last))))]]


def abx_error(sequences: List[np.ndarray], triplets: np.ndarray) -> float:
    """Share of triplets where X is closer to B than to A (ties count half).

    Args:
        sequences: list of (n_i, D) arrays, one per token.
        triplets: (k, 3) rows (a, b, x) of indices into `sequences`.

    Returns:
        float in [0, 1].
    """
    from discovery.dtw import unit_frames
    from discovery.evaluate.pairs import pair_distances

    unit = [unit_frames(s) for s in sequences]
    triplets = np.asarray(triplets, dtype=np.int64)
    to_a = pair_distances(unit, triplets[:, [2, 0]], normalized=True)
    to_b = pair_distances(unit, triplets[:, [2, 1]], normalized=True)
    return float(np.mean((to_a > to_b) + 0.5 * (to_a == to_b)))


def abx_scores(representations: Dict[str, List[np.ndarray]], labels: Sequence,
               speakers: Sequence, *, n_triplets: int = 2000, seed: int = 0,
               speaker=None) -> Dict[str, Dict[str, float]]:
    """Within- and across-speaker ABX error of each representation, on the same triplets.

    Args:
        representations: {name: one (n_i, D) sequence per token}, tokens in the same
            order as `labels` and `speakers`.
        n_triplets: int >= 1. Triplets of each mode.
        seed: int. Seeds the triplets.
        speaker: only triplets whose A and B are this speaker's (`make_triplets`), or
            None. Defaults to None.

    Returns:
        {name: {"within": error, "across": error}, "n_triplets": {"within": k, "across":
        k}}.
    """
    triplets = {mode: make_triplets(labels, speakers, n_triplets=n_triplets, mode=mode,
                                    seed=seed, speaker=speaker) for mode in MODES}
    scores = {name: {mode: abx_error(sequences, triplets[mode]) for mode in MODES}
              for name, sequences in representations.items()}
    scores["n_triplets"] = {mode: int(len(triplets[mode])) for mode in MODES}
    return scores
