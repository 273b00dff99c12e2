"""Features -> sliding windows `(n_windows, window_length, n_features)` with exact times.

Window `k` starts at frame `k * hop_length`. Every frame lies in some window: the last
window is padded with zeros (silence after normalisation) when the frames run out, and a
recording shorter than one window gives one padded window. `n_valid` says how many of
a window's frames are real, so padding is flagged, never silent.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from discovery.config import FeatureConfig, WindowConfig
from discovery.errors import ParameterError


@dataclasses.dataclass
class Windows:
    """Windows of one recording.

    Attributes:
        values: (n_windows, window_length, n_features) float32. A read-only view into
            the features where no padding was needed.
        start_frame: (n_windows,) index of each window's first frame.
        n_valid: (n_windows,) real (unpadded) frames in each window.
        start_s: (n_windows,) start of the first frame, in seconds.
        end_s: (n_windows,) end of the last real frame, in seconds (at most the
            recording's duration).
    """

    values: np.ndarray
    start_frame: np.ndarray
    n_valid: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray

    @property
    def padded(self) -> np.ndarray:
        """(n_windows,) bool: the window holds padding frames."""
        return self.n_valid < self.values.shape[1]

    def __len__(self) -> int:
        return len(self.values)


class FramedWindows(NamedTuple):
    """What `frame_windows` returns; unpacks as `windows, start_frame, n_valid`.

    Attributes:
        windows: (n_windows, window_length, n_features), a read-only view into the
            features where no padding was needed.
        start_frame: (n_windows,) int64 index of each window's first frame.
        n_valid: (n_windows,) int64 real (unpadded) frames in each window.
    """

    windows: np.ndarray
    start_frame: np.ndarray
    n_valid: np.ndarray


def window_starts(n_frames: int, *, window_length: int, hop_length: int) -> np.ndarray:
    """First frame of every window that covers `n_frames` frames (at least one window).

    Args:
        n_frames: int >= 0. Frames of the recording.
        window_length: int >= 1. Frames per window.
        hop_length: int >= 1. Frames between window starts.

    Returns:
        (n_windows,) int64 start frames, `k * hop_length`; `[0]` when `n_frames` is at
        most one window.

    Raises:
        ParameterError: an argument is not an integer in its range.
    """
    for name, value in (("n_frames", n_frames), ("window_length", window_length),
                        ("hop_length", hop_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (
                0 if name == "n_frames" else 1):
            raise ParameterError(f"Invalid value for `{name}`: expected an integer >= "
                                 f"{0 if name == 'n_frames' else 1}, received {value!r}.")
    if n_frames <= window_length:
        return np.zeros(1, dtype=np.int64)
    # Enough windows that the last one reaches the last frame.
    n_windows = 1 + int(np.ceil((n_frames - window_length) / hop_length))
    return np.arange(n_windows, dtype=np.int64) * hop_length


def frame_windows(features: np.ndarray, *, window_length: int,
                  hop_length: int) -> FramedWindows:
    """Cut `(n_frames, n_features)` features into overlapping windows.

    Args:
        features: (n_frames, n_features) array.
        window_length: int >= 1. Frames per window.
        hop_length: int >= 1. Frames between window starts.

    Returns:
        `FramedWindows(windows, start_frame, n_valid)`; the last window is zero-padded
        where the frames run out.

    Raises:
        ParameterError: `features` is not 2-D, or a length is not an integer >= 1.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ParameterError(f"Invalid value for `features`: expected a 2-D array "
                             f"(n_frames, n_features), received shape {features.shape}.")
    n_frames = len(features)
    starts = window_starts(n_frames, window_length=window_length, hop_length=hop_length)
    needed = int(starts[-1]) + window_length
    if needed > n_frames:
        padding = np.zeros((needed - n_frames, features.shape[1]), dtype=features.dtype)
        features = np.concatenate([features, padding])
    view = np.lib.stride_tricks.sliding_window_view(features, window_length, axis=0)
    # sliding_window_view puts the window axis last: (n, F, L) -> (n, L, F).
    # A strided slice keeps it a view: no copy of the (overlapping) windows.
    windows = view[:int(starts[-1]) + 1:hop_length].transpose(0, 2, 1)
    n_valid = np.clip(n_frames - starts, 0, window_length)
    return FramedWindows(windows, starts, n_valid)


def make_windows(features: np.ndarray, features_config: FeatureConfig,
                 windows_config: WindowConfig, *, n_samples: int) -> Windows:
    """Windows of one recording with their times in seconds.

    Args:
        features: (n_frames, n_features) normalised features.
        features_config: settings that produced `features` (for frame times).
        windows_config: window length and hop, in seconds.
        n_samples: length of the recording in samples at the feature sample rate.

    Returns:
        `Windows`.
    """
    length = windows_config.window_length(features_config)
    hop = windows_config.hop_length(features_config)
    values, starts, n_valid = frame_windows(features, window_length=length,
                                            hop_length=hop)
    rate = features_config.sample_rate
    frame_hop = features_config.hop_length
    start_s = starts * frame_hop / rate
    last_frame = starts + np.maximum(n_valid, 1) - 1
    end_sample = np.minimum(last_frame * frame_hop + features_config.frame_length,
                            max(n_samples, 1))
    return Windows(values, starts, n_valid, start_s.astype(np.float64),
                   (end_sample / rate).astype(np.float64))
