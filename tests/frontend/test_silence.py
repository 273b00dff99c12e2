import numpy as np
import pytest
import soundfile
from sklearn.metrics import balanced_accuracy_score

from discovery.frontend import annotations, audio, features, recording, silence
from discovery.config import FeatureConfig, PipelineConfig, SilenceConfig


def _config(**feature_values):
    return PipelineConfig(features=FeatureConfig(**feature_values))


def test_tone_bursts_in_noise(rng):
    rate = 8000
    t = np.arange(rate * 4) / rate
    samples = 0.001 * rng.standard_normal(len(t))
    truth = np.zeros(len(t), bool)
    for start in (0.5, 1.5, 2.5):
        burst = (t >= start) & (t < start + 0.4)
        samples[burst] += 0.3 * np.sin(2 * np.pi * 440 * t[burst])
        truth |= burst
    config = FeatureConfig(sample_rate=rate)
    result = features.compute(samples.astype(np.float32), config)
    sound = silence.frame_sound(result.energy_db, frame_rate=config.frame_rate,
                                config=SilenceConfig())
    frame_truth = truth[(result.frame_starts * rate).astype(int) + config.frame_length // 2]
    assert balanced_accuracy_score(frame_truth, sound) > 0.97


def test_level_does_not_change_the_targets(digit_clip):
    config = FeatureConfig(sample_rate=8000)
    samples = audio.load(digit_clip, sample_rate=8000)
    loud = features.compute(samples, config)
    quiet = features.compute(samples / 20, config)
    rate = config.frame_rate
    np.testing.assert_array_equal(
        silence.frame_sound(loud.energy_db, frame_rate=rate, config=SilenceConfig()),
        silence.frame_sound(quiet.energy_db, frame_rate=rate, config=SilenceConfig()))


def test_short_blips_are_removed():
    energy = np.full(200, -60.0)
    energy[50:52] = 0.0       # 2 frames: shorter than min_sound_seconds
    energy[100:140] = 0.0
    sound = silence.frame_sound(energy, frame_rate=100.0, config=SilenceConfig())
    assert not sound[50:52].any() and sound[100:140].all() and sound.sum() == 40


def test_thresholds_sit_between_the_floor_and_the_loud_level():
    energy = np.linspace(-60.0, 0.0, 1001)
    config = SilenceConfig()
    low, high = silence.thresholds(energy, config)
    floor = np.percentile(energy, config.floor_percentile)
    loud = np.percentile(energy, config.loud_percentile)
    assert low == pytest.approx(floor + config.low_threshold * (loud - floor))
    assert high == pytest.approx(floor + config.high_threshold * (loud - floor))
    assert silence.thresholds(energy, config) == silence.Thresholds(low_db=low,
                                                                     high_db=high)
    assert floor < low < high < loud


def test_window_fraction_and_targets():
    sound = np.zeros(30, bool)
    sound[10:20] = True
    fraction = silence.window_sound_fraction(sound, np.array([0, 10, 25]),
                                             np.array([10, 10, 5]), window_length=10)
    np.testing.assert_allclose(fraction, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(silence.window_silence(fraction, SilenceConfig()),
                                  [True, False, True])


def test_annotated_speech_is_found(annotated_recording):
    config = _config()
    result = recording.analyse(annotated_recording, config)
    truth = annotations.find_annotation(annotated_recording)
    centres = result.features.frame_starts + config.features.frame_seconds / 2
    frame_truth = truth.frame_labels(centres) != ""
    assert balanced_accuracy_score(frame_truth, result.frame_sound) > 0.95


def test_band_limit_finds_finch_syllables_in_low_frequency_noise(finch_song):
    config = _config(sample_rate=32000, fmin=500, fmax=10000)
    result = recording.analyse(finch_song, config)
    truth = annotations.find_annotation(finch_song)
    centres = result.features.frame_starts + config.features.frame_seconds / 2
    assert balanced_accuracy_score(truth.frame_labels(centres) != "",
                                   result.frame_sound) > 0.9


def _analyse_samples(tmp_path, samples, name="clip.wav", rate=8000):
    path = tmp_path / name
    soundfile.write(path, samples, rate, subtype="FLOAT")
    return recording.analyse(path, _config(sample_rate=rate))


@pytest.mark.parametrize("level", [0.0, 1e-6])
def test_digital_silence_is_never_sound(tmp_path, rng, level):
    samples = (level * rng.standard_normal(8000 * 3)).astype(np.float32)
    result = _analyse_samples(tmp_path, samples)
    assert not result.frame_sound.any()
    assert result.window_silence.all() and result.window_digital_silence.all()
    assert np.all(result.features.values == 0.0)
    arrays = result.to_arrays()
    np.testing.assert_array_equal(arrays["window_digital_silence"],
                                  result.window_digital_silence)


def test_half_speech_half_zeros(tmp_path, annotated_recording):
    speech, rate = soundfile.read(annotated_recording, dtype="float32", frames=8000 * 10)
    alone = _analyse_samples(tmp_path, speech, "speech.wav")
    half = _analyse_samples(tmp_path, np.concatenate([speech, np.zeros_like(speech)]),
                            "half.wav")
    n = len(alone.frame_sound)
    # The zeros do not move the thresholds: the speech keeps its sound frames.
    np.testing.assert_array_equal(half.frame_sound[:n], alone.frame_sound)
    assert not half.frame_sound[n:].any()
    windows = half.windows
    # Windows of nothing but zeros are digital silence; windows with speech are not.
    in_zeros = windows.start_frame * 80 >= len(speech)
    np.testing.assert_array_equal(half.window_digital_silence, in_zeros)
    assert half.window_silence[in_zeros].all()
    n_windows = len(alone.windows) - 1
    np.testing.assert_array_equal(half.window_silence[:n_windows],
                                  alone.window_silence[:n_windows])


def test_digital_silence_is_left_out_of_the_thresholds():
    energy = np.full(300, -50.0)
    energy[100:140] = 0.0
    quiet = np.zeros(300, bool)
    padded = np.concatenate([np.full(300, -100.0), energy])
    silent = np.concatenate([np.ones(300, bool), quiet])
    alone = silence.frame_sound(energy, frame_rate=100.0, config=SilenceConfig(),
                                digital_silence=quiet)
    with_zeros = silence.frame_sound(padded, frame_rate=100.0, config=SilenceConfig(),
                                     digital_silence=silent)
    np.testing.assert_array_equal(with_zeros, np.concatenate([quiet, alone]))
    assert alone.sum() == 40
    everything = silence.frame_sound(energy, frame_rate=100.0, config=SilenceConfig(),
                                     digital_silence=np.ones(300, bool))
    assert not everything.any()


def test_closing_does_not_bridge_digital_silence():
    energy = np.full(200, -60.0)
    energy[50:100] = 0.0
    energy[105:150] = 0.0
    digital = np.zeros(200, bool)
    digital[100:105] = True
    config = SilenceConfig(min_silence_seconds=0.1)
    bridged = silence.frame_sound(energy, frame_rate=100.0, config=config)
    assert bridged[100:105].all()
    kept = silence.frame_sound(energy, frame_rate=100.0, config=config,
                               digital_silence=digital)
    assert not kept[100:105].any() and kept[50:100].all() and kept[105:150].all()


def test_window_digital_silence_counts_only_real_frames():
    digital = np.zeros(30, bool)
    digital[10:30] = True
    result = silence.window_digital_silence(digital, np.array([0, 8, 10, 25]),
                                            np.array([10, 10, 10, 5]))
    np.testing.assert_array_equal(result, [False, False, True, True])
