"""Audio files -> float32 mono samples at the configured sample rate.

wav, flac, ogg and mp3 are read with soundfile (libsndfile); anything libsndfile cannot
open is handed to audioread (ffmpeg, GStreamer or Core Audio, whichever is installed).
Long files are streamed in blocks: `stream` holds one block at a time, so memory does
not grow with the length of the recording; `read_span` seeks to one span of a file and
decodes that alone.

A truncated file (a copy or a recording cut short) is read as far as it goes, with an
`AudioWarning` naming the file and the length its header promised: libsndfile reports a
truncated WAV as a shorter file without a word, so the RIFF header is checked too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
import warnings
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile
import soxr

from discovery.config import MAX_SAMPLE_RATE
from discovery.errors import AudioError, AudioWarning, ParameterError

PathLike = Union[str, os.PathLike]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# Seconds of audio held in memory at once while streaming.
DEFAULT_BLOCK_SECONDS = 30.0
# Audio read either side of a span that is resampled, in seconds: soxr's filter
# settles within it, so the span's samples equal the whole file's.
_SPAN_CONTEXT_S = 0.05


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file holds, before any resampling."""

    path: str
    sample_rate: int
    channels: int
    n_samples: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sample_rate


def find_audio_files(inputs: Sequence[PathLike]) -> List[Path]:
    """Expand files and folders (searched recursively) into a sorted list of audio files.

    Args:
        inputs: paths of files or folders. A file is taken whatever its extension; a
            folder contributes every file whose extension is in `AUDIO_EXTENSIONS`.

    Returns:
        Paths in the order given, each folder's files sorted, without duplicates.

    Raises:
        AudioError: a path does not exist, or a folder holds no audio file.
    """
    found: List[Path] = []
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not files:
                raise AudioError(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) "
                                 "in this folder.")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise AudioError(f"{path}: no such file or folder.")
    seen, unique = set(), []
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file.")
    if not path.is_file():
        raise AudioError(f"{path}: not a file.")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes).")


def info(path: PathLike) -> AudioInfo:
    """Sample rate, channels and length of an audio file, without decoding it all.

    Raises:
        AudioError: the file is missing, empty or not a readable audio file.
    """
    path = Path(path)
    _check_file(path)
    try:
        with soundfile.SoundFile(str(path)) as handle:
            n_samples = handle.frames
            # Some mp3 headers carry no length: count by decoding.
            if n_samples <= 0 or n_samples >= 2**62:
                n_samples = sum(len(block) for block in
                                handle.blocks(blocksize=1 << 16, dtype="float32"))
            return AudioInfo(str(path), handle.samplerate, handle.channels, n_samples)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        reason = _libsndfile_reason(error)
    with _open_audioread(path, reason) as handle:
        n_samples = int(round(handle.duration * handle.samplerate))
        return AudioInfo(str(path), handle.samplerate, handle.channels, n_samples)


def _open_audioread(path: Path, reason: str):
    """Open with the fallback decoder; `reason` is why libsndfile could not."""
    import audioread  # imported lazily: only needed for formats libsndfile lacks

    try:
        return audioread.audio_open(str(path))
    except (audioread.DecodeError, OSError, EOFError):
        raise AudioError(f"{path}: not a readable audio file ({reason}); expected "
                         f"{', '.join(AUDIO_EXTENSIONS)}.") from None


def _libsndfile_reason(error: Exception) -> str:
    text = getattr(error, "error_string", None) or str(error)
    return text.strip().rstrip(".") or type(error).__name__


def _wav_header_frames(path: Path) -> Optional[int]:
    """Sample frames the RIFF header of a WAV file promises, or None if it does not say.

    libsndfile takes a data chunk that runs past the end of the file to be as long as
    the file, so a truncated WAV looks complete to it; the header still says how long
    it was meant to be.
    """
    with open(path, "rb") as handle:
        riff = handle.read(12)
        if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RIFX") or riff[8:] != b"WAVE":
            return None  # RF64, W64 and others: leave them to libsndfile
        endian = "<" if riff[:4] == b"RIFF" else ">"
        size = os.fstat(handle.fileno()).st_size
        block_align = 0
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk, length = struct.unpack(endian + "4sI", handle.read(8))
            if chunk == b"fmt ":
                fmt = handle.read(min(length, 16))
                if len(fmt) >= 14:
                    block_align = struct.unpack(endian + "H", fmt[12:14])[0]
            elif chunk == b"data":
                # Writers that stream leave the size at 0 or 0xFFFFFFFF.
                if not block_align or length in (0, 0xFFFFFFFF):
                    return None
                return length // block_align
            position += 8 + length + (length & 1)
    return None


def _promised_frames(path: Path, handle: soundfile.SoundFile) -> int:
    """The most sample frames the file's headers promise (0 if they do not say)."""
    frames = handle.frames if 0 < handle.frames < 2**62 else 0
    if handle.format in ("WAV", "WAVEX"):
        frames = max(frames, _wav_header_frames(path) or 0)
    return frames


def _raw_blocks(path: Path, block_seconds: float) -> Iterator[tuple]:
    """Yield (block (n, channels) float32, native sample rate) from the decoder.

    Warns (`AudioWarning`) when the file holds fewer samples than its header promises.
    """
    try:
        handle = soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as error:
        handle, reason = None, _libsndfile_reason(error)
    if handle is not None:
        with handle:
            rate = handle.samplerate
            promised = _promised_frames(path, handle)
            decoded = 0
            block_size = max(1, int(block_seconds * rate))
            for block in handle.blocks(blocksize=block_size, dtype="float32",
                                       always_2d=True):
                decoded += len(block)
                yield block, rate
        if decoded < promised:
            warnings.warn(f"{path}: truncated: the header promises {promised / rate:.3f} s "
                          f"({promised} samples) but the file holds {decoded / rate:.3f} s "
                          f"({decoded} samples); reading what is there.", AudioWarning)
        return
    with _open_audioread(path, reason) as reader:
        rate, channels = reader.samplerate, reader.channels
        for buffer in reader:
            # audioread gives 16-bit little-endian interleaved PCM.
            block = np.frombuffer(buffer, dtype="<i2").astype(np.float32) / 32768.0
            yield block.reshape(-1, channels), rate


def stream(path: PathLike, *, sample_rate: int,
           block_seconds: float = DEFAULT_BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Decode a file block by block as float32 mono at `sample_rate`.

    Channels are averaged; resampling is streamed (soxr, high quality), so joining the
    blocks gives the same samples as resampling the whole file at once.

    Args:
        path: an audio file.
        sample_rate: int in [1, `config.MAX_SAMPLE_RATE`]. Output rate in Hz.
        block_seconds: float > 0. Seconds of input decoded per block. Defaults to 30.

    Yields:
        (n,) float32 arrays; their concatenation is the whole recording.

    Raises:
        AudioError: the file is missing, empty, not audio, holds no samples, or holds
            NaN or infinite samples.
        ParameterError: `sample_rate` or `block_seconds` is invalid.

    Warns:
        AudioWarning: the file is truncated (it holds fewer samples than its header
            says); what it holds is read.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not (
            1 <= sample_rate <= MAX_SAMPLE_RATE):
        raise ParameterError(f"Invalid value for `sample_rate`: expected an integer in "
                             f"[1, {MAX_SAMPLE_RATE}], received {sample_rate!r}.")
    if not block_seconds > 0:
        raise ParameterError(f"Invalid value for `block_seconds`: expected a number > 0, "
                             f"received {block_seconds!r}.")
    path = Path(path)
    _check_file(path)
    resampler = None
    total = 0
    native_rate = None
    try:
        for block, rate in _raw_blocks(path, block_seconds):
            if native_rate is None:
                native_rate = rate
                if rate != sample_rate:
                    resampler = soxr.ResampleStream(rate, sample_rate, 1,
                                                    dtype="float32", quality="HQ")
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if not np.all(np.isfinite(mono)):
                bad = int(np.flatnonzero(~np.isfinite(mono))[0]) + total
                raise AudioError(f"{path}: sample {bad} is NaN or infinite; the file is "
                                 "damaged or was written with invalid values.")
            total += len(mono)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=False)
            if len(mono):
                yield np.ascontiguousarray(mono, dtype=np.float32)
    except soundfile.LibsndfileError as error:
        raise AudioError(f"{path}: decoding failed after {total} samples "
                         f"({error}).") from None
    if total == 0:
        raise AudioError(f"{path}: the file holds no audio samples.")
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if len(tail):
            yield tail.astype(np.float32)


def load(path: PathLike, *, sample_rate: int) -> np.ndarray:
    """Read a whole file as float32 mono at `sample_rate` (see `stream`).

    Returns:
        (n_samples,) float32 array.

    Raises:
        AudioError: the file cannot be read (see `stream`).
        ParameterError: `sample_rate` is invalid.
    """
    return np.concatenate(list(stream(path, sample_rate=sample_rate)))


def read_span(path: PathLike, *, start_s: float, end_s: float,
              sample_rate: Optional[int] = None) -> Tuple[np.ndarray, int]:
    """Read [start_s, end_s) of a file as float32 mono, decoding nothing else of it.

    Seeks and reads with soundfile and averages channels, as `stream` does. When
    resampling, it reads 0.05 s more either side, starting on an instant that
    falls on a sample of both rates (every 1 / gcd(rates) s), so the span lands on the
    whole file's sample grid and soxr's filter settles before it: the samples equal
    those of `load(path, sample_rate=...)` up to float error.

    Args:
        path: an audio file libsndfile reads (wav, flac, ogg, mp3 and others; the
            formats only audioread decodes cannot seek).
        start_s: float >= 0. Start of the span, in seconds.
        end_s: float >= start_s. End of the span, in seconds; cut at the end of the file.
        sample_rate: int in [1, `config.MAX_SAMPLE_RATE`] or None. Output rate in Hz
            (soxr, high quality); None keeps the file's own rate. Defaults to None.

    Returns:
        (samples, rate): (n,) float32 samples k = ceil(start_s * rate) ... of the file at
        `rate` (fewer at the end of the file, none past it), and `rate`, the file's own
        rate when `sample_rate` is None.

    Raises:
        AudioError: the file is missing, empty, not readable by libsndfile, damaged, or
            the span holds NaN or infinite samples.
        ParameterError: `start_s`, `end_s` or `sample_rate` is invalid.
    """
    for name, value, low, expected in (("start_s", start_s, 0.0, "a number >= 0"),
                                       ("end_s", end_s, start_s, f"a number >= {start_s!r}")):
        number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and value >= low):
            raise ParameterError(f"Invalid value for `{name}`: expected {expected}, "
                                 f"received {value!r}.")
    if sample_rate is not None and (
            isinstance(sample_rate, bool) or not isinstance(sample_rate, int)
            or not 1 <= sample_rate <= MAX_SAMPLE_RATE):
        raise ParameterError(f"Invalid value for `sample_rate`: expected None or an integer "
                             f"in [1, {MAX_SAMPLE_RATE}], received {sample_rate!r}.")
    path = Path(path)
    _check_file(path)
    try:
        with soundfile.SoundFile(str(path)) as handle:
            rate = handle.samplerate
            out_rate = rate if sample_rate is None else sample_rate
            # Samples wanted, counted at the output rate; 1e-6 absorbs float error.
            out_first = math.ceil(start_s * out_rate - 1e-6)
            out_last = math.ceil(end_s * out_rate - 1e-6)
            if out_rate == rate:
                first, last = out_first, out_last
            else:
                step = rate // math.gcd(rate, out_rate)
                first = max(0, math.floor((start_s - _SPAN_CONTEXT_S) * rate) // step * step)
                last = math.ceil((end_s + _SPAN_CONTEXT_S) * rate)
            if 0 < handle.frames < 2**62:
                # Some mp3 headers carry no length; elsewhere stop at the end.
                first, last = min(first, handle.frames), min(last, handle.frames)
            handle.seek(first)
            block = handle.read(max(0, last - first), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"{path}: cannot read a span of it ({_libsndfile_reason(error)}); "
                         "spans are read with libsndfile, which must open and seek the "
                         "file.") from None
    mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
    if not np.all(np.isfinite(mono)):
        bad = int(np.flatnonzero(~np.isfinite(mono))[0]) + first
        raise AudioError(f"{path}: sample {bad} is NaN or infinite; the file is damaged or "
                         "was written with invalid values.")
    if out_rate != rate:
        mono = soxr.resample(mono, rate, out_rate, quality="HQ")
        # `first` lies on both grids, so this output index is exact.
        offset = first * out_rate // rate
        mono = mono[max(0, out_first - offset):max(0, out_last - offset)]
    return np.ascontiguousarray(mono, dtype=np.float32), out_rate
