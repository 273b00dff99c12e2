"""Energy-based silence targets, adaptive per recording.

A frame is sound when its band-limited energy (dB) rises above thresholds set between
the recording's own noise floor and loud level, so recordings of any level, and with any
steady background, get sensible targets. Hysteresis, as in classic onset detectors: a
sound starts where the energy crosses the high threshold and extends on both sides while
it stays above the low one, which keeps soft onsets and tails without letting noise
through. Gaps shorter than `min_silence_seconds` are closed and sounds shorter than
`min_sound_seconds` removed. A window is a silence target when at most
`window_sound_fraction` of it is sound.

Digital silence (frames below an absolute level, see `features.DIGITAL_SILENCE_DB`) is
never sound, and takes no part in the floor and loud levels: a file of zeros has no
sound, and zeros padding a recording do not move its thresholds.

These targets train the model's silence detector where no annotation says otherwise.
`scripts/score_silence.py` scores them against annotated recordings.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from scipy import ndimage

from discovery.config import SilenceConfig


class Thresholds(NamedTuple):
    """The hysteresis thresholds of one recording; unpacks as `low_db, high_db`.

    Attributes:
        low_db: a sound extends while its energy stays above this, in dB.
        high_db: a sound starts where its energy rises above this, in dB.
    """

    low_db: float
    high_db: float


def thresholds(energy_db: np.ndarray, config: SilenceConfig) -> Thresholds:
    """The low and high dB thresholds of one recording, between its floor and loud level.

    Args:
        energy_db: (n_frames,) band-limited frame energy in dB, digital silence left
            out.
        config: percentiles of the floor and loud levels, and where between them the
            thresholds sit.

    Returns:
        `Thresholds(low_db, high_db)`: `floor + threshold * (loud - floor)` for the
        config's `low_threshold` and `high_threshold`.
    """
    floor = np.percentile(energy_db, config.floor_percentile)
    loud = np.percentile(energy_db, config.loud_percentile)
    span = loud - floor
    return Thresholds(float(floor + config.low_threshold * span),
                      float(floor + config.high_threshold * span))


def frame_sound(energy_db: np.ndarray, *, frame_rate: float, config: SilenceConfig,
                digital_silence: Optional[np.ndarray] = None) -> np.ndarray:
    """Which frames hold sound.

    Args:
        energy_db: (n_frames,) band-limited frame energy in dB.
        frame_rate: float > 0. Frames per second.
        config: thresholds and minimum durations.
        digital_silence: (n_frames,) bool, frames that are never sound and are left
            out of the thresholds (`features.Features.digital_silence`). Defaults to
            None: none.

    Returns:
        (n_frames,) bool, True for sound.
    """
    energy_db = np.asarray(energy_db, dtype=np.float64)
    if digital_silence is None:
        audible = np.ones(energy_db.shape, dtype=bool)
    else:
        audible = ~np.asarray(digital_silence, dtype=bool)
    if not audible.any():
        return np.zeros(energy_db.shape, dtype=bool)
    low, high = thresholds(energy_db[audible], config)
    segments, n_segments = ndimage.label((energy_db > low) & audible)
    keep = np.zeros(n_segments + 1, dtype=bool)
    keep[np.unique(segments[energy_db > high])] = True
    keep[0] = False
    sound = keep[segments]
    gap = int(round(config.min_silence_seconds * frame_rate))
    if gap > 1:
        # Pad so that closing does not erode sound touching the ends.
        padded = np.pad(sound, gap, mode="edge")
        sound = ndimage.binary_closing(padded, structure=np.ones(gap, bool))[gap:-gap]
        # Closing must not bridge digital silence.
        sound &= audible
    shortest = int(round(config.min_sound_seconds * frame_rate))
    if shortest > 1:
        sound = ndimage.binary_opening(sound, structure=np.ones(shortest, dtype=bool))
    return sound


def window_sound_fraction(sound: np.ndarray, start_frame: np.ndarray, n_valid: np.ndarray,
                          *, window_length: int) -> np.ndarray:
    """Fraction of each window's frames that are sound; padding counts as silence.

    Args:
        sound: (n_frames,) bool per frame (`frame_sound`).
        start_frame: (n_windows,) first frame of each window.
        n_valid: (n_windows,) real (unpadded) frames in each window.
        window_length: int >= 1. Frames per window, padding included.

    Returns:
        (n_windows,) float32 in [0, 1].
    """
    cumulative = np.concatenate([[0], np.cumsum(sound, dtype=np.int64)])
    begin = np.minimum(start_frame, len(sound))
    end = np.minimum(start_frame + n_valid, len(sound))
    return ((cumulative[end] - cumulative[begin]) / window_length).astype(np.float32)


def window_digital_silence(digital_silence: np.ndarray, start_frame: np.ndarray,
                           n_valid: np.ndarray) -> np.ndarray:
    """Which windows hold nothing but digital silence.

    Args:
        digital_silence: (n_frames,) bool per frame (`features.Features.digital_silence`).
        start_frame: (n_windows,) first frame of each window.
        n_valid: (n_windows,) real (unpadded) frames in each window.

    Returns:
        (n_windows,) bool, True when every real frame of the window is digital silence.
    """
    cumulative = np.concatenate([[0], np.cumsum(digital_silence, dtype=np.int64)])
    begin = np.minimum(start_frame, len(digital_silence))
    end = np.minimum(start_frame + n_valid, len(digital_silence))
    return (cumulative[end] - cumulative[begin]) == end - begin


def window_silence(fraction: np.ndarray, config: SilenceConfig) -> np.ndarray:
    """Silence targets from the fraction of sound per window.

    Args:
        fraction: (n_windows,) share of each window that is sound
            (`window_sound_fraction`).
        config: `window_sound_fraction`, the most sound a silent window holds.

    Returns:
        (n_windows,) bool, True for silence.
    """
    return np.asarray(fraction) <= config.window_sound_fraction
