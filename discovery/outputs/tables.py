"""A run's tables: units.csv, Raven selection tables, Audacity label tracks.

Every writer writes to a temporary file and renames it (`discovery.files`), so an
interrupted run never leaves a half-written output. A `DiscoveryResult` is checked when
it is made, so the writers read it as it is.
"""

from __future__ import annotations

import csv
from typing import Optional, Tuple

import numpy as np

from discovery.errors import AudioError, ParameterError
from discovery.files import atomic_path, write_text
from discovery.frontend import audio
from discovery.result import DiscoveryResult, RecordingInfo


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
    """
    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["file", "start_s", "end_s", "unit", "confidence"])
            for file, start, end, unit, confidence in result.occurrences.rows():
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
        ParameterError: `recording_index` or a frequency is out of range.
    """
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
    rows = result.occurrences.rows(recording_index)
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
        ParameterError: `recording_index` is out of range.
    """
    _check_recording_index(result, recording_index)
    lines = [f"{start:.6f}\t{end:.6f}\tunit {unit}"
             for _, start, end, unit, _ in result.occurrences.rows(recording_index)]
    write_text(path, "".join(line + "\n" for line in lines))
