"""Samples -> normalised log spectrogram features, frames first: `(n_frames, n_features)`.

Frames are not centred: frame `k` covers samples `[k * hop, k * hop + frame)` and starts
at exactly `k * hop_seconds`. The STFT (Hann window) and mel filter bank are librosa's.

Normalisation makes features independent of recording level. Power is taken to dB,
then each recording is shifted by its own reference level (a high percentile of its
frames' loudest band) and scaled by the dynamic range:

    x = clip((dB - reference_dB) / dynamic_range_dB + 1, 0, 1)

so a recording 20 times quieter (-26 dB) gives the same features, and the model sees
values in [0, 1]. A band limit (`fmin`, `fmax`) keeps low-frequency noise out.

Digital silence is the exception to level independence: a frame whose samples are
quieter than one step of 16-bit audio (`DIGITAL_SILENCE_DB`, measured on the samples, so
it does not depend on the spectrogram settings) holds no signal, so its features are 0
and it takes no part in the reference level; and the reference never sits below the
level of a faint sine (`reference_floor`). A file of zeros, or of rounding noise, is
therefore all 0, not stretched up to the loudest level.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterable, Iterator, List, NamedTuple, Optional

import librosa
import numpy as np

from discovery.frontend import audio
from discovery.frontend.audio import PathLike
from discovery.config import FeatureConfig, feature_count

# Power floor before taking dB (librosa's `amin` for power).
AMIN = 1e-10
# Percentile of per-frame peak level taken as a recording's reference level: high
# enough to sit in the loud parts of a recording that is mostly silence, below 100 so
# one click does not set it.
REFERENCE_PERCENTILE = 99.5
# Frames whose samples have an RMS level below this, in dB relative to full scale
# (amplitude 1.0), are digital silence. One step of 16-bit audio is
# 20 * log10(2 ** -15) = -90.3 dB: a 16-bit recording carries nothing quieter than its own
# rounding, so such a frame holds zeros, rounding or dither, never a signal. Measured on
# the samples, not the spectrogram, so it does not depend on n_fft, the window or the mel
# filters. The quietest frame in the shipped data (FSDD's background) is at -83.8 dB.
# A 24-bit or float recording can hold real sound below it (a very quiet hydrophone):
# such frames count as silence too, so raise the gain of such recordings first.
DIGITAL_SILENCE_DB = -90.0
# The reference level is never lower than the peak band level of a 1 kHz sine whose RMS
# is this many dB above `DIGITAL_SILENCE_DB` (-80 dB, about three 16-bit steps): faint
# noise over digital silence stays faint instead of mapping to 1. Kept low so that level
# independence holds for quiet recordings: the quietest reference in the shipped data is
# 32 dB above this floor.
REFERENCE_FLOOR_MARGIN_DB = 10.0
# Decoded feature blocks kept from the first pass for reuse, in frames x features.
_REUSE_LIMIT = 16_000_000


@dataclasses.dataclass
class Features:
    """Features of one recording with the per-frame levels silence detection needs.

    Attributes:
        values: (n_frames, n_features) float32 in [0, 1], normalised.
        energy_db: (n_frames,) float32, band-limited frame energy in dB.
        reference_db: the level mapped to 1, in dB.
        n_samples: length of the resampled recording, in samples.
        config: the settings that produced them.
        level_db: (n_frames,) float32 RMS level of each frame's samples, in dB relative
            to full scale, floored at -100 dB (`frame_level_db`); None when unknown,
            and then no frame counts as digital silence.
    """

    values: np.ndarray
    energy_db: np.ndarray
    reference_db: float
    n_samples: int
    config: FeatureConfig
    level_db: Optional[np.ndarray] = None

    @property
    def duration(self) -> float:
        """Length of the recording in seconds."""
        return self.n_samples / self.config.sample_rate

    @property
    def frame_starts(self) -> np.ndarray:
        """(n_frames,) start time of each frame, in seconds."""
        return np.arange(len(self.values)) * (self.config.hop_length / self.config.sample_rate)

    @property
    def digital_silence(self) -> np.ndarray:
        """(n_frames,) bool: the frame is below `DIGITAL_SILENCE_DB` (see `level_db`)."""
        if self.level_db is None:
            return np.zeros(len(self.values), dtype=bool)
        return is_digital_silence(self.level_db)


def band_filters(config: FeatureConfig) -> Optional[np.ndarray]:
    """Mel filter bank `(n_fft // 2 + 1, n_mels)`, or None for linear bins."""
    if config.kind != "logmel":
        return None
    return librosa.filters.mel(sr=config.sample_rate, n_fft=config.fft_size,
                               n_mels=config.n_mels, fmin=config.fmin,
                               fmax=config.upper_frequency).T.astype(np.float32)


def _linear_bins(config: FeatureConfig) -> slice:
    resolution = config.sample_rate / config.fft_size
    low = int(np.ceil(config.fmin / resolution - 1e-9))
    return slice(low, low + feature_count(config))


def _frames(samples: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(n_frames, frame_length) view of the whole frames of `samples`, frame k starting
    at sample k * hop. NumPy's sliding window rather than `librosa.util.frame`: the same
    view, but importing librosa.util compiles its numba kernels, which made the first run
    after an install take 18 s longer."""
    return np.lib.stride_tricks.sliding_window_view(
        samples, config.frame_length)[::config.hop_length]


def band_power(samples: np.ndarray, config: FeatureConfig,
               filters: Optional[np.ndarray] = None) -> np.ndarray:
    """Band-limited power spectrogram of whole frames of `samples`.

    Args:
        samples: (n_samples,) float32 mono at `config.sample_rate`, at least one frame.
        config: feature settings.
        filters: `band_filters(config)`, passed in to avoid rebuilding it per block.
            Defaults to None: built here.

    Returns:
        (n_frames, n_features) float32 power, n_frames = 1 + (n - frame) // hop.
    """
    # Frames of exactly `frame_length` samples, zero-padded to the FFT size (librosa's
    # stft would frame by n_fft instead, moving frame starts when n_fft > frame).
    frames = _frames(samples, config)
    window = librosa.filters.get_window("hann", config.frame_length, fftbins=True)
    spectrum = np.fft.rfft(frames * window.astype(np.float32), n=config.fft_size, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    if config.kind == "logmel":
        if filters is None:
            filters = band_filters(config)
        # In float64, rounded once: float32 BLAS sums in an order that follows its
        # thread count, so the same file gave features 1 ulp apart in a one-thread
        # worker and here, enough for UMAP to place segments differently.
        return (power.astype(np.float64) @ filters.astype(np.float64)).astype(np.float32)
    return np.ascontiguousarray(power[:, _linear_bins(config)])


def frame_level_db(samples: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """RMS level of the samples of each whole frame, independent of the FFT settings.

    Args:
        samples: (n_samples,) float32 mono at `config.sample_rate`, at least one frame.
        config: feature settings (frame and hop lengths).

    Returns:
        (n_frames,) float32 level in dB relative to full scale (amplitude 1.0), floored
        at -100 dB; frames as in `band_power`.
    """
    frames = _frames(samples, config)
    squares = np.einsum("ij,ij->i", frames, frames, dtype=np.float64)
    return to_db(squares / config.frame_length)


def is_digital_silence(level_db: np.ndarray) -> np.ndarray:
    """(n_frames,) bool: frames quieter than `DIGITAL_SILENCE_DB` (see `frame_level_db`)."""
    return np.asarray(level_db) < DIGITAL_SILENCE_DB


@functools.lru_cache(maxsize=32)
def reference_floor(config: FeatureConfig) -> float:
    """The lowest reference level, in the dB of `config`'s band power.

    Band power depends on the FFT size, the window and the filters, so the floor is
    calibrated with them: the peak band level of a 1 kHz sine (the band's centre when
    1 kHz lies outside [fmin, fmax]) whose RMS is `REFERENCE_FLOOR_MARGIN_DB` above
    `DIGITAL_SILENCE_DB`.

    Args:
        config: feature settings.

    Returns:
        The floor in dB, comparable with `reference_level`.
    """
    frequency = 1000.0
    if not config.fmin < frequency < config.upper_frequency:
        frequency = (config.fmin + config.upper_frequency) / 2
    rms_db = DIGITAL_SILENCE_DB + REFERENCE_FLOOR_MARGIN_DB
    amplitude = np.sqrt(2.0) * 10.0 ** (rms_db / 20.0)
    time = np.arange(config.frame_length) / config.sample_rate
    sine = (amplitude * np.sin(2 * np.pi * frequency * time)).astype(np.float32)
    return float(to_db(band_power(sine, config)).max())


def to_db(power: np.ndarray) -> np.ndarray:
    """Power -> dB, floored at `AMIN`.

    Equal, within 1e-5 dB, to `librosa.power_to_db(power, ref=1.0, amin=AMIN,
    top_db=None)` (tests/frontend/test_features.py checks it), but written out here:
    calling `power_to_db` imports `librosa.core`, whose numba kernels compile on the
    first run after an install. Measured with an empty NUMBA_CACHE_DIR, the librosa
    calls of this module took 2.3-3.2 s to start, 9.5-13.5 s with `power_to_db`; with
    the cache warm, `power_to_db` still added 0.3-0.9 s to every run.

    Args:
        power: array of power values >= 0, any shape.

    Returns:
        float32 array of the same shape, `10 log10(max(power, AMIN))`.
    """
    return (10.0 * np.log10(np.maximum(power, AMIN))).astype(np.float32)


def normalize(power_db: np.ndarray, *, reference_db: float, dynamic_range_db: float,
              digital_silence: Optional[np.ndarray] = None) -> np.ndarray:
    """Map dB values to [0, 1]: the reference level to 1, `dynamic_range_db` below to 0.

    Args:
        power_db: (n_frames, n_features) band power in dB.
        reference_db: the level mapped to 1, in dB.
        dynamic_range_db: float > 0. dB below the reference mapped to 0.
        digital_silence: (n_frames,) bool, frames set to 0 whatever their level
            (see `is_digital_silence`). Defaults to None: no frame.

    Returns:
        (n_frames, n_features) float32 in [0, 1].
    """
    scaled = (power_db - np.float32(reference_db)) / np.float32(dynamic_range_db) + 1.0
    values = np.clip(scaled, 0.0, 1.0).astype(np.float32)
    if digital_silence is not None:
        values[np.asarray(digital_silence, dtype=bool)] = 0.0
    return values


def reference_level(frame_peak_db: np.ndarray, *,
                    digital_silence: Optional[np.ndarray] = None,
                    floor_db: Optional[float] = None) -> float:
    """A recording's reference level: a high percentile of its frames' peak dB.

    Args:
        frame_peak_db: (n_frames,) each frame's loudest band, in dB.
        digital_silence: (n_frames,) bool, frames left out. Defaults to None: none.
        floor_db: the lowest level returned (`reference_floor`). Defaults to None: no
            floor.

    Returns:
        The level, in dB: `floor_db` when every frame is digital silence.
    """
    peaks = np.asarray(frame_peak_db)
    if digital_silence is not None:
        peaks = peaks[~np.asarray(digital_silence, dtype=bool)]
    level = float(np.percentile(peaks, REFERENCE_PERCENTILE)) if peaks.size else -np.inf
    if floor_db is not None:
        level = max(level, float(floor_db))
    return level


def _frame_aligned(blocks: Iterable[np.ndarray],
                   config: FeatureConfig) -> Iterator[np.ndarray]:
    """Regroup a stream of sample blocks so that framing each piece frames the whole.

    Yields sample arrays, each holding whole frames, whose frames joined are the frames
    of the concatenated stream. A stream shorter than one frame is padded with zeros
    to one frame, so every recording has at least one frame.
    """
    frame, hop = config.frame_length, config.hop_length
    carry = np.zeros(0, dtype=np.float32)
    produced = 0
    for block in blocks:
        buffer = np.concatenate([carry, block]) if len(carry) else block
        if len(buffer) < frame:
            carry = buffer
            continue
        n_frames = 1 + (len(buffer) - frame) // hop
        yield buffer[:(n_frames - 1) * hop + frame]
        produced += n_frames
        carry = buffer[n_frames * hop:]
    if produced == 0:
        padded = np.zeros(frame, dtype=np.float32)
        padded[:len(carry)] = carry
        yield padded


def _power_blocks(blocks: Iterable[np.ndarray], config: FeatureConfig) -> Iterator[np.ndarray]:
    """Frame a stream of sample blocks exactly as one array would be framed.

    Yields (n, n_features) power blocks (see `_frame_aligned`).
    """
    filters = band_filters(config)
    for samples in _frame_aligned(blocks, config):
        yield band_power(samples, config, filters)


class _FirstPass(NamedTuple):
    """What the first pass over a file finds (see `_first_pass`)."""

    peak_db: np.ndarray  # (n_frames,) each frame's loudest band, in dB
    energy_db: np.ndarray  # (n_frames,) band-limited frame energy, in dB
    level_db: np.ndarray  # (n_frames,) RMS level of the samples (`frame_level_db`)
    kept: Optional[List[np.ndarray]]  # the dB blocks, or None when too large to keep
    n_samples: int


def _first_pass(path: PathLike, config: FeatureConfig) -> _FirstPass:
    """Frame levels of a whole file, and its dB blocks when they are small enough to keep."""
    peaks: List[np.ndarray] = []
    energies: List[np.ndarray] = []
    levels: List[np.ndarray] = []
    kept: Optional[List[np.ndarray]] = []
    kept_size = 0
    n_samples = 0

    def counted(blocks):
        nonlocal n_samples
        for block in blocks:
            n_samples += len(block)
            yield block

    filters = band_filters(config)
    samples = counted(audio.stream(path, sample_rate=config.sample_rate))
    for piece in _frame_aligned(samples, config):
        power = band_power(piece, config, filters)
        power_db = to_db(power)
        peaks.append(power_db.max(axis=1))
        energies.append(to_db(power.sum(axis=1)))
        levels.append(frame_level_db(piece, config))
        if kept is not None:
            kept_size += power_db.size
            kept = kept + [power_db] if kept_size <= _REUSE_LIMIT else None
    return _FirstPass(np.concatenate(peaks), np.concatenate(energies),
                      np.concatenate(levels), kept, n_samples)


def _reference(peaks: np.ndarray, silent: np.ndarray, config: FeatureConfig) -> float:
    return reference_level(peaks, digital_silence=silent, floor_db=reference_floor(config))


def _normalized_blocks(path: PathLike, config: FeatureConfig, *, reference: float,
                       silent: np.ndarray, kept: Optional[List[np.ndarray]]
                       ) -> Iterator[np.ndarray]:
    """The second pass: normalised feature blocks, from the kept dB blocks of the first
    pass or, for files too long to keep, from the audio decoded once more."""
    blocks = kept if kept is not None else (
        to_db(p) for p in _power_blocks(audio.stream(path, sample_rate=config.sample_rate),
                                        config))
    start = 0
    for power_db in blocks:
        stop = start + len(power_db)
        yield normalize(power_db, reference_db=reference,
                        dynamic_range_db=config.dynamic_range_db,
                        digital_silence=silent[start:stop])
        start = stop


def iter_features(path: PathLike, config: FeatureConfig) -> Iterator[np.ndarray]:
    """Stream a file's normalised features in blocks, with bounded memory.

    Two passes over the audio: the first finds the recording's reference level, the
    second normalises (files short enough to keep in memory are decoded once).

    Args:
        path: an audio file (see `discovery.audio`).
        config: feature settings.

    Yields:
        (n, n_features) float32 blocks; their concatenation equals
        `extract(path, config).values`.
    """
    peaks, _, levels, kept, _ = _first_pass(path, config)
    silent = is_digital_silence(levels)
    yield from _normalized_blocks(path, config, reference=_reference(peaks, silent, config),
                                  silent=silent, kept=kept)


def extract(path: PathLike, config: FeatureConfig) -> Features:
    """Read an audio file and compute its normalised features.

    Args:
        path: an audio file (see `discovery.audio`).
        config: feature settings.

    Returns:
        `Features` with values (n_frames, n_features), frame energies and levels.

    Raises:
        AudioError: the file cannot be read (see `discovery.audio.stream`).
    """
    peaks, energies, levels, kept, n_samples = _first_pass(path, config)
    silent = is_digital_silence(levels)
    reference = _reference(peaks, silent, config)
    if kept is None:
        # A long file: decoded once more, written straight into one array, so memory
        # holds the features once (a list of blocks and their concatenation held them
        # twice: 740 MB at the peak for 4 hours at 64 bands).
        values = np.empty((len(peaks), feature_count(config)), dtype=np.float32)
        start = 0
        for block in _normalized_blocks(path, config, reference=reference, silent=silent,
                                        kept=None):
            values[start:start + len(block)] = block
            start += len(block)
    else:
        values = normalize(np.concatenate(kept), reference_db=reference,
                           dynamic_range_db=config.dynamic_range_db, digital_silence=silent)
    return Features(values, energies, reference, n_samples, config, levels)


def compute(samples: np.ndarray, config: FeatureConfig) -> Features:
    """Features of samples already in memory, as `extract` computes them from a file.

    Args:
        samples: (n_samples,) float mono at `config.sample_rate`; cast to float32.
        config: feature settings.

    Returns:
        `Features` with values (n_frames, n_features), frame energies and levels.
    """
    samples = np.asarray(samples, dtype=np.float32)
    pieces = list(_frame_aligned([samples], config))
    filters = band_filters(config)
    power = np.concatenate([band_power(piece, config, filters) for piece in pieces])
    levels = np.concatenate([frame_level_db(piece, config) for piece in pieces])
    power_db = to_db(power)
    silent = is_digital_silence(levels)
    reference = _reference(power_db.max(axis=1), silent, config)
    values = normalize(power_db, reference_db=reference,
                       dynamic_range_db=config.dynamic_range_db, digital_silence=silent)
    return Features(values, to_db(power.sum(axis=1)), reference, len(samples), config,
                    levels)
