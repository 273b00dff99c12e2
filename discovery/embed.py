"""A trained model + recordings -> the window table: one row per window, with its
recording, times, embedding and P(silence).

    recordings ──> analyse (the bundle's features, windows) ──> model.embed (batches)
        ──> WindowTable (files, file, start_s, end_s, embedding, silence)
            + one small `RecordingInfo` per recording

Every recording is cut with the bundle's own feature and window settings, so the
windows always match what the model was trained on. Windows are embedded in batches
straight from a view into the features: memory holds one recording's features (about
90 MB for an hour at 64 bands) plus one batch, never a copy of all windows, and what is
kept per recording once it is embedded does not hold its features. `Bundle.embed`
(discovery.bundle) is the usual way in.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from discovery.config import FeatureConfig, PipelineConfig
from discovery.errors import DiscoveryError, ParameterError
from discovery.files import Failure
from discovery.frontend import audio
from discovery.frontend.annotations import Annotation
from discovery.frontend.recording import Recording, analyse

# Windows per forward pass. The default model's convolution holds 64 maps of every
# window's 32 x 64 cells: 0.5 MB a window, so 128 windows keep it to 64 MB.
BATCH_SIZE = 128
# Windows embedded between progress updates (about 4 minutes of audio at an 80 ms hop).
PROGRESS_WINDOWS = 3072


@dataclasses.dataclass(frozen=True)
class RecordingInfo:
    """One recording as a run keeps it: no features, no samples.

    The report reads the few spans it draws from the file itself, so what a run keeps
    per recording does not grow with the audio beyond one number per window.

    Attributes:
        path: the audio file, as given by the user (written into the tables).
        duration_s: length in seconds.
        feature_config: the settings its features were computed with (sample rate,
            frames, band); the report recomputes the features it draws with them.
        reference_db: the recording's reference level in dB (`Features.reference_db`),
            so recomputed features are normalised exactly as the model saw them.
        annotation: labelled intervals, if an annotation sits beside the file.
        digital_silence: the whole file is digitally silent (every sample ~0).
        window_valid_fraction: (n_windows,) float64, the fraction of each window's
            frames that are real rather than padding (the scores weigh windows by it),
            or None where unknown.
    """

    path: str
    duration_s: float
    feature_config: FeatureConfig
    reference_db: float
    annotation: Optional[Annotation] = None
    digital_silence: bool = False
    window_valid_fraction: Optional[np.ndarray] = None

    @property
    def frame_hop_s(self) -> float:
        """Seconds between feature frames (the hop as rounded to whole samples)."""
        return self.feature_config.hop_length / self.feature_config.sample_rate


@dataclasses.dataclass(frozen=True)
class WindowTable:
    """Windows of many recordings, one row each, sorted by recording then time.

    Checked once, when made: every column has one row per window and its own dtype,
    and `file` indexes `files`.

    Attributes:
        files: the recordings, as given.
        file: (n,) int64 index into `files`, non-decreasing.
        start_s, end_s: (n,) float64 window times in seconds.
        embedding: (n, d) float32 z_mean.
        silence: (n,) float32 P(silence).

    Raises:
        ParameterError: a column does not fit (named in the message).
    """

    files: List[str]
    file: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    embedding: np.ndarray
    silence: np.ndarray

    def __post_init__(self):
        columns = {"file": np.int64, "start_s": np.float64, "end_s": np.float64,
                   "silence": np.float32}
        try:
            values = {name: np.asarray(getattr(self, name), dtype=kind)
                      for name, kind in columns.items()}
            values["embedding"] = np.asarray(self.embedding, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ParameterError(f"Invalid value in the window table: expected numeric "
                                 f"arrays ({error}).") from None
        n = len(values["file"])
        for name, array in values.items():
            expected = 2 if name == "embedding" else 1
            if array.ndim != expected or len(array) != n:
                shape = "(n, d)" if expected == 2 else "(n,)"
                raise ParameterError(f"Invalid value for `{name}`: expected shape {shape} "
                                     f"with n = {n} windows, received {array.shape}.")
        files, file = [str(f) for f in self.files], values["file"]
        if n and (file.min() < 0 or file.max() >= len(files)):
            raise ParameterError(f"Invalid value for `file`: expected indices into the "
                                 f"{len(files)} files, received "
                                 f"{file.min()}..{file.max()}.")
        if np.any(np.diff(file) < 0):
            raise ParameterError("Invalid value for `file`: expected windows sorted by "
                                 "recording, received an unsorted index.")
        object.__setattr__(self, "files", files)
        for name, array in values.items():
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.file)

    def rows(self, index: int) -> slice:
        """The rows of recording `files[index]`."""
        first, end = np.searchsorted(self.file, [index, index + 1])
        return slice(int(first), int(end))

    def to_arrays(self, unit: Optional[np.ndarray] = None) -> dict:
        """Arrays for `embeddings.npz`: one row per window (DESIGN: file, start_s, end_s,
        embedding, silence, and unit when clustering ran)."""
        arrays = {"file": np.asarray(self.files, dtype=str)[self.file],
                  "start_s": self.start_s, "end_s": self.end_s,
                  "embedding": self.embedding, "silence": self.silence}
        if unit is not None:
            arrays["unit"] = np.asarray(unit, dtype=np.int32)
        return arrays


class Embedded(NamedTuple):
    """What `embed_paths` and `Bundle.embed` return; unpacks as `windows, recordings,
    failures`.

    Attributes:
        windows: `WindowTable`, one row per window of the readable recordings.
        recordings: `RecordingInfo` per readable recording, in the table's order.
        failures: `files.Failure` per input or file that could not be read.
    """

    windows: WindowTable
    recordings: List[RecordingInfo]
    failures: List[Failure]


@dataclasses.dataclass
class RecordingEmbedding:
    """One recording with its features and windows kept, and their embeddings (what
    the Siamese-pair evaluation compares)."""

    recording: Recording
    embedding: np.ndarray   # (n_windows, latent_dim) float32 z_mean
    silence: np.ndarray     # (n_windows,) float32 P(silence)

    def info(self) -> RecordingInfo:
        """What a run keeps of this recording once its windows are in the table."""
        recording = self.recording
        return RecordingInfo(
            path=recording.path, duration_s=recording.features.duration,
            feature_config=recording.features.config,
            reference_db=recording.features.reference_db,
            digital_silence=bool(np.all(recording.window_digital_silence)),
            window_valid_fraction=recording.windows.n_valid
            / recording.windows.values.shape[1])


def embed_recording(path, *, model, config: PipelineConfig,
                    on_progress: Optional[Callable[[float], None]] = None
                    ) -> RecordingEmbedding:
    """Embed every window of one recording, keeping its features.

    Windows that are digital silence (every frame below the absolute level floor,
    `Recording.window_digital_silence`) get P(silence) = 1 whatever the model says:
    the model never saw such input, and no unit can live there.

    Args:
        path: an audio file.
        model: the bundle's `VAE` (`Bundle.model`).
        config: the bundle's settings (`Bundle.config`): the windows are cut with them.
        on_progress: called with the seconds of audio embedded since the last call.

    Raises:
        AudioError: the file cannot be read.
    """
    result = analyse(path, config)
    windows = result.windows.values
    embedding = np.zeros((len(windows), model.latent_dim), np.float32)
    silence = np.zeros(len(windows), np.float32)
    done_s = 0.0
    for first in range(0, len(windows), PROGRESS_WINDOWS):
        rows = slice(first, first + PROGRESS_WINDOWS)
        embedding[rows], silence[rows] = model.embed(windows[rows], batch_size=BATCH_SIZE)
        if on_progress is not None:
            reached = min(float(result.windows.end_s[rows][-1]), result.features.duration)
            on_progress(max(reached - done_s, 0.0))
            done_s = max(done_s, reached)
    silence[result.window_digital_silence] = 1.0
    return RecordingEmbedding(result, embedding, silence)


def _seconds(path: Path) -> float:
    try:
        return audio.info(path).duration
    except DiscoveryError:
        return 0.0  # reported as a failure when it is read


def each_recording(paths: Sequence[Path], model, config: PipelineConfig, failures: list,
                   *, progress: bool):
    """Yield each readable recording's `RecordingEmbedding`, listing the others in
    `failures`; progress is shown in seconds of audio, so one long file moves it too."""
    bar = tqdm(total=round(sum(_seconds(p) for p in paths), 1), unit="s", desc="embedding",
               disable=not progress, file=sys.stderr, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]")
    with bar:
        for path in paths:
            try:
                embedded = embed_recording(path, model=model, config=config,
                                           on_progress=bar.update)
            except DiscoveryError as error:
                failures.append(Failure(str(path), str(error)))
                bar.set_postfix(failed=len(failures))
                continue
            yield embedded


def embed_paths(paths: Sequence[Path], *, model, config: PipelineConfig,
                progress: bool = True) -> Embedded:
    """Embed audio files into one window table, keeping going past unreadable files.

    Each recording's features are dropped as soon as its windows are embedded.

    Args:
        paths: audio files.
        model: the bundle's `VAE`.
        config: the bundle's settings.
        progress: show a progress bar (stderr).

    Returns:
        `Embedded(windows, recordings, failures)`.
    """
    failures, infos, parts = [], [], []
    for embedded in each_recording(paths, model, config, failures, progress=progress):
        infos.append(embedded.info())
        windows = embedded.recording.windows
        parts.append((windows.start_s, windows.end_s, embedded.embedding, embedded.silence))
    files = [info.path for info in infos]
    return Embedded(stack_windows(files, parts, model.latent_dim), infos, failures)


def embed_with_features(paths: Sequence[Path], *, model, config: PipelineConfig,
                        progress: bool = True) -> tuple:
    """Embed audio files keeping every recording's features and windows (memory grows
    with the audio: for evaluations over short labelled files).

    Returns:
        (`RecordingEmbedding` per readable file, failures: list of `Failure`).
    """
    failures = []
    embedded = list(each_recording(paths, model, config, failures, progress=progress))
    return embedded, failures


def stack_windows(files: List[str], parts: Sequence[tuple], latent_dim: int) -> WindowTable:
    """One table from per-recording (start_s, end_s, embedding, silence) parts."""
    if not parts:
        empty = np.zeros(0)
        return WindowTable([], empty.astype(np.int64), empty, empty,
                           np.zeros((0, latent_dim), np.float32), empty.astype(np.float32))
    columns = list(zip(*parts))
    file = np.concatenate([np.full(len(start), i) for i, start in enumerate(columns[0])])
    return WindowTable(files, file, *(np.concatenate(column) for column in columns))
