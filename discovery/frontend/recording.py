"""One recording -> features, windows with times, and silence targets.

This is what `discovery features` writes per recording and what training reads.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import numpy as np

from discovery.frontend import features as features_module
from discovery.frontend import silence
from discovery.frontend.audio import PathLike
from discovery.config import PipelineConfig
from discovery.frontend.windowing import Windows, make_windows


@dataclasses.dataclass
class Recording:
    """Everything computed for one recording.

    Attributes:
        path: the audio file.
        features: normalised features and frame levels.
        windows: sliding windows with times.
        frame_sound: (n_frames,) bool energy-based sound detection.
        window_sound_fraction: (n_windows,) fraction of each window that is sound.
        window_silence: (n_windows,) bool silence targets.
        window_digital_silence: (n_windows,) bool, every real frame of the window is
            digital silence (below `features.DIGITAL_SILENCE_DB`): nothing was
            recorded there, whatever a model says.
    """

    path: str
    features: features_module.Features
    windows: Windows
    frame_sound: np.ndarray
    window_sound_fraction: np.ndarray
    window_silence: np.ndarray
    window_digital_silence: np.ndarray

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """Arrays for an `.npz` file (see `discovery features`)."""
        return {
            "features": self.features.values,
            "frame_start_s": self.features.frame_starts,
            "frame_energy_db": self.features.energy_db,
            "frame_sound": self.frame_sound,
            "window_start_s": self.windows.start_s,
            "window_end_s": self.windows.end_s,
            "window_start_frame": self.windows.start_frame,
            "window_n_valid": self.windows.n_valid,
            "window_padded": self.windows.padded,
            "window_sound_fraction": self.window_sound_fraction,
            "window_silence": self.window_silence,
            "window_digital_silence": self.window_digital_silence,
            "reference_db": np.float32(self.features.reference_db),
            "duration_s": np.float64(self.features.duration),
        }


def analyse(path: PathLike, config: PipelineConfig, *,
            features: Optional[features_module.Features] = None) -> Recording:
    """Compute features, windows and silence targets of one audio file.

    Args:
        path: an audio file.
        config: feature, window and silence settings.
        features: already computed features of `path` under `config.features`, to
            skip reading it again. Defaults to None: computed here.

    Returns:
        `Recording`.

    Raises:
        AudioError: the file cannot be read.
    """
    if features is None:
        features = features_module.extract(path, config.features)
    windows = make_windows(features.values, config.features, config.windows,
                           n_samples=features.n_samples)
    digital = features.digital_silence
    sound = silence.frame_sound(features.energy_db, frame_rate=config.features.frame_rate,
                                config=config.silence, digital_silence=digital)
    fraction = silence.window_sound_fraction(sound, windows.start_frame, windows.n_valid,
                                             window_length=windows.values.shape[1])
    return Recording(str(path), features, windows, sound, fraction,
                     silence.window_silence(fraction, config.silence),
                     silence.window_digital_silence(digital, windows.start_frame,
                                                    windows.n_valid))
