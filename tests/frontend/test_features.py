import hashlib
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile

from discovery.frontend import audio, features, recording
from discovery.config import FEATURE_PRESETS, FeatureConfig, PipelineConfig, feature_count

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"


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


# Features and frame-level sound of the shipped clips under the shipped models' settings,
# computed before digital silence was handled: the shipped models depend on them. Per
# clip: shape, sum and sum of squares of the features, six cells spread over them, and
# the number and a SHA-256 prefix of the packed frame_sound bits.
UNCHANGED = [
    ("fsdd/0_george_0.wav", "default", (28, 64),
     798.8207809329033, 494.73771117211254,
     (0.4026346, 0.332096, 0.3381057, 0.2945671, 0.3186652, 0.2871556), 24, "7cb72f163a32fea1"),
    ("fsdd/1_jackson_0.wav", "default", (50, 64),
     1382.9621284604073, 893.1926376436238,
     (0.9372931, 0.8479398, 0.6325879, 0.4595299, 0.2313162, 0.0), 42, "4e8f4be863ff260e"),
    ("fsdd/2_lucas_0.wav", "default", (35, 64),
     716.0931742787361, 387.3960442632818,
     (0.3625385, 0.6300192, 0.7049942, 0.6913826, 0.6729113, 0.5410302), 28, "10dcb893e0a85a8f"),
    ("fsdd/3_nicolas_0.wav", "default", (31, 64),
     859.7727556824684, 507.4737045487893,
     (0.6339431, 0.0, 0.5387379, 0.4930671, 0.7074549, 0.4425045), 24, "3e4bbeba8c169d25"),
    ("fsdd/4_george_0.wav", "default", (42, 64),
     1013.3287085294724, 572.6516744435664,
     (0.2260743, 0.2442816, 0.2941447, 0.1919858, 0.1661166, 0.019511), 33, "c5b21ee7ac08a109"),
    ("fsdd/5_jackson_0.wav", "default", (40, 64),
     1130.9912781119347, 703.0673904439928,
     (0.5070921, 0.79787, 0.780846, 0.0, 0.4332988, 0.3893271), 33, "103be30de684d871"),
    ("fsdd/6_lucas_0.wav", "default", (46, 64),
     1010.8897164463997, 504.4696357131423,
     (0.4743347, 0.5664934, 0.5519553, 0.5105461, 0.0, 0.3797749), 35, "e3c106bc3dba2740"),
    ("fsdd/7_nicolas_0.wav", "default", (35, 64),
     913.0815696716309, 510.2144278225487,
     (0.677009, 0.6823729, 0.6846036, 0.6779516, 0.6793783, 0.6794403), 27, "8389a3cb38350580"),
    ("fsdd/8_george_0.wav", "default", (51, 64),
     1013.244323015213, 520.0994018849557,
     (0.5256012, 0.6159923, 0.0, 0.7110608, 0.2089884, 0.1289563), 35, "42cb79baa4fe5f9a"),
    ("fsdd/9_jackson_0.wav", "default", (58, 64),
     1705.7029562592506, 1122.9853498704663,
     (0.5340837, 0.535674, 0.0, 0.906786, 0.4253631, 0.3537486), 49, "694e186aafbcbc6a"),
    ("recordings/rec_01.wav", "default", (8493, 64),
     90944.22214889526, 38698.758844761425,
     (0.0784271, 0.2936841, 0.0, 0.6851345, 0.1321524, 0.1049657), 2921, "2f8a25ae3a663b9f"),
    ("bfsongrepo/gy6or6_baseline_230312_0811.159.wav", "birdsong", (993, 64),
     21986.87384957075, 8898.257670828414,
     (0.2516704, 0.4493105, 0.3427385, 0.1658555, 0.3282146, 0.2182912), 458, "9b1ce0ec48e7284c"),
    ("fsdd/0_george_0.wav", "seed-v4", (26, 256),
     3047.85514575243, 1632.6467823456514,
     (0.7885984, 0.4364868, 0.3545793, 0.3378275, 0.2221721, 0.4875566), None, None),
    ("fsdd/0_george_0.wav", "fbank26", (13, 26),
     212.97581046819687, 141.9339402479509,
     (0.7582201, 0.7690643, 0.4985873, 0.3375428, 0.5855552, 0.8432567), None, None),

]


@pytest.mark.parametrize("clip,settings,shape,total,squares,probes,n_sound,sound_hash",
                         UNCHANGED, ids=[f"{c}-{s}" for c, s, *_ in UNCHANGED])
def test_real_recordings_keep_their_features(clip, settings, shape, total, squares,
                                             probes, n_sound, sound_hash):
    path = DATA / clip
    if settings in FEATURE_PRESETS:
        values = features.extract(path, FEATURE_PRESETS[settings]).values
    else:
        config = PipelineConfig.from_json((ROOT / "models" / settings / "config.json")
                                          .read_text())
        result = recording.analyse(path, config)
        values = result.features.values
        assert not result.features.digital_silence.any()
        assert int(result.frame_sound.sum()) == n_sound
        digest = hashlib.sha256(np.packbits(result.frame_sound).tobytes()).hexdigest()
        assert digest[:16] == sound_hash
    values = values.astype(np.float64)
    assert values.shape == shape
    assert abs(values.sum() - total) <= 1e-6 * values.size
    assert abs((values ** 2).sum() - squares) <= 2e-6 * values.size
    flat = values.ravel()
    cells = [flat[i * flat.size // 7] for i in range(1, 7)]
    np.testing.assert_allclose(cells, probes, atol=1e-6)


def _config():
    return FeatureConfig(sample_rate=8000)


def test_digital_zeros_are_the_floor():
    config = _config()
    result = features.compute(np.zeros(8000, dtype=np.float32), config)
    assert result.digital_silence.all()
    assert np.all(result.values == 0.0)
    assert result.reference_db == features.reference_floor(config)


def test_rounding_noise_is_the_floor(rng):
    # 1e-6 is -120 dB: far below one 16-bit step.
    noise = (1e-6 * rng.standard_normal(8000 * 2)).astype(np.float32)
    result = features.compute(noise, _config())
    assert result.digital_silence.all() and np.all(result.values == 0.0)


@pytest.mark.parametrize("preset", sorted(FEATURE_PRESETS))
def test_the_silence_level_does_not_depend_on_the_feature_settings(rng, preset):
    config = FEATURE_PRESETS[preset]
    noise = rng.standard_normal(config.sample_rate).astype(np.float32)
    below = features.compute(noise * 10 ** (-95 / 20), config)
    above = features.compute(noise * 10 ** (-85 / 20), config)
    assert below.digital_silence.all() and np.all(below.values == 0.0)
    assert not above.digital_silence.any() and above.values.max() > 0.5
    # Faint noise alone is held down by the reference floor, not stretched to 1.
    assert above.reference_db == features.reference_floor(config)
    assert above.values.max() < 1.0


def test_reference_floor_is_calibrated_to_a_sine():
    config = _config()
    time = np.arange(8000) / 8000
    sine = np.sin(2 * np.pi * 1000 * time).astype(np.float32)
    # Full-scale sine: RMS -3 dB, 77 dB above the floor's sine at -80 dB.
    loud = features.compute(sine, config).reference_db
    assert loud - features.reference_floor(config) == pytest.approx(
        -3.01 - features.DIGITAL_SILENCE_DB - features.REFERENCE_FLOOR_MARGIN_DB, abs=0.05)


def test_speech_then_zeros(tmp_path, annotated_recording):
    speech, rate = soundfile.read(annotated_recording, dtype="float32", frames=8000 * 10)
    config = _config()
    alone = features.compute(speech, config)
    padded = features.compute(np.concatenate([speech, np.zeros_like(speech)]), config)
    n = len(alone.values)
    # The zeros take no part in the reference level: the speech keeps its features up to
    # the two frames that straddle the edge, which do (1.6e-4 here).
    np.testing.assert_allclose(padded.values[:n], alone.values, atol=1e-3)
    assert not padded.digital_silence[:n].any()
    last_speech = 1 + (len(speech) - 1) // config.hop_length
    assert padded.digital_silence[last_speech:].all()
    assert np.all(padded.values[last_speech:] == 0.0)
    # Streamed in blocks, the zeros are found block by block just the same.
    path = tmp_path / "half.wav"
    soundfile.write(path, np.concatenate([speech, np.zeros_like(speech)]), rate,
                    subtype="FLOAT")
    np.testing.assert_array_equal(features.extract(path, config).values, padded.values)


def test_stream_equals_extract_with_digital_silence(tmp_path, digit_clip, monkeypatch):
    speech, rate = soundfile.read(digit_clip, dtype="float32")
    zeros = np.zeros(rate * 3, dtype=np.float32)
    path = tmp_path / "gaps.wav"
    soundfile.write(path, np.concatenate([zeros, speech, zeros, speech]), rate)
    config = _config()
    whole = features.extract(path, config)
    monkeypatch.setattr(features, "_REUSE_LIMIT", 1000)
    monkeypatch.setattr(features.audio, "DEFAULT_BLOCK_SECONDS", 0.7)
    streamed = np.concatenate(list(features.iter_features(path, config)))
    np.testing.assert_array_equal(streamed, whole.values)
    assert whole.digital_silence.sum() > 400


def test_to_db_equals_librosa_power_to_db(rng, digit_clip):
    """`to_db` is librosa's `power_to_db` (ref 1, the same floor, no top_db) on random
    powers, zeros and powers below the floor, and on the band power of a real clip."""
    config = FeatureConfig(sample_rate=8000)
    samples = audio.load(digit_clip, sample_rate=8000)
    real = np.concatenate(list(features._power_blocks([samples], config)))
    random = rng.uniform(0.0, 1.0, (50, 20)) * 10.0 ** rng.uniform(-14, 4, (50, 20))
    random[0, :5] = [0.0, features.AMIN, features.AMIN / 10, 1.0, 1e30]
    for power in (real, random, random.astype(np.float32)):
        expected = librosa.power_to_db(power, ref=1.0, amin=features.AMIN, top_db=None)
        np.testing.assert_allclose(features.to_db(power), expected, rtol=0, atol=1e-5)
