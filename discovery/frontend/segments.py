"""Frame-level sound -> segments (syllables, calls, words), and their fixed-size images.

    band-limited energy (dB) ──> hysteresis: runs above the low threshold that reach
    the high one ──> cut each run at the energy minimum between its loud parts
    ──> join gaps < merge_gap ──> drop < min_seconds ──> cut > max_seconds at minima

The thresholds are the silence detector's (`silence.thresholds`: set between each
recording's own noise floor and loud level), so the segments' union is the frame-level
sound decision, at the feature frame rate. Cutting at the minimum between loud parts
is what separates syllables whose gap never falls back to the noise floor (songbird
syllables 10 ms apart): the gap between two loud parts is where one sound ends and the
next begins, and a run's soft onset and tail stay with their own loud part. Speech
words join their pieces back with `merge_gap_seconds` (a stop closure is a short gap).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy import ndimage

from discovery.config import SegmentConfig, SilenceConfig
from discovery.frontend.silence import thresholds

FRAME_TOLERANCE = 1e-6  # frames: float error in seconds * frame rate


def find_segments(energy_db: np.ndarray, *, frame_rate: float, silence: SilenceConfig,
                  segments: SegmentConfig,
                  digital_silence: Optional[np.ndarray] = None) -> np.ndarray:
    """The segments of one recording, in feature frames.

    Args:
        energy_db: (n_frames,) band-limited frame energy in dB.
        frame_rate: float > 0. Frames per second.
        silence: the thresholds (`low_threshold`, `high_threshold`, percentiles).
        segments: merge gap, shortest and longest segment, in seconds.
        digital_silence: (n_frames,) bool, frames that are never sound and take no
            part in the thresholds. Defaults to None: none.

    Returns:
        (n_segments, 2) int64 `[start, end)` frame bounds, sorted, not overlapping.
    """
    energy_db = np.asarray(energy_db, dtype=np.float64)
    audible = (np.ones(energy_db.shape, bool) if digital_silence is None
               else ~np.asarray(digital_silence, dtype=bool))
    if not audible.any():
        return np.zeros((0, 2), np.int64)
    low, high = thresholds(energy_db[audible], silence)
    above_low = (energy_db > low) & audible
    loud = (energy_db > high) & audible
    bounds = []
    runs, _ = ndimage.label(above_low)
    for run in ndimage.find_objects(runs):
        start, end = run[0].start, run[0].stop
        cores = ndimage.find_objects(ndimage.label(loud[start:end])[0])
        if not cores:
            continue  # never loud: noise
        cuts = [start]
        for left, right in zip(cores[:-1], cores[1:]):
            gap_start, gap_end = start + left[0].stop, start + right[0].start
            cuts.append(gap_start + int(np.argmin(energy_db[gap_start:gap_end])))
        cuts.append(end)
        bounds += zip(cuts[:-1], cuts[1:])
    # Frame counts from seconds: a segment is kept when it lasts at least min_seconds
    # and cut when longer than max_seconds (the tolerance absorbs 0.1 * 100 = 10.0000001).
    bounds = _merge(bounds, segments.merge_gap_seconds * frame_rate - FRAME_TOLERANCE)
    shortest = max(1, math.ceil(segments.min_seconds * frame_rate - FRAME_TOLERANCE))
    bounds = [(a, b) for a, b in bounds if b - a >= shortest]
    longest = max(1, math.floor(segments.max_seconds * frame_rate + FRAME_TOLERANCE))
    bounds = [piece for a, b in bounds for piece in _split(energy_db, a, b, longest)]
    return np.asarray(bounds, dtype=np.int64).reshape(-1, 2)


def _merge(bounds: list, gap_frames: float) -> list:
    """Join segments whose gap is shorter than `gap_frames` (a cut is a gap of 0)."""
    merged = []
    for start, end in bounds:
        if merged and start - merged[-1][1] < gap_frames:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _split(energy_db: np.ndarray, start: int, end: int, longest: int) -> list:
    """Cut [start, end) at its deepest energy minimum, away from its edges, until no
    piece is longer than `longest` frames."""
    pieces, todo = [], [(start, end)]
    while todo:
        a, b = todo.pop()
        if b - a <= longest:
            pieces.append((a, b))
            continue
        margin = (b - a) // 4  # cut in the middle half: no slivers
        cut = a + margin + int(np.argmin(energy_db[a + margin:b - margin]))
        todo += [(cut, b), (a, cut)]
    return pieces


def segment_images(values: np.ndarray, bounds: np.ndarray, n_frames: int) -> np.ndarray:
    """Each segment's features resized to `n_frames` frames (linear interpolation in
    time): the fixed-size spectrogram image of AVGN and AVA.

    Args:
        values: (n_frames_total, F) a recording's features.
        bounds: (n, 2) `[start, end)` frame bounds (`find_segments`).
        n_frames: int >= 1. Frames per image.

    Returns:
        (n, n_frames, F) float32.
    """
    images = np.zeros((len(bounds), n_frames, values.shape[1]), np.float32)
    for row, (start, end) in enumerate(bounds):
        position = np.linspace(start, end - 1, n_frames)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, end - 1)
        weight = (position - below)[:, np.newaxis]
        images[row] = values[below] * (1 - weight) + values[above] * weight
    return images
