"""The result of a run, one table per grain: one `RecordingInfo` per file, one row per
window (`WindowTable`, with the unit of each), one row per unit occurrence
(`Occurrences`). `pipeline.discover` makes a `DiscoveryResult`; the writers in
`outputs/` only read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional

import numpy as np

from discovery.embed import RecordingInfo, WindowTable
from discovery.errors import ParameterError
from discovery.files import Failure
from discovery.segments import SegmentTable
from discovery.units.occurrences import Occurrences

if TYPE_CHECKING:  # the map's module loads UMAP's helpers; a result needs only its type
    from discovery.units.maps import UnitMap

__all__ = ["DiscoveryResult", "RecordingInfo"]


@dataclass(frozen=True)
class DiscoveryResult:
    """Everything the pipeline found, per recording, per window and per occurrence.

    Checked once, when made (every writer relies on it): `unit` and `probability` have
    one value per window, and every window and occurrence names a recording.

    Attributes:
        recordings: one `RecordingInfo` per file; `windows.file` and
            `occurrences.file` index it.
        windows: `WindowTable`, one row per window: file, start_s, end_s, embedding,
            silence (P(window is silence)).
        unit: (n,) int64, unit of each window; -1 for silence or noise.
        probability: (n,) float64 in [0, 1], confidence of each window's unit.
        occurrences: `Occurrences`, one row per unit occurrence (consecutive windows
            of one unit merged).
        scores: scores against annotations (`nmi`, `v_measure`, `purity`, ...), or None.
        settings: settings and library versions, for run.json and the report's footer.
        timings: seconds per pipeline stage.
        map: `units.maps.UnitMap`, a 2-D map of a sample of the clustered windows, or
            None.
        failures: the inputs that could not be processed (`files.Failure`), each with
            its reason.
        level: "windows" (a unit per window; occurrences are runs of windows) or
            "segments" (a unit per segment; occurrences are the segments in a unit,
            and each window has the unit of the segment holding its centre).
        segments: `SegmentTable` at the segment level, else None.
        segment_unit: (s,) int64 unit of each segment (-1: noise), or None.
        segment_probability: (s,) float64 confidence of each segment's unit, or None.

    Raises:
        ParameterError: naming the first array that does not fit.
    """

    recordings: List[RecordingInfo]
    windows: WindowTable
    unit: np.ndarray
    probability: np.ndarray
    occurrences: Occurrences
    scores: Optional[dict] = None
    settings: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    map: Optional["UnitMap"] = None
    failures: List[Failure] = field(default_factory=list)
    level: str = "windows"
    segments: Optional[SegmentTable] = None
    segment_unit: Optional[np.ndarray] = None
    segment_probability: Optional[np.ndarray] = None

    def __post_init__(self):
        self._check_segments()
        for name, kind in (("windows", WindowTable), ("occurrences", Occurrences)):
            if not isinstance(getattr(self, name), kind):
                raise ParameterError(f"Invalid value for `{name}`: expected a "
                                     f"{kind.__name__}, received "
                                     f"{type(getattr(self, name)).__name__}.")
        n = len(self.windows)
        for name, kind in (("unit", np.int64), ("probability", np.float64)):
            try:
                values = np.asarray(getattr(self, name), dtype=kind)
            except (TypeError, ValueError) as error:
                raise ParameterError(f"Invalid value for `{name}`: expected numbers "
                                     f"({error}).") from None
            if values.shape != (n,):
                raise ParameterError(f"Invalid value for `{name}`: expected {n} values "
                                     f"(one per window), received shape {values.shape}.")
            object.__setattr__(self, name, values)
        n_files = len(self.recordings)
        for name, files in (("windows.file", self.windows.file),
                            ("occurrences.file", self.occurrences.file)):
            if len(files) and (files.min() < 0 or files.max() >= n_files):
                raise ParameterError(f"Invalid value for `{name}`: expected indices in "
                                     f"[0, {n_files - 1}], received "
                                     f"{files.min()}..{files.max()}.")

    def _check_segments(self) -> None:
        if self.level not in ("windows", "segments"):
            raise ParameterError(f"Invalid value for `level`: expected 'windows' or "
                                 f"'segments', received {self.level!r}.")
        if self.level == "windows":
            return
        if not isinstance(self.segments, SegmentTable):
            raise ParameterError("Invalid value for `segments`: expected a SegmentTable "
                                 f"at the segment level, received "
                                 f"{type(self.segments).__name__}.")
        n = len(self.segments)
        for name, kind in (("segment_unit", np.int64), ("segment_probability", np.float64)):
            values = np.asarray(getattr(self, name), dtype=kind)
            if values.shape != (n,):
                raise ParameterError(f"Invalid value for `{name}`: expected {n} values "
                                     f"(one per segment), received shape {values.shape}.")
            object.__setattr__(self, name, values)

    @property
    def n_units(self) -> int:
        """Number of unit ids in use: one more than the largest unit, 0 if none."""
        largest = [int(a.max()) for a in (self.unit, self.occurrences.unit) if a.size]
        return max([-1] + largest) + 1

