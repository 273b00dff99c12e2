"""Recordings -> training windows with silence targets, as `tf.data` pipelines.

Each recording is analysed once (features, windows, energy-based silence targets). When
an annotation sits beside a recording, its intervals give the silence targets instead:
a window is silence when at most `window_sound_fraction` of it is annotated sound.
Recordings, not windows, are split into training and validation, so overlapping
windows of one recording never sit on both sides.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Sequence

import numpy as np

from discovery.frontend import annotations, audio
from discovery.config import PipelineConfig
from discovery.errors import AudioError
from discovery.files import for_each_file
from discovery.frontend.recording import analyse


@dataclasses.dataclass
class WindowSet:
    """Windows of many recordings, in memory, with what each row came from.

    Attributes:
        windows: (n, T, F) float32 feature windows.
        silence: (n,) float32 silence targets (1 = silence).
        recording: (n,) int index into `paths`.
        start_s: (n,) window start times in seconds.
        annotated: (n,) bool, targets came from an annotation.
        paths: the recordings.
    """

    windows: np.ndarray
    silence: np.ndarray
    recording: np.ndarray
    start_s: np.ndarray
    annotated: np.ndarray
    paths: List[str]

    def __len__(self) -> int:
        return len(self.windows)

    def subset(self, mask: np.ndarray) -> "WindowSet":
        return WindowSet(self.windows[mask], self.silence[mask], self.recording[mask],
                         self.start_s[mask], self.annotated[mask], self.paths)


def silence_targets(path, result, config: PipelineConfig) -> tuple:
    """(targets (n_windows,) float32, from_annotation) for one analysed recording."""
    annotation = annotations.find_annotation(path)
    if annotation is None:
        return result.window_silence.astype(np.float32), False
    sound = annotation.coverage(result.windows.start_s, result.windows.end_s)
    # Padding counts as silence, as in the energy targets.
    sound = sound * (result.windows.n_valid / result.windows.values.shape[1])
    return (sound <= config.silence.window_sound_fraction).astype(np.float32), True


def load_windows(inputs: Sequence, config: PipelineConfig, *,
                 progress: bool = True) -> tuple:
    """Analyse every recording under `inputs` and gather its windows.

    Returns:
        (`WindowSet`, failures: list of `Failure` for files that could not be read).

    Raises:
        AudioError: no recording could be read.
    """
    paths = audio.find_audio_files(inputs)

    def work(path: Path):
        result = analyse(path, config)
        targets, annotated = silence_targets(path, result, config)
        # Copy: the windows are views into the recording's features.
        return (np.ascontiguousarray(result.windows.values), targets,
                result.windows.start_s, annotated)

    results, failures = for_each_file(paths, work, description="reading recordings",
                                      progress=progress)
    if not results:
        raise AudioError(f"{inputs[0]}: no readable recordings to train on.")
    windows, targets, starts, annotated, index = [], [], [], [], []
    for i, (_, (values, target, start, from_annotation)) in enumerate(results):
        windows.append(values)
        targets.append(target)
        starts.append(start)
        annotated.append(np.full(len(values), from_annotation))
        index.append(np.full(len(values), i))
    window_set = WindowSet(np.concatenate(windows).astype(np.float32),
                           np.concatenate(targets), np.concatenate(index),
                           np.concatenate(starts), np.concatenate(annotated),
                           [str(path) for path, _ in results])
    return window_set, failures


def split_by_recording(windows: WindowSet, *, validation_fraction: float,
                       seed: int) -> tuple:
    """(training, validation or None): a seeded share of recordings held out."""
    n_recordings = len(windows.paths)
    # At least one recording is held out once there are three to choose from.
    n_validation = min(int(np.ceil(validation_fraction * n_recordings)), n_recordings - 1)
    if validation_fraction <= 0 or n_recordings < 3 or n_validation < 1:
        return windows, None
    held_out = np.random.default_rng(seed).permutation(n_recordings)[:n_validation]
    mask = np.isin(windows.recording, held_out)
    return windows.subset(~mask), windows.subset(mask)


def to_tf_dataset(windows: WindowSet, *, batch_size: int, shuffle: bool,
                  seed: int = 0, repeat: bool = False):
    """A `tf.data.Dataset` of `(windows (b, T, F, 1), silence (b, 1))` batches."""
    import tensorflow as tf  # only the training side needs it

    data = tf.data.Dataset.from_tensor_slices(
        (windows.windows[..., None], windows.silence[:, None]))
    if shuffle:
        data = data.shuffle(min(len(windows), 50_000), seed=seed,
                            reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
