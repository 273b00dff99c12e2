import numpy as np
import pytest

from discovery.config import FeatureConfig, WindowConfig
from discovery.errors import ParameterError
from discovery.frontend.windowing import frame_windows, make_windows, window_starts


def test_windows_cover_every_frame_and_pad_the_last():
    features = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
    windows, starts, n_valid = frame_windows(features, window_length=8, hop_length=4)
    np.testing.assert_array_equal(starts, [0, 4, 8, 12, 16])
    np.testing.assert_array_equal(n_valid, [8, 8, 8, 8, 7])
    np.testing.assert_array_equal(windows[1], features[4:12])
    np.testing.assert_array_equal(windows[-1, :7], features[16:23])
    np.testing.assert_array_equal(windows[-1, 7], [0, 0])


def test_frame_windows_names_its_results():
    features = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    framed = frame_windows(features, window_length=4, hop_length=3)
    assert framed._fields == ("windows", "start_frame", "n_valid")
    np.testing.assert_array_equal(framed.start_frame, [0, 3, 6])
    np.testing.assert_array_equal(framed.n_valid, [4, 4, 4])
    np.testing.assert_array_equal(framed.windows[2], features[6:10])


def test_exact_fit_needs_no_padding():
    features = np.ones((16, 3), dtype=np.float32)
    windows, starts, n_valid = frame_windows(features, window_length=8, hop_length=8)
    assert windows.shape == (2, 8, 3) and np.all(n_valid == 8)


def test_short_recording_gives_one_padded_window():
    features = np.ones((5, 3), dtype=np.float32)
    config = FeatureConfig(sample_rate=8000, n_mels=3)
    result = make_windows(features, config, WindowConfig(window_seconds=0.32,
                                                          hop_seconds=0.16),
                          n_samples=5 * 80 + 120)
    assert len(result) == 1 and result.padded[0] and result.n_valid[0] == 5
    assert result.values.shape == (1, 32, 3)
    assert result.start_s[0] == 0.0
    # End of the last real frame: 4 hops + one 25 ms frame, within the recording.
    assert result.end_s[0] == pytest.approx((4 * 80 + 200) / 8000)


def test_window_times_are_exact():
    config = FeatureConfig(sample_rate=16000, hop_seconds=0.01, frame_seconds=0.025)
    windows_config = WindowConfig(window_seconds=0.5, hop_seconds=0.05)
    n_frames = 1000
    result = make_windows(np.zeros((n_frames, 64), np.float32), config, windows_config,
                          n_samples=(n_frames - 1) * 160 + 400)
    assert windows_config.window_length(config) == 50
    np.testing.assert_allclose(result.start_s[:3], [0.0, 0.05, 0.10])
    np.testing.assert_allclose(result.end_s[:2], [0.49 + 0.025, 0.54 + 0.025])
    assert result.end_s[-1] == pytest.approx(10.015)
    assert not result.padded.any()


def test_windows_are_views_not_copies():
    features = np.random.default_rng(0).random((100, 4)).astype(np.float32)
    windows, _, _ = frame_windows(features, window_length=10, hop_length=1)
    assert np.shares_memory(windows, features)


@pytest.mark.parametrize("name,kwargs", [
    ("window_length", dict(n_frames=10, window_length=0, hop_length=1)),
    ("hop_length", dict(n_frames=10, window_length=4, hop_length=0)),
    ("n_frames", dict(n_frames=-1, window_length=4, hop_length=1)),
])
def test_invalid_arguments(name, kwargs):
    with pytest.raises(ParameterError, match=name):
        window_starts(**kwargs)


def test_features_must_be_two_dimensional():
    with pytest.raises(ParameterError, match="features"):
        frame_windows(np.zeros(10), window_length=2, hop_length=1)
