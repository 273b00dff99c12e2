"""Units in time: runs of windows of one unit merged into occurrences, and per-unit
counts and durations.

    labels (n,), probabilities (n,) ──> merge_units ──> occurrences ──> unit_table
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Optional

import numpy as np

from discovery.errors import ParameterError
from discovery.units._checks import _as_array, _check_int, _fail

TIME_TOLERANCE_S = 1e-6  # window times are floats: touching windows may differ by ulps

# The unit table is a dict of equal-length arrays, one entry per unit.
UNIT_TABLE_KEYS = ("unit", "count", "n_windows", "total_duration_s", "mean_duration_s",
                   "mean_confidence")
# The columns of `Occurrences` and their dtypes.
_OCCURRENCE_COLUMNS = {"file": np.int64, "start_s": np.float64, "end_s": np.float64,
                       "unit": np.int64, "confidence": np.float64, "n_windows": np.int64}
OCCURRENCE_KEYS = tuple(_OCCURRENCE_COLUMNS)


@dataclasses.dataclass(frozen=True)
class Occurrences:
    """Unit occurrences: one row per run of consecutive windows of one unit.

    Checked once, when made: equal-length 1-D columns of their own dtypes.

    Attributes:
        file: (k,) int64 recording index.
        start_s, end_s: (k,) float64 the span the run stands for, in seconds.
        unit: (k,) int64 unit (>= 0).
        confidence: (k,) float64 mean probability of the run's windows.
        n_windows: (k,) int64 windows in the run.

    Raises:
        ParameterError: a column is not numeric, not 1-D, or of another length.
    """

    file: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    unit: np.ndarray
    confidence: np.ndarray
    n_windows: np.ndarray

    def __post_init__(self):
        try:
            columns = {name: np.asarray(getattr(self, name), dtype=kind)
                       for name, kind in _OCCURRENCE_COLUMNS.items()}
        except (TypeError, ValueError) as error:
            raise ParameterError(f"Invalid value in `occurrences`: expected numeric "
                                 f"arrays ({error}).") from None
        shapes = {name: values.shape for name, values in columns.items()}
        if len(set(shapes.values())) > 1 or columns["file"].ndim != 1:
            _fail("occurrences", "1-D arrays of one length", shapes)
        for name, values in columns.items():
            object.__setattr__(self, name, values)

    def __len__(self) -> int:
        return len(self.file)

    def rows(self, recording_index: Optional[int] = None) -> Iterator[tuple]:
        """(file, start_s, end_s, unit, confidence) tuples of Python numbers, ordered by
        recording then start; only recording `recording_index`'s when given."""
        for i in np.lexsort((self.start_s, self.file)):
            if recording_index is not None and self.file[i] != recording_index:
                continue
            yield (int(self.file[i]), float(self.start_s[i]), float(self.end_s[i]),
                   int(self.unit[i]), float(self.confidence[i]))


def merge_units(file_index: Any, start_s: Any, end_s: Any, labels: Any,
                probabilities: Any, *, max_gap_s: float = 0.0,
                min_windows: int = 1) -> Occurrences:
    """Merge runs of consecutive windows with the same unit into occurrences.

    Windows are put in order by recording, then start (stably). Two windows are
    consecutive when they are neighbours in that order, belong to one recording,
    and the second starts at most `max_gap_s` after the first ends: overlapping or
    touching windows (hop <= window length) always are. A -1 window (silence or
    noise) is never a unit and always ends a run, so a syllable repeated after a
    short silence gives two occurrences.

    Args:
        file_index: (n,) integer recording index of each window.
        start_s: (n,) window starts, in seconds.
        end_s: (n,) window ends, in seconds, >= `start_s`.
        labels: (n,) integer units, -1 for silence and noise.
        probabilities: (n,) unit probabilities in [0, 1].
        max_gap_s: float >= 0. Largest time gap between neighbouring windows of a
            run, in seconds (plus 1 microsecond for rounding); matters only where
            windows do not overlap or were left out upstream. Defaults to 0.0.
        min_windows: int >= 1. Runs of fewer windows are dropped. Defaults to 1.

    Returns:
        `Occurrences`, one row per occurrence, ordered by recording, then start:
        `file` recording index; `start_s`, `end_s`, the span the run's windows stand
        for (overlapping windows split their overlap at the midpoint between centres,
        so occurrences never overlap; a recording's first and last window keep their
        outer edge); `unit` (>= 0); `confidence`, mean probability of the
        occurrence's windows; `n_windows`.

    Raises:
        ParameterError: for arrays of different lengths or invalid values.
    """
    file_index = _as_array("file_index", file_index, ndim=1, dtype=np.int64)
    labels = _as_array("labels", labels, ndim=1, dtype=np.int64)
    start_s = _as_array("start_s", start_s, ndim=1)
    end_s = _as_array("end_s", end_s, ndim=1)
    probabilities = _as_array("probabilities", probabilities, ndim=1)
    n = len(file_index)
    for name, array in (("start_s", start_s), ("end_s", end_s), ("labels", labels),
                        ("probabilities", probabilities)):
        if len(array) != n:
            _fail(name, f"one value per window, shape ({n},)", f"shape {array.shape}")
    if np.any(end_s < start_s):
        _fail("end_s", "values >= start_s", f"{int(np.sum(end_s < start_s))} earlier")
    if np.any(labels < -1):
        _fail("labels", "units >= 0 or -1", f"minimum {labels.min()}")
    if np.any((probabilities < 0) | (probabilities > 1)):
        _fail("probabilities", "values in [0, 1]",
              f"values in [{probabilities.min():g}, {probabilities.max():g}]")
    if (isinstance(max_gap_s, bool) or not isinstance(max_gap_s, (int, float))
            or not 0 <= max_gap_s < np.inf):
        _fail("max_gap_s", "a finite number >= 0", max_gap_s)
    _check_int("min_windows", min_windows, 1)

    order = np.lexsort((start_s, file_index))
    file_index, start_s, end_s = file_index[order], start_s[order], end_s[order]
    labels, probabilities = labels[order], probabilities[order]
    unit = labels >= 0
    # A run starts at a unit window unless its predecessor continues it.
    continues = np.zeros(n, dtype=bool)
    continues[1:] = (unit[1:] & (labels[1:] == labels[:-1])
                     & (file_index[1:] == file_index[:-1])
                     & (start_s[1:] - end_s[:-1] <= max_gap_s + TIME_TOLERANCE_S))
    first = np.flatnonzero(unit & ~continues)
    run = np.cumsum(unit & ~continues) - 1  # run of each unit window
    members = np.flatnonzero(unit)
    n_windows = np.bincount(run[members], minlength=len(first))
    last = first + n_windows - 1
    confidence = np.bincount(run[members], weights=probabilities[members],
                             minlength=len(first)) / np.maximum(n_windows, 1)
    keep = n_windows >= min_windows
    owned_start, owned_end = _owned_spans(file_index, start_s, end_s)
    return Occurrences(file=file_index[first][keep], start_s=owned_start[first][keep],
                       end_s=owned_end[last][keep], unit=labels[first][keep],
                       confidence=confidence[keep],
                       n_windows=n_windows[keep].astype(np.int64))


def _owned_spans(file_index: np.ndarray, start_s: np.ndarray, end_s: np.ndarray) -> tuple:
    """The part of the timeline each window stands for: overlapping windows split the
    overlap at the midpoint between their centres, so occurrences never overlap; the
    first and last window of a recording keep their outer edges."""
    owned_start, owned_end = start_s.copy(), end_s.copy()
    same = file_index[1:] == file_index[:-1]
    centre = (start_s + end_s) / 2
    boundary = np.clip((centre[:-1] + centre[1:]) / 2, start_s[1:], end_s[:-1])
    # Windows that do not overlap keep their own edges.
    split = same & (start_s[1:] < end_s[:-1])
    owned_end[:-1][split] = boundary[split]
    owned_start[1:][split] = boundary[split]
    return owned_start, owned_end


def unit_table(occurrences: Occurrences) -> dict:
    """Count the occurrences of each unit and their durations.

    Args:
        occurrences: `Occurrences`, from `merge_units`.

    Returns:
        dict of (u,) arrays, one entry per unit that occurs, in unit order: `unit`
        int64; `count` int64 occurrences; `n_windows` int64 windows in them;
        `total_duration_s`, `mean_duration_s` float64 occurrence lengths, in
        seconds; `mean_confidence` float64 mean occurrence confidence.
    """
    if not isinstance(occurrences, Occurrences):
        _fail("occurrences", "an Occurrences (from merge_units)",
              type(occurrences).__name__)
    units, run_unit = np.unique(occurrences.unit, return_inverse=True)
    count = np.bincount(run_unit, minlength=len(units)).astype(np.int64)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(run_unit, weights=values.astype(np.float64),
                           minlength=len(units))

    duration = total(occurrences.end_s - occurrences.start_s)
    safe = np.maximum(count, 1)
    return {"unit": units, "count": count,
            "n_windows": total(occurrences.n_windows).round().astype(np.int64),
            "total_duration_s": duration, "mean_duration_s": duration / safe,
            "mean_confidence": total(occurrences.confidence) / safe}
