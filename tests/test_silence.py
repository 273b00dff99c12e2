import numpy as np
from sklearn.metrics import balanced_accuracy_score

from discovery import annotations, audio, features, recording, silence
from discovery.config import FeatureConfig, PipelineConfig, SilenceConfig, pipeline_for


def _config(**feature_values):
    features_config = FeatureConfig(**feature_values)
    config = PipelineConfig(features=features_config)
    return config.replace(model=config.model.replace(
        **pipeline_for(config.features, config.windows)))


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


def test_window_fraction_and_targets():
    sound = np.zeros(30, bool)
    sound[10:20] = True
    fraction = silence.window_sound_fraction(sound, np.array([0, 10, 25]),
                                             np.array([10, 10, 5]), 10)
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
