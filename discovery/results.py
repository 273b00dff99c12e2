"""The result of a run and its tables: units.csv, Raven selection tables, Audacity labels.

The pipeline fills a `DiscoveryResult` (one row per window, one row per unit
occurrence, one `RecordingInfo` per file); the writers here and the HTML report in
`report.py` only read it. Every writer writes to a temporary file and renames it
(`discovery.files`), so an interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from discovery import audio
from discovery.annotations import Annotation
from discovery.config import FeatureConfig
from discovery.errors import AudioError, ParameterError
from discovery.files import atomic_path, write_text


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


def _check_recording_index(result: DiscoveryResult, recording_index: int) -> None:
    if not 0 <= recording_index < len(result.recordings):
        raise ParameterError(f"Invalid value for `recording_index`: expected an integer in "
                             f"[0, {len(result.recordings) - 1}], received {recording_index}.")


def write_units_csv(path, result: DiscoveryResult) -> None:
    """Write `units.csv`: `file,start_s,end_s,unit,confidence`, one row per occurrence.

    Rows are sorted by recording, then start time; times have 6 decimals (microseconds),
    confidence 4. `file` is the recording's path as the user gave it.

    Args:
        path: where to write.
        result: the discovery result.

    Raises:
        ParameterError: `result` is inconsistent (see `validated`).
    """
    result = validated(result)
    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["file", "start_s", "end_s", "unit", "confidence"])
            for file, start, end, unit, confidence in occurrence_rows(result):
                writer.writerow([result.recordings[file].path, f"{start:.6f}", f"{end:.6f}",
                                 unit, f"{confidence:.4f}"])


def _nyquist(path: str) -> Optional[float]:
    """Half the file's native sample rate, or None when the file cannot be read."""
    try:
        return audio.info(path).sample_rate / 2
    except AudioError:
        return None


def analysed_band(recording: RecordingInfo) -> Tuple[float, float]:
    """The frequency band the model analysed in one recording.

    From `fmin` to `fmax` (or the Nyquist frequency of the feature sample rate), with
    the upper edge lowered to the file's own Nyquist frequency where the file was
    recorded at a lower rate (resampled up, it holds nothing above it).

    Args:
        recording: the recording, with its `feature_config`.

    Returns:
        (low, high) in Hz.
    """
    config = recording.feature_config
    high = config.upper_frequency
    nyquist = _nyquist(recording.path)
    if nyquist is not None and config.fmin < nyquist < high:
        high = nyquist
    return float(config.fmin), float(high)


def _check_frequency(name: str, value) -> None:
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not (number and np.isfinite(value) and value >= 0):
        raise ParameterError(f"Invalid value for `{name}`: expected a number >= 0 (Hz) or "
                             f"None, received {value!r}.")


def write_raven_table(path, result: DiscoveryResult, recording_index: int, *,
                      low_freq_hz: Optional[float] = None,
                      high_freq_hz: Optional[float] = None) -> None:
    """Write a Raven Pro selection table of one recording's unit occurrences.

    Tab-separated, with the columns `Selection, View, Channel, Begin Time (s),
    End Time (s), Low Freq (Hz), High Freq (Hz), Annotation, Confidence`; every
    selection is on view "Spectrogram 1", channel 1, and its annotation is its unit
    ("unit 3", as in the Audacity labels). `Annotation` is the column Raven readers
    take by default: crowsetta's `Raven` (what vak uses) and opensoundscape read the
    table without options. Open it in Raven with File > Open Selection Table.

    Args:
        path: where to write (Raven expects `.txt`, e.g. `rec_01.Table.1.selections.txt`).
        result: the discovery result.
        recording_index: int. Index of the recording in `result.recordings`.
        low_freq_hz: float >= 0 or None. Lower edge of every selection, in Hz; None
            takes the model's band (see `analysed_band`): the feature config's `fmin`.
            Defaults to None.
        high_freq_hz: float >= low_freq_hz or None. Upper edge, in Hz; None takes the
            model's band: `fmax`, or the Nyquist frequency of the feature sample rate,
            at most the file's own Nyquist frequency. Defaults to None.

    Raises:
        ParameterError: `recording_index` or a frequency is out of range, or `result`
            is inconsistent.
    """
    result = validated(result)
    _check_recording_index(result, recording_index)
    for name, value in (("low_freq_hz", low_freq_hz), ("high_freq_hz", high_freq_hz)):
        if value is not None:
            _check_frequency(name, value)
    if low_freq_hz is None or high_freq_hz is None:
        low, high = analysed_band(result.recordings[recording_index])
        low_freq_hz = low if low_freq_hz is None else low_freq_hz
        high_freq_hz = high if high_freq_hz is None else high_freq_hz
    if high_freq_hz < low_freq_hz:
        raise ParameterError(f"Invalid value for `high_freq_hz`: expected a frequency >= "
                             f"low_freq_hz ({low_freq_hz:g} Hz), received {high_freq_hz!r}.")
    lines = ["Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
             "High Freq (Hz)\tAnnotation\tConfidence"]
    rows = occurrence_rows(result, recording_index)
    for number, (_, start, end, unit, confidence) in enumerate(rows, start=1):
        lines.append(f"{number}\tSpectrogram 1\t1\t{start:.6f}\t{end:.6f}\t"
                     f"{low_freq_hz:.1f}\t{high_freq_hz:.1f}\tunit {unit}\t{confidence:.4f}")
    write_text(path, "\n".join(lines) + "\n")


def write_audacity_labels(path, result: DiscoveryResult, recording_index: int) -> None:
    """Write an Audacity label track of one recording: `start\\tend\\tunit N` per line.

    Import it in Audacity with File > Import > Labels.

    Args:
        path: where to write (`.txt`).
        result: the discovery result.
        recording_index: int. Index of the recording in `result.recordings`.

    Raises:
        ParameterError: `recording_index` is out of range or `result` is inconsistent.
    """
    result = validated(result)
    _check_recording_index(result, recording_index)
    lines = [f"{start:.6f}\t{end:.6f}\tunit {unit}"
             for _, start, end, unit, _ in occurrence_rows(result, recording_index)]
    write_text(path, "".join(line + "\n" for line in lines))
