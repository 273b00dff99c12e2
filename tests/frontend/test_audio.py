import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from discovery.frontend import audio
from discovery.errors import AudioError, ParameterError


@pytest.mark.parametrize("extension,subtype", [
    ("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III"),
])
def test_reads_every_format(tmp_path, digit_clip, extension, subtype):
    original, rate = soundfile.read(digit_clip, dtype="float32")
    path = tmp_path / f"clip.{extension}"
    soundfile.write(path, original, rate, subtype=subtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", audio.AudioWarning)  # complete: no warning
        samples = audio.load(path, sample_rate=rate)
    assert samples.dtype == np.float32 and samples.ndim == 1
    # Lossy codecs pad and delay a little; the content must still match.
    assert abs(len(samples) - len(original)) <= 0.1 * rate
    n = min(len(samples), len(original))
    if extension in ("wav", "flac"):
        np.testing.assert_allclose(samples[:n], original[:n], atol=1e-4)
    else:
        lag = int(np.argmax(np.correlate(samples[:n], original[:n // 2], "valid")))
        aligned = samples[lag:lag + n // 2]
        correlation = np.corrcoef(aligned, original[:len(aligned)])[0, 1]
        assert correlation > 0.9


def test_stereo_is_mixed_to_mono(tmp_path, rng):
    left = rng.standard_normal(4000).astype(np.float32) * 0.1
    right = -0.5 * left
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    samples = audio.load(path, sample_rate=8000)
    np.testing.assert_allclose(samples, (left + right) / 2, atol=1e-6)


def test_resamples_to_the_configured_rate(digit_clip):
    native = audio.info(digit_clip)
    samples = audio.load(digit_clip, sample_rate=16000)
    assert native.sample_rate == 8000
    assert abs(len(samples) - 2 * native.n_samples) <= 2


def test_streamed_blocks_join_to_the_whole_file(annotated_recording):
    whole = audio.load(annotated_recording, sample_rate=16000)
    blocks = list(audio.stream(annotated_recording, sample_rate=16000, block_seconds=1.7))
    assert len(blocks) > 40
    # Memory is bounded by the block, not the file (soxr may carry a little over).
    assert max(len(b) for b in blocks) <= 2 * 1.7 * 16000
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-5)


def test_finds_audio_in_folders_recursively(tmp_path, digit_clip):
    (tmp_path / "a" / "b").mkdir(parents=True)
    soundfile.write(tmp_path / "a" / "b" / "x.flac", np.zeros(100), 8000)
    soundfile.write(tmp_path / "a" / "y.wav", np.zeros(100), 8000)
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    found = audio.find_audio_files([tmp_path, tmp_path / "a" / "y.wav"])
    assert [p.name for p in found] == ["x.flac", "y.wav"]


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: no such file"):
        audio.load(tmp_path / "missing.wav", sample_rate=8000)
    with pytest.raises(AudioError, match="missing.wav: no such file or folder"):
        audio.find_audio_files([tmp_path / "missing.wav"])


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError, match=r"empty.wav: the file is empty"):
        audio.load(path, sample_rate=8000)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "x.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(AudioError, match=r"x.wav: not a readable audio file"):
        audio.load(path, sample_rate=8000)


def test_header_without_samples(tmp_path):
    path = tmp_path / "silent.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(AudioError, match="silent.wav: the file holds no audio samples"):
        audio.load(path, sample_rate=8000)


def test_nan_samples(tmp_path):
    samples = np.zeros(8000, dtype=np.float32)
    samples[1234] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, samples, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: sample 1234 is NaN"):
        audio.load(path, sample_rate=8000)


def test_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError):
        audio.load(tmp_path / "missing.wav", sample_rate=8000)


@pytest.mark.parametrize("rate", [0, -8000, 8000.5, True, 384_001, 10**12])
def test_invalid_sample_rate(digit_clip, rate):
    with pytest.raises(ParameterError, match=rf"`sample_rate`: expected an integer in "
                                             rf"\[1, 384000\], received {rate!r}\."):
        audio.load(digit_clip, sample_rate=rate)


def _truncated(tmp_path, subtype, keep_seconds):
    """A 10 s 8 kHz WAV whose bytes stop `keep_seconds` into the data."""
    path = tmp_path / "truncated.wav"
    samples = np.sin(np.arange(80_000) * 0.05).astype(np.float32) * 0.5
    soundfile.write(path, samples, 8000, subtype=subtype)
    data = path.read_bytes()
    header = data.index(b"data") + 8
    width = len(data[header:]) // 80_000
    path.write_bytes(data[:header + int(keep_seconds * 8000) * width])
    return path, samples


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_truncated_wav_is_read_with_a_warning(tmp_path, subtype):
    path, samples = _truncated(tmp_path, subtype, 0.06)
    with pytest.warns(audio.AudioWarning, match=r"truncated.wav: truncated: the header "
                      r"promises 10.000 s \(80000 samples\) but the file holds 0.060 s "
                      r"\(480 samples\)") as record:
        read = audio.load(path, sample_rate=8000)
    messages = [str(w.message) for w in record if w.category is audio.AudioWarning]
    assert len(messages) == 1 and "\n" not in messages[0]
    np.testing.assert_allclose(read, samples[:480], atol=1e-4)


def test_a_wav_written_as_a_stream_is_not_truncated(tmp_path, digit_clip):
    # Writers that stream leave the data size unset (0xFFFFFFFF): nothing is promised.
    path = tmp_path / "streamed.wav"
    data = bytearray(digit_clip.read_bytes())
    size = data.index(b"data") + 4
    data[size:size + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", audio.AudioWarning)
        assert len(audio.load(path, sample_rate=8000)) == audio.info(digit_clip).n_samples


# -- read_span --------------------------------------------------------------------

def test_read_span_at_the_files_rate_is_a_slice(digit_clip):
    whole, rate = soundfile.read(digit_clip, dtype="float32")
    samples, span_rate = audio.read_span(digit_clip, start_s=0.1, end_s=0.3)
    assert span_rate == rate == 8000 and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, whole[800:2400])


@pytest.mark.parametrize("clip, rate", [
    ("fsdd/9_jackson_0.wav", 16000),  # 8 -> 16 kHz
    ("bfsongrepo/gy6or6_baseline_230312_0811.159.wav", 16000),  # 32 -> 16 kHz
    ("fsdd/9_jackson_0.wav", 22050),  # rates with a small gcd: a coarse common grid
])
def test_read_span_resampled_equals_the_whole_file(clip, rate):
    """A span lands on the whole file's sample grid, its filter settled, at the start
    and at the end of the file too."""
    path = Path(__file__).resolve().parents[2] / "data" / clip
    whole = audio.load(path, sample_rate=rate)
    n = len(whole)
    for first, last in ((0, 700), (n // 3 + 17, n // 3 + 2000), (n - 900, n)):
        samples, span_rate = audio.read_span(path, start_s=first / rate, end_s=last / rate,
                                             sample_rate=rate)
        assert span_rate == rate
        assert abs(len(samples) - (last - first)) <= 1, first
        m = min(len(samples), last - first)
        np.testing.assert_allclose(samples[:m], whole[first:first + m], atol=1e-4,
                                   err_msg=f"{first}")


def test_read_span_decodes_only_the_span(monkeypatch, annotated_recording):
    frames = []
    read = soundfile.SoundFile.read

    def counting(self, frames_wanted=-1, *args, **kwargs):
        frames.append(frames_wanted)
        return read(self, frames_wanted, *args, **kwargs)

    monkeypatch.setattr(soundfile.SoundFile, "read", counting)
    samples, rate = audio.read_span(annotated_recording, start_s=40.0, end_s=41.0,
                                    sample_rate=16000)
    assert rate == 16000 and len(samples) == 16000
    # One second and 0.05 s of context either side, of an 85 s file at 8 kHz.
    assert len(frames) == 1 and abs(frames[0] - 1.1 * 8000) <= 2


def test_read_span_averages_channels_and_stops_at_the_end(tmp_path, rng):
    left = rng.standard_normal(4000).astype(np.float32) * 0.1
    right = -0.5 * left
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    samples, _ = audio.read_span(path, start_s=0.25, end_s=9.0)
    np.testing.assert_allclose(samples, ((left + right) / 2)[2000:], atol=1e-6)
    assert len(audio.read_span(path, start_s=2.0, end_s=3.0, sample_rate=16000)[0]) == 0
    assert len(audio.read_span(path, start_s=0.1, end_s=0.1)[0]) == 0


def test_read_span_of_unreadable_files(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: no such file"):
        audio.read_span(tmp_path / "missing.wav", start_s=0, end_s=1)
    text = tmp_path / "x.wav"
    text.write_text("this is not audio\n")
    with pytest.raises(AudioError, match=r"x.wav: cannot read a span of it \("):
        audio.read_span(text, start_s=0, end_s=1)
    samples = np.zeros(8000, dtype=np.float32)
    samples[1234] = np.nan
    damaged = tmp_path / "nan.wav"
    soundfile.write(damaged, samples, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: sample 1234 is NaN"):
        audio.read_span(damaged, start_s=0.1, end_s=0.2)
    assert len(audio.read_span(damaged, start_s=0.5, end_s=0.6)[0]) == 800


@pytest.mark.parametrize("change, message", [
    ({"start_s": -0.1}, r"`start_s`: expected a number >= 0, received -0.1\."),
    ({"start_s": float("nan")}, r"`start_s`: expected a number >= 0, received nan\."),
    ({"end_s": 0.1}, r"`end_s`: expected a number >= 0.2, received 0.1\."),
    ({"end_s": "1"}, r"`end_s`: expected a number >= 0.2, received '1'\."),
    ({"sample_rate": 0}, r"`sample_rate`: expected None or an integer in \[1, 384000\], "
                         r"received 0\."),
    ({"sample_rate": 16000.0}, r"`sample_rate`: expected None or an integer"),
])
def test_read_span_refuses_bad_arguments(digit_clip, change, message):
    arguments = {"start_s": 0.2, "end_s": 0.4, **change}
    with pytest.raises(ParameterError, match=message):
        audio.read_span(digit_clip, **arguments)
