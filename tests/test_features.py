import librosa
import numpy as np
import pytest

from discovery import audio, features
from discovery.config import FEATURE_PRESETS, FeatureConfig, feature_count


def test_logmel_matches_librosa(digit_clip):
    # With n_fft equal to the frame length librosa frames exactly as we do.
    config = FeatureConfig(sample_rate=8000, n_mels=26, frame_seconds=0.032,
                           hop_seconds=0.02, fmin=100, fmax=3800)
    samples = audio.load(digit_clip, sample_rate=8000)
    expected = librosa.feature.melspectrogram(
        y=samples, sr=8000, n_fft=config.fft_size, hop_length=config.hop_length,
        win_length=config.frame_length, center=False, power=2.0, n_mels=26,
        fmin=100, fmax=3800).T
    power = np.concatenate(list(features._power_blocks([samples], config)))
    np.testing.assert_allclose(power, expected, rtol=1e-4, atol=1e-9)
    result = features.compute(samples, config)
    expected_db = librosa.power_to_db(expected, ref=1.0, amin=features.AMIN, top_db=None)
    reference = np.percentile(expected_db.max(axis=1), features.REFERENCE_PERCENTILE)
    np.testing.assert_allclose(
        result.values, np.clip((expected_db - reference) / 80.0 + 1, 0, 1), atol=1e-4)
    assert result.values.shape == (1 + (len(samples) - 256) // 160, 26)


def test_linear_spectrogram_has_256_bins_for_seed_v4(digit_clip):
    config = FEATURE_PRESETS["seed-v4"]
    result = features.extract(digit_clip, config)
    assert result.values.shape[1] == 256 == feature_count(config)
    # Frames of 320 samples zero-padded to 510: magnitudes as numpy's FFT gives them.
    samples = audio.load(digit_clip, sample_rate=8000)
    frames = librosa.util.frame(samples, frame_length=320, hop_length=80, axis=0)
    window = np.hanning(321)[:320]
    expected = np.abs(np.fft.rfft(frames * window, n=510, axis=1)) ** 2
    power = np.concatenate(list(features._power_blocks([samples], config)))
    np.testing.assert_allclose(power, expected, rtol=1e-3, atol=1e-8)
    assert len(power) == 1 + (len(samples) - 320) // 80


def test_band_limit_selects_linear_bins():
    config = FeatureConfig(sample_rate=16000, kind="spectrogram", n_fft=512,
                           fmin=500, fmax=4000)
    # Bins are 31.25 Hz apart: 500 Hz is bin 16, 4000 Hz is bin 128.
    assert feature_count(config) == 128 - 16 + 1


def test_features_do_not_depend_on_recording_level(digit_clip):
    config = FeatureConfig(sample_rate=8000)
    samples = audio.load(digit_clip, sample_rate=8000)
    loud = features.compute(samples, config)
    quiet = features.compute(samples / 20.0, config)
    assert quiet.reference_db == pytest.approx(loud.reference_db - 26.02, abs=0.01)
    np.testing.assert_allclose(quiet.values, loud.values, atol=1e-4)
    assert 0.0 <= loud.values.min() and loud.values.max() <= 1.0


def test_block_framing_equals_whole_framing(rng):
    config = FeatureConfig(sample_rate=8000, n_mels=16)
    samples = rng.standard_normal(8000 * 3).astype(np.float32)
    whole = np.concatenate(list(features._power_blocks([samples], config)))
    cuts = np.sort(rng.choice(len(samples), size=12, replace=False))
    blocks = np.split(samples, cuts)
    pieces = np.concatenate(list(features._power_blocks(blocks, config)))
    np.testing.assert_allclose(pieces, whole, rtol=1e-5, atol=1e-7)


def test_stream_equals_extract(annotated_recording, monkeypatch):
    config = FeatureConfig()
    whole = features.extract(annotated_recording, config)
    # Force the two-pass path that long recordings take.
    monkeypatch.setattr(features, "_REUSE_LIMIT", 1000)
    monkeypatch.setattr(features.audio, "DEFAULT_BLOCK_SECONDS", 5.0)
    streamed = np.concatenate(list(features.iter_features(annotated_recording, config)))
    np.testing.assert_allclose(streamed, whole.values, atol=1e-5)
    assert whole.duration == pytest.approx(84.95, abs=0.01)


def test_a_recording_shorter_than_a_frame_gives_one_frame():
    config = FeatureConfig(sample_rate=8000)
    result = features.compute(np.ones(50, dtype=np.float32) * 0.1, config)
    assert result.values.shape == (1, config.n_mels)
    assert result.n_samples == 50


def test_frame_starts_are_exact(digit_clip):
    config = FeatureConfig(sample_rate=8000, hop_seconds=0.0125)
    result = features.extract(digit_clip, config)
    np.testing.assert_allclose(result.frame_starts[:3], [0.0, 0.0125, 0.025])
