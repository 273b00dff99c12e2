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
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Sequence

import numpy as np

from discovery.frontend import annotations, audio
from discovery.config import PipelineConfig
from discovery.errors import AudioError
from discovery.files import Failure, for_each_file
from discovery.frontend.audio import PathLike
from discovery.frontend.recording import Recording, analyse

if TYPE_CHECKING:
    import tensorflow as tf


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

    def subset(self, mask: np.ndarray) -> WindowSet:
        """The rows where `mask` is True (or the rows an index array names)."""
        return WindowSet(self.windows[mask], self.silence[mask], self.recording[mask],
                         self.start_s[mask], self.annotated[mask], self.paths)


class SilenceTargets(NamedTuple):
    """What `silence_targets` returns; unpacks as `targets, from_annotation`.

    Attributes:
        targets: (n_windows,) float32, 1 for silence.
        from_annotation: the targets came from an annotation beside the recording,
            not from the energy-based detection.
    """

    targets: np.ndarray
    from_annotation: bool


class LoadedWindows(NamedTuple):
    """What `load_windows` returns; unpacks as `window_set, failures`.

    Attributes:
        window_set: the windows of every readable recording.
        failures: the files that could not be read.
    """

    window_set: WindowSet
    failures: List[Failure]


class Split(NamedTuple):
    """What `split_by_recording` returns; unpacks as `training, validation`.

    Attributes:
        training: the windows to train on.
        validation: the held-out recordings' windows, or None when none is held out.
    """

    training: WindowSet
    validation: Optional[WindowSet]


def silence_targets(path: PathLike, result: Recording,
                    config: PipelineConfig) -> SilenceTargets:
    """The silence targets of one analysed recording: its annotation's, else its own.

    Args:
        path: the recording; an annotation beside it (`annotations.find_annotation`)
            gives the targets.
        result: `analyse(path, config)`.
        config: `silence.window_sound_fraction`, the most annotated sound a silent
            window holds.

    Returns:
        `SilenceTargets(targets, from_annotation)`. Padding past the end of the
        recording counts as silence, as in the energy-based targets.
    """
    annotation = annotations.find_annotation(path)
    if annotation is None:
        return SilenceTargets(result.window_silence.astype(np.float32), False)
    sound = annotation.coverage(result.windows.start_s, result.windows.end_s)
    # Padding counts as silence, as in the energy targets.
    sound = sound * (result.windows.n_valid / result.windows.values.shape[1])
    silent = sound <= config.silence.window_sound_fraction
    return SilenceTargets(silent.astype(np.float32), True)


def load_windows(inputs: Sequence[PathLike], config: PipelineConfig, *,
                 progress: bool = True) -> LoadedWindows:
    """Analyse every recording under `inputs` and gather its windows.

    Args:
        inputs: audio files or folders.
        config: feature, window and silence settings.
        progress: bool. Show a progress bar. Defaults to True.

    Returns:
        `LoadedWindows(window_set, failures)`: the windows of every readable recording,
        and a `Failure` for each file that could not be read.

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
    return LoadedWindows(window_set, failures)


def split_by_recording(windows: WindowSet, *, validation_fraction: float,
                       seed: int) -> Split:
    """Hold out a seeded share of the recordings, with all their windows.

    Args:
        windows: the windows of every recording.
        validation_fraction: float in [0, 1). Share of recordings held out, rounded
            up; at least one once there are three recordings, never all of them.
        seed: int. Seeds the choice of recordings.

    Returns:
        `Split(training, validation)`; validation is None when nothing is held out
        (a fraction of 0, or fewer than three recordings).
    """
    n_recordings = len(windows.paths)
    # At least one recording is held out once there are three to choose from.
    n_validation = min(int(np.ceil(validation_fraction * n_recordings)), n_recordings - 1)
    if validation_fraction <= 0 or n_recordings < 3 or n_validation < 1:
        return Split(windows, None)
    held_out = np.random.default_rng(seed).permutation(n_recordings)[:n_validation]
    mask = np.isin(windows.recording, held_out)
    return Split(windows.subset(~mask), windows.subset(mask))


def to_tf_dataset(windows: WindowSet, *, batch_size: int, shuffle: bool,
                  seed: int = 0, repeat: bool = False) -> tf.data.Dataset:
    """A `tf.data.Dataset` of `(windows (b, T, F, 1), silence (b, 1))` batches.

    Args:
        windows: the windows and their silence targets.
        batch_size: int >= 1. Windows per batch; the last batch may hold fewer.
        shuffle: bool. Shuffle the windows (a buffer of up to 50,000), anew each
            epoch.
        seed: int. Seeds the shuffle. Defaults to 0.
        repeat: bool. Repeat the windows without end. Defaults to False.

    Returns:
        The batched, prefetched dataset.
    """
    import tensorflow as tf  # only the training side needs it

    data = tf.data.Dataset.from_tensor_slices(
        (windows.windows[..., None], windows.silence[:, None]))
    if shuffle:
        data = data.shuffle(min(len(windows), 50_000), seed=seed,
                            reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
