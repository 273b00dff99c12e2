"""Samples -> normalised log spectrogram features, frames first: `(n_frames, n_features)`.

Frames are not centred: frame `k` covers samples `[k * hop, k * hop + frame)` and starts
at exactly `k * hop_seconds`. The STFT (Hann window) and mel filter bank are librosa's.

Normalisation makes features independent of recording level. Power is taken to dB,
then each recording is shifted by its own reference level (a high percentile of its
frames' loudest band) and scaled by the dynamic range:

    x = clip((dB - reference_dB) / dynamic_range_dB + 1, 0, 1)

so a recording 20 times quieter (-26 dB) gives the same features, and the model sees
values in [0, 1]. A band limit (`fmin`, `fmax`) keeps low-frequency noise out.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, List, Optional

import librosa
import numpy as np

from discovery import audio
from discovery.config import FeatureConfig, feature_count

# Power floor before taking dB (librosa's `amin` for power).
AMIN = 1e-10
# Percentile of per-frame peak level taken as a recording's reference level: high
# enough to sit in the loud parts of a recording that is mostly silence, below 100 so
# one click does not set it.
REFERENCE_PERCENTILE = 99.5
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
    """

    values: np.ndarray
    energy_db: np.ndarray
    reference_db: float
    n_samples: int
    config: FeatureConfig

    @property
    def duration(self) -> float:
        """Length of the recording in seconds."""
        return self.n_samples / self.config.sample_rate

    @property
    def frame_starts(self) -> np.ndarray:
        """(n_frames,) start time of each frame, in seconds."""
        return np.arange(len(self.values)) * (self.config.hop_length / self.config.sample_rate)


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


def band_power(samples: np.ndarray, config: FeatureConfig,
               filters: Optional[np.ndarray] = None) -> np.ndarray:
    """Band-limited power spectrogram of whole frames of `samples`.

    Args:
        samples: (n_samples,) float32 mono at `config.sample_rate`, at least one frame.
        config: feature settings.
        filters: `band_filters(config)`, passed in to avoid rebuilding it per block.

    Returns:
        (n_frames, n_features) float32 power, n_frames = 1 + (n - frame) // hop.
    """
    # Frames of exactly `frame_length` samples, zero-padded to the FFT size (librosa's
    # stft would frame by n_fft instead, moving frame starts when n_fft > frame).
    frames = librosa.util.frame(samples, frame_length=config.frame_length,
                                hop_length=config.hop_length, axis=0)
    window = librosa.filters.get_window("hann", config.frame_length, fftbins=True)
    spectrum = np.fft.rfft(frames * window.astype(np.float32), n=config.fft_size, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    if config.kind == "logmel":
        if filters is None:
            filters = band_filters(config)
        return power @ filters
    return np.ascontiguousarray(power[:, _linear_bins(config)])


def to_db(power: np.ndarray) -> np.ndarray:
    """Power -> dB, floored at `AMIN`."""
    return (10.0 * np.log10(np.maximum(power, AMIN))).astype(np.float32)


def normalize(power_db: np.ndarray, *, reference_db: float,
              dynamic_range_db: float) -> np.ndarray:
    """Map dB values to [0, 1]: the reference level to 1, `dynamic_range_db` below to 0."""
    scaled = (power_db - np.float32(reference_db)) / np.float32(dynamic_range_db) + 1.0
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def reference_level(frame_peak_db: np.ndarray) -> float:
    """A recording's reference level: a high percentile of its frames' peak dB."""
    return float(np.percentile(frame_peak_db, REFERENCE_PERCENTILE))


def _power_blocks(blocks: Iterable[np.ndarray], config: FeatureConfig) -> Iterator[np.ndarray]:
    """Frame a stream of sample blocks exactly as one array would be framed.

    Yields (n, n_features) power blocks. A stream shorter than one frame is padded
    with zeros to one frame, so every recording has at least one frame.
    """
    frame, hop = config.frame_length, config.hop_length
    filters = band_filters(config)
    carry = np.zeros(0, dtype=np.float32)
    produced = 0
    for block in blocks:
        buffer = np.concatenate([carry, block]) if len(carry) else block
        if len(buffer) < frame:
            carry = buffer
            continue
        n_frames = 1 + (len(buffer) - frame) // hop
        yield band_power(buffer[:(n_frames - 1) * hop + frame], config, filters)
        produced += n_frames
        carry = buffer[n_frames * hop:]
    if produced == 0:
        padded = np.zeros(frame, dtype=np.float32)
        padded[:len(carry)] = carry
        yield band_power(padded, config, filters)


def _first_pass(path, config: FeatureConfig):
    """Frame levels of a whole file, and its dB blocks when they are small enough to keep."""
    peaks: List[np.ndarray] = []
    energies: List[np.ndarray] = []
    kept: Optional[List[np.ndarray]] = []
    kept_size = 0
    n_samples = 0

    def counted(blocks):
        nonlocal n_samples
        for block in blocks:
            n_samples += len(block)
            yield block

    samples = counted(audio.stream(path, sample_rate=config.sample_rate))
    for power in _power_blocks(samples, config):
        power_db = to_db(power)
        peaks.append(power_db.max(axis=1))
        energies.append(to_db(power.sum(axis=1)))
        if kept is not None:
            kept_size += power_db.size
            kept = kept + [power_db] if kept_size <= _REUSE_LIMIT else None
    return np.concatenate(peaks), np.concatenate(energies), kept, n_samples


def iter_features(path, config: FeatureConfig) -> Iterator[np.ndarray]:
    """Stream a file's normalised features in blocks, with bounded memory.

    Two passes over the audio: the first finds the recording's reference level, the
    second normalises (files short enough to keep in memory are decoded once).

    Yields:
        (n, n_features) float32 blocks; their concatenation equals
        `extract(path, config).values`.
    """
    peaks, _, kept, _ = _first_pass(path, config)
    reference = reference_level(peaks)
    blocks = kept if kept is not None else (
        to_db(p) for p in _power_blocks(audio.stream(path, sample_rate=config.sample_rate),
                                        config))
    for power_db in blocks:
        yield normalize(power_db, reference_db=reference,
                        dynamic_range_db=config.dynamic_range_db)


def extract(path, config: FeatureConfig) -> Features:
    """Read an audio file and compute its normalised features.

    Args:
        path: an audio file (see `discovery.audio`).
        config: feature settings.

    Returns:
        `Features` with values (n_frames, n_features), frame energies and levels.

    Raises:
        AudioError: the file cannot be read (see `discovery.audio.stream`).
    """
    peaks, energies, kept, n_samples = _first_pass(path, config)
    reference = reference_level(peaks)
    if kept is None:
        values = np.concatenate(list(iter_features(path, config)))
    else:
        values = normalize(np.concatenate(kept), reference_db=reference,
                           dynamic_range_db=config.dynamic_range_db)
    return Features(values, energies, reference, n_samples, config)


def compute(samples: np.ndarray, config: FeatureConfig) -> Features:
    """Features of samples already in memory (float32 mono at `config.sample_rate`)."""
    samples = np.asarray(samples, dtype=np.float32)
    power = np.concatenate(list(_power_blocks([samples], config)))
    power_db = to_db(power)
    reference = reference_level(power_db.max(axis=1))
    values = normalize(power_db, reference_db=reference,
                       dynamic_range_db=config.dynamic_range_db)
    return Features(values, to_db(power.sum(axis=1)), reference, len(samples), config)
