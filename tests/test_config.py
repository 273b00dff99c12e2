import json

import pytest

from discovery.config import (FEATURE_PRESETS, FeatureConfig, ModelConfig, PipelineConfig,
                              SilenceConfig, TrainConfig, WindowConfig, feature_count)
from discovery.errors import ParameterError


def test_json_round_trip():
    config = PipelineConfig()
    again = PipelineConfig.from_json(config.to_json())
    assert again == config
    assert json.loads(config.to_json())["features"]["sample_rate"] == 16000


def test_model_input_must_match_features_and_windows():
    with pytest.raises(ParameterError, match="model.input_frames"):
        PipelineConfig(model=ModelConfig(input_frames=10))
    with pytest.raises(ParameterError, match="model.input_features"):
        PipelineConfig(model=ModelConfig(input_features=10))


def test_unknown_keys_are_named():
    with pytest.raises(ParameterError, match="hop_secs"):
        FeatureConfig.from_dict({"hop_secs": 0.01})
    with pytest.raises(ParameterError, match="feature"):
        PipelineConfig.from_dict({"feature": {}})


def test_invalid_json():
    with pytest.raises(ParameterError, match="Invalid config JSON"):
        PipelineConfig.from_json("{not json")


def test_seed_feature_settings():
    assert feature_count(FEATURE_PRESETS["fbank26"]) == 26
    assert FEATURE_PRESETS["fbank26"].frame_length == 320
    assert FEATURE_PRESETS["fbank26"].hop_length == 160
    assert feature_count(FEATURE_PRESETS["seed-v4"]) == 256


@pytest.mark.parametrize("cls,name,value", [
    (FeatureConfig, "sample_rate", 0),
    (FeatureConfig, "sample_rate", 16000.5),
    (FeatureConfig, "kind", "mfcc"),
    (FeatureConfig, "frame_seconds", -1),
    (FeatureConfig, "hop_seconds", 0),
    (FeatureConfig, "hop_seconds", float("nan")),
    (FeatureConfig, "n_fft", 16),
    (FeatureConfig, "n_mels", 0),
    (FeatureConfig, "fmin", -5.0),
    (FeatureConfig, "fmax", 9000.0),
    (FeatureConfig, "dynamic_range_db", 0),
    (WindowConfig, "window_seconds", 0),
    (WindowConfig, "hop_seconds", -0.1),
    (SilenceConfig, "low_threshold", 1.5),
    (SilenceConfig, "high_threshold", 0.05),
    (SilenceConfig, "loud_percentile", 5.0),
    (SilenceConfig, "window_sound_fraction", -0.1),
    (ModelConfig, "latent_dim", 0),
    (ModelConfig, "conv_kernel", (3,)),
    (TrainConfig, "epochs", 0),
    (TrainConfig, "batch_size", 2.5),
    (TrainConfig, "beta", -1.0),
    (TrainConfig, "validation_fraction", 0.95),
])
def test_invalid_values_name_the_setting_and_the_value(cls, name, value):
    values = {name: value}
    if cls is FeatureConfig and name == "fmax":
        values["sample_rate"] = 16000
    with pytest.raises(ParameterError, match=f"`{name}`.*received {value!r}"[:60]
                       .replace("(", r"\(").replace(")", r"\)")):
        cls(**values)


def test_fmax_must_exceed_fmin():
    with pytest.raises(ParameterError, match="fmax"):
        FeatureConfig(fmin=4000, fmax=3000)


def test_window_hop_must_be_whole_feature_frames():
    from discovery.nn import get_preset

    config = get_preset("birdsong")  # 8 ms feature hop
    with pytest.raises(ParameterError, match=r"`windows.hop_seconds`: expected a whole "
                                             r"number of feature hops \(0.008 s\), e.g. "
                                             r"0.016 or 0.024, received 0.02"):
        config.replace(windows=config.windows.replace(hop_seconds=0.02))
    assert config.replace(windows=config.windows.replace(hop_seconds=0.024))
