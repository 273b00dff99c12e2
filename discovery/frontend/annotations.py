"""Annotation tables beside recordings: `start_s,end_s,label` or `onset_s,offset_s,label`.

An annotation is found by name: `song.wav` -> `song.csv` in the same folder. Times are
in seconds from the start of the recording; everything outside the intervals is silence
(or background). Extra columns are kept but not needed.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from discovery.errors import ParameterError
from discovery.frontend.audio import PathLike

_COLUMN_PAIRS = (("start_s", "end_s"), ("onset_s", "offset_s"))


@dataclasses.dataclass
class Annotation:
    """Labelled intervals of one recording.

    Attributes:
        start_s, end_s: (n,) float64 interval bounds in seconds, sorted by start.
        labels: (n,) str labels.
    """

    start_s: np.ndarray
    end_s: np.ndarray
    labels: np.ndarray

    def frame_labels(self, times: np.ndarray, *, background: str = "") -> np.ndarray:
        """The label at each time point (e.g. frame centres).

        Args:
            times: (m,) float times in seconds.
            background: str. The label outside every interval. Defaults to "".

        Returns:
            (m,) object array of str labels.
        """
        return interval_values(self.start_s, self.end_s, self.labels.astype(object), times,
                               background=background)

    def coverage(self, start_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
        """Fraction of each span [start_s, end_s) that lies inside some interval.

        Args:
            start_s, end_s: (m,) float span bounds in seconds.

        Returns:
            (m,) float64 in [0, 1] where intervals do not overlap.
        """
        start_s, end_s = np.asarray(start_s, float), np.asarray(end_s, float)
        covered = np.zeros(len(start_s))
        for begin, end in zip(self.start_s, self.end_s):
            covered += np.clip(np.minimum(end_s, end) - np.maximum(start_s, begin), 0, None)
        return covered / np.maximum(end_s - start_s, 1e-12)


def interval_values(start_s: np.ndarray, end_s: np.ndarray, values: np.ndarray,
                    times: np.ndarray, *, background) -> np.ndarray:
    """The value of the interval holding each time, `background` outside every one.

    Args:
        start_s, end_s: (n,) interval bounds in seconds, sorted, not overlapping; an
            interval holds its start, not its end.
        values: (n,) one value per interval; its dtype is the result's.
        times: (m,) time points in seconds.
        background: the value outside every interval.

    Returns:
        (m,) array of `values`' dtype.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values)
    found = np.full(times.shape, background, dtype=values.dtype)
    if len(start_s) == 0:
        return found
    index = np.searchsorted(start_s, times, side="right") - 1
    inside = (index >= 0) & (times < np.asarray(end_s)[np.clip(index, 0, None)])
    found[inside] = values[index[inside]]
    return found


def annotation_path(audio_path: PathLike) -> Path:
    """Where the annotation of `audio_path` would be."""
    return Path(audio_path).with_suffix(".csv")


def read_annotation(path: PathLike) -> Annotation:
    """Read an annotation CSV.

    Args:
        path: a CSV file with columns `start_s,end_s,label` or `onset_s,offset_s,label`.

    Returns:
        `Annotation`, its intervals sorted by start.

    Raises:
        ParameterError: the file lacks the time columns or holds a bad value.
    """
    path = Path(path)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        columns = next(((a, b) for a, b in _COLUMN_PAIRS if a in fields and b in fields),
                       None)
        if columns is None:
            raise ParameterError(f"{path}: expected columns start_s,end_s,label or "
                                 f"onset_s,offset_s,label, received {fields}.")
        rows = list(reader)
    try:
        starts = np.array([float(row[columns[0]]) for row in rows], dtype=np.float64)
        ends = np.array([float(row[columns[1]]) for row in rows], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{path}: a time is not a number ({error}).") from None
    if np.any(ends < starts) or np.any(~np.isfinite(starts)) or np.any(~np.isfinite(ends)):
        raise ParameterError(f"{path}: every interval needs start <= end, finite.")
    labels = np.array([str(row.get("label", "")) for row in rows], dtype=object)
    order = np.argsort(starts, kind="stable")
    return Annotation(starts[order], ends[order], labels[order])


def find_annotation(audio_path: PathLike) -> Optional[Annotation]:
    """The annotation beside `audio_path`, or None when there is none."""
    path = annotation_path(audio_path)
    return read_annotation(path) if path.is_file() else None
