"""The result of a run: one `RecordingInfo` per file, one row per window, one row per
unit occurrence. The pipeline fills a `DiscoveryResult`; the writers in `outputs/`
only read it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from discovery.frontend.annotations import Annotation
from discovery.config import FeatureConfig
from discovery.errors import ParameterError


@dataclass
class RecordingInfo:
    """One recording as the tables and the report show it: no features, no samples.

    The report reads the few spans it draws from the file itself (see `report.py`), so
    what a run keeps per recording does not grow with the recording's length.

    Attributes:
        path: the audio file, as given by the user (written into the tables).
        duration_s: length in seconds.
        feature_config: the settings its features were computed with (sample rate,
            frames, band); the report recomputes the features it draws with them.
        reference_db: the recording's reference level in dB (`Features.reference_db`),
            so recomputed features are normalised exactly as the model saw them.
        annotation: labelled intervals, if an annotation sits beside the file.
        digital_silence: the whole file is digitally silent (every sample ~0).
    """

    path: str
    duration_s: float
    feature_config: FeatureConfig
    reference_db: float
    annotation: Optional[Annotation] = None
    digital_silence: bool = False

    @property
    def frame_hop_s(self) -> float:
        """Seconds between feature frames (the hop as rounded to whole samples)."""
        return self.feature_config.hop_length / self.feature_config.sample_rate


@dataclass
class DiscoveryResult:
    """Everything the pipeline found, per window and per unit occurrence.

    Attributes:
        recordings: one `RecordingInfo` per file.
        window_file: (n,) int, index of each window's recording in `recordings`.
        window_start_s, window_end_s: (n,) float, window bounds in seconds.
        embedding: (n, d) float, the model's embedding of each window.
        silence: (n,) float in [0, 1], P(window is silence).
        unit: (n,) int, unit of each window; -1 for silence or noise.
        probability: (n,) float in [0, 1], confidence of each window's unit.
        occurrences: dict of (m,) arrays `file` (int), `start_s`, `end_s`, `unit`,
            `confidence`, `n_windows`: one row per unit occurrence (consecutive windows
            of one unit merged).
        scores: scores against annotations (`nmi`, `v_measure`, `purity`, ...), or None.
        settings: settings and library versions, for the report's footer.
        timings: seconds per pipeline stage.
    """

    recordings: List[RecordingInfo]
    window_file: np.ndarray
    window_start_s: np.ndarray
    window_end_s: np.ndarray
    embedding: np.ndarray
    silence: np.ndarray
    unit: np.ndarray
    probability: np.ndarray
    occurrences: dict
    scores: Optional[dict] = None
    settings: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        """Number of unit ids in use: one more than the largest unit, 0 if none."""
        arrays = [np.asarray(a, dtype=int) for a in (self.unit, self.occurrences["unit"])]
        return max([-1] + [int(a.max()) for a in arrays if a.size]) + 1


_WINDOW_TYPES = {"window_file": int, "window_start_s": float, "window_end_s": float,
                 "silence": float, "unit": int, "probability": float}
_OCCURRENCE_TYPES = {"file": int, "start_s": float, "end_s": float, "unit": int,
                     "confidence": float, "n_windows": int}


def validated(result: DiscoveryResult) -> DiscoveryResult:
    """`result` with every array as a NumPy array of its type, after checking them.

    Called once by each writer, at the boundary, so the rest of the module can rely
    on shapes and types.

    Raises:
        ParameterError: naming the first array that does not fit.
    """
    missing = [k for k in _OCCURRENCE_TYPES if k not in result.occurrences]
    if missing:
        raise ParameterError(f"Invalid value for `occurrences`: expected arrays "
                             f"{list(_OCCURRENCE_TYPES)}, missing {missing}.")
    try:
        arrays = {name: np.asarray(getattr(result, name), dtype=kind).reshape(-1)
                  for name, kind in _WINDOW_TYPES.items()}
        occurrences = {name: np.asarray(result.occurrences[name], dtype=kind).reshape(-1)
                       for name, kind in _OCCURRENCE_TYPES.items()}
        embedding = np.asarray(result.embedding, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"Invalid value in the discovery result: expected numeric "
                             f"arrays ({error}).") from None
    n = len(arrays["window_file"])
    for name, values in arrays.items():
        if len(values) != n:
            raise ParameterError(f"Invalid value for `{name}`: expected {n} values (one per "
                                 f"window), received {len(values)}.")
    if embedding.ndim != 2 or len(embedding) != n:
        raise ParameterError(f"Invalid value for `embedding`: expected shape ({n}, d), "
                             f"received {embedding.shape}.")
    lengths = {name: len(values) for name, values in occurrences.items()}
    if len(set(lengths.values())) > 1:
        raise ParameterError(f"Invalid value for `occurrences`: expected arrays of one "
                             f"length, received {lengths}.")
    n_files = len(result.recordings)
    for name, files in (("window_file", arrays["window_file"]),
                        ("occurrences['file']", occurrences["file"])):
        if len(files) and (files.min() < 0 or files.max() >= n_files):
            raise ParameterError(f"Invalid value for `{name}`: expected indices in "
                                 f"[0, {n_files - 1}], received {files.min()}..{files.max()}.")
    return dataclasses.replace(result, embedding=embedding, occurrences=occurrences, **arrays)


def occurrence_rows(result: DiscoveryResult, recording_index: Optional[int] = None):
    """Occurrences as (file, start_s, end_s, unit, confidence) tuples, in time order."""
    occurrences = result.occurrences
    files = occurrences["file"]
    order = np.lexsort((occurrences["start_s"], files))
    for i in order:
        if recording_index is not None and files[i] != recording_index:
            continue
        yield (int(files[i]), float(occurrences["start_s"][i]),
               float(occurrences["end_s"][i]), int(occurrences["unit"][i]),
               float(occurrences["confidence"][i]))
