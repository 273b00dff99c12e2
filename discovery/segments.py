"""Recordings -> segments (syllables, calls, words) with a description each, beside the
window table, in one pass over the audio.

    each recording ──> features, windows, window embeddings (embed.py)
        ──> find_segments on its frame energy (frontend/segments.py)
        ──> one vector per segment:
              "image": its features resized to the model's window length (the fixed-size
                       spectrogram image of AVGN and AVA), flattened
              "model": the mean embedding of the CENTRE_WINDOWS windows centred
                       nearest the segment's centre
        ──> SegmentTable (files, file, start_s, end_s, embedding, n_windows)

`docs/benchmarks.md` tables both descriptions against the plain AVGN-style pipeline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, NamedTuple, Sequence

import numpy as np

from discovery.config import PipelineConfig, SEGMENT_FEATURES
from discovery.embed import Embedded, RecordingEmbedding, each_recording, stack_windows
from discovery.errors import ParameterError
from discovery.frontend.annotations import interval_values
from discovery.frontend.segments import find_segments, segment_images

# Windows averaged for a segment's "model" description: the one centred nearest its
# centre and its neighbours, so a one-frame shift of the segment changes little.
CENTRE_WINDOWS = 3


@dataclasses.dataclass(frozen=True)
class SegmentTable:
    """Segments of many recordings, one row each, sorted by recording then time.

    Attributes:
        files: the recordings, as given.
        file: (n,) int64 index into `files`, non-decreasing.
        start_s, end_s: (n,) float64 segment bounds in seconds.
        embedding: (n, d) float32, each segment's description (`SEGMENT_FEATURES`).
        n_windows: (n,) int64, windows whose centre lies in the segment.
    """

    files: List[str]
    file: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    embedding: np.ndarray
    n_windows: np.ndarray

    def __post_init__(self):
        n = len(self.file)
        for name in ("start_s", "end_s", "embedding", "n_windows"):
            if len(getattr(self, name)) != n:
                raise ParameterError(f"Invalid value for `{name}`: expected {n} rows (one "
                                     f"per segment), received {len(getattr(self, name))}.")

    def __len__(self) -> int:
        return len(self.file)

    def to_arrays(self, unit=None) -> dict:
        """Arrays for `segments.npz`: file, start_s, end_s, embedding (and unit)."""
        arrays = {"file": np.asarray(self.files, dtype=str)[self.file],
                  "start_s": self.start_s, "end_s": self.end_s,
                  "embedding": self.embedding}
        if unit is not None:
            arrays["unit"] = np.asarray(unit, dtype=np.int32)
        return arrays


class Segmented(NamedTuple):
    """What `embed_segments` returns: the windows as `Bundle.embed` gives them, and
    the segments."""

    embedded: Embedded
    segments: SegmentTable


def describe_segments(embedded: RecordingEmbedding, config: PipelineConfig, *,
                      features: str = "image") -> tuple:
    """Find one recording's segments and describe each by one vector.

    Args:
        embedded: the recording with its features and window embeddings
            (`embed.embed_recording`).
        config: the bundle's settings (silence thresholds, segment settings, window
            length).
        features: "image" or "model" (see the module docstring).

    Returns:
        (start_s, end_s, embedding, n_windows): (n,) float64, (n,) float64,
        (n, d) float32, (n,) int64.
    """
    if features not in SEGMENT_FEATURES:
        raise ParameterError(f"Invalid value for `segment_features`: expected one of "
                             f"{SEGMENT_FEATURES}, received {features!r}.")
    recording = embedded.recording
    values = recording.features.values
    bounds = find_segments(recording.features.energy_db,
                           frame_rate=config.features.frame_rate, silence=config.silence,
                           segments=config.segments,
                           digital_silence=recording.features.digital_silence)
    hop = recording.features.config.hop_length / recording.features.config.sample_rate
    start_s, end_s = bounds[:, 0] * hop, bounds[:, 1] * hop
    windows = recording.windows
    centres = (windows.start_s + windows.end_s) / 2
    n_windows = (np.searchsorted(centres, end_s) - np.searchsorted(centres, start_s))
    if features == "image":
        images = segment_images(values, bounds, config.input_frames)
        embedding = images.reshape(len(bounds), images.shape[1] * images.shape[2])
    else:
        embedding = _centre_embeddings(centres, embedded.embedding, (start_s + end_s) / 2)
    return start_s, end_s, embedding.astype(np.float32), n_windows.astype(np.int64)


def _centre_embeddings(window_centres: np.ndarray, window_embedding: np.ndarray,
                       segment_centres: np.ndarray) -> np.ndarray:
    """Mean embedding of the CENTRE_WINDOWS windows centred nearest each time."""
    n = len(window_centres)
    if n == 0:
        return np.zeros((len(segment_centres), window_embedding.shape[1]), np.float32)
    count = min(CENTRE_WINDOWS, n)
    nearest = np.clip(np.searchsorted(window_centres, segment_centres), 0, n - 1)
    # The `count` windows around the nearest, kept inside the recording.
    first = np.clip(nearest - count // 2, 0, n - count)
    rows = first[:, np.newaxis] + np.arange(count)
    return window_embedding[rows].mean(axis=1)


def embed_segments(paths: Sequence[Path], *, model, config: PipelineConfig,
                   features: str = "image", progress: bool = True) -> Segmented:
    """Embed audio files' windows and find and describe their segments, in one pass.

    Args:
        paths: audio files.
        model: the bundle's `VAE`.
        config: the bundle's settings.
        features: the segments' description, "image" or "model".
        progress: show a progress bar (stderr).

    Returns:
        `Segmented(embedded, segments)`.
    """
    failures, infos, window_parts, segment_parts = [], [], [], []
    for embedded in each_recording(paths, model, config, failures, progress=progress):
        infos.append(embedded.info())
        windows = embedded.recording.windows
        window_parts.append((windows.start_s, windows.end_s, embedded.embedding,
                             embedded.silence))
        segment_parts.append(describe_segments(embedded, config, features=features))
    files = [info.path for info in infos]
    table = stack_windows(files, window_parts, model.latent_dim)
    return Segmented(Embedded(table, infos, failures),
                     stack_segments(files, segment_parts, width=0))


def stack_segments(files: List[str], parts: Sequence[tuple], *, width: int) -> SegmentTable:
    """One table from per-recording (start_s, end_s, embedding, n_windows) parts; with
    no parts, an empty table whose descriptions are `width` wide."""
    if not parts:
        return SegmentTable([], np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                            np.zeros((0, width), np.float32), np.zeros(0, np.int64))
    columns = list(zip(*parts))
    file = np.concatenate([np.full(len(s), i, np.int64) for i, s in enumerate(columns[0])])
    return SegmentTable(files, file, np.concatenate(columns[0]).astype(np.float64),
                        np.concatenate(columns[1]).astype(np.float64),
                        np.concatenate(columns[2]).astype(np.float32),
                        np.concatenate(columns[3]).astype(np.int64))


def describe_stored_segments(windows, segments: SegmentTable) -> SegmentTable:
    """Stored segments (described by their image) described instead by the model:
    the mean embedding of the windows at each segment's centre, from the stored
    window table (`store.Store.read`), as `describe_segments` does with "model"."""
    centres = (windows.start_s + windows.end_s) / 2
    embedding = np.zeros((len(segments), windows.embedding.shape[1]), np.float32)
    for index in range(len(windows.files)):
        rows, mine = windows.rows(index), segments.file == index
        if mine.any():
            embedding[mine] = _centre_embeddings(
                centres[rows], windows.embedding[rows],
                (segments.start_s[mine] + segments.end_s[mine]) / 2)
    return dataclasses.replace(segments, embedding=embedding)


def segment_window_units(windows, segments: SegmentTable, segment_unit: np.ndarray,
                         segment_probability: np.ndarray) -> tuple:
    """Each window's unit and confidence: those of the segment holding its centre, -1
    and 0 outside every segment (the segment level's window units).

    Returns:
        (units (n,) int64, probabilities (n,) float64), one per window.
    """
    centres = (windows.start_s + windows.end_s) / 2
    units = np.full(len(windows), -1, np.int64)
    probabilities = np.zeros(len(windows))
    for index in range(len(windows.files)):
        rows, mine = windows.rows(index), segments.file == index
        if not mine.any():
            continue  # no segment: its windows keep -1
        holder = interval_values(segments.start_s[mine], segments.end_s[mine],
                                 np.arange(int(mine.sum())), centres[rows], background=-1)
        inside = np.flatnonzero(holder >= 0) + rows.start
        units[inside] = segment_unit[mine][holder[holder >= 0]]
        probabilities[inside] = segment_probability[mine][holder[holder >= 0]]
    return units, probabilities
