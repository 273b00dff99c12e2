import json
import re
from pathlib import Path

import pytest

from discovery import config as config_module
from discovery.config import (FEATURE_PRESETS, FeatureConfig, ModelConfig, PipelineConfig,
                              SilenceConfig, TrainConfig, WindowConfig, feature_count)
from discovery.errors import ParameterError

MODELS = Path(__file__).resolve().parent.parent / "models"


def test_json_round_trip():
    config = PipelineConfig()
    again = PipelineConfig.from_json(config.to_json())
    assert again == config
    assert json.loads(config.to_json())["features"]["sample_rate"] == 16000


def test_model_input_is_derived_from_features_and_windows():
    config = PipelineConfig()
    assert (config.input_frames, config.input_features) == (32, 64)
    assert "input_frames" not in config.to_dict()["model"]
    with pytest.raises(TypeError):
        ModelConfig(input_frames=10)
    with pytest.raises(ParameterError, match="at least one feature column"):
        # 31.25 Hz bins: none lies in [1001, 1010] Hz.
        PipelineConfig(features=FeatureConfig(kind="spectrogram", sample_rate=8000,
                                              fmin=1001.0, fmax=1010.0))


def test_older_files_with_the_input_shape_still_load():
    values = json.loads(PipelineConfig().to_json())
    values["model"].update(input_frames=32, input_features=64)
    assert PipelineConfig.from_dict(values) == PipelineConfig()
    values["model"]["input_frames"] = 10
    with pytest.raises(ParameterError,
                       match=r"`model.input_frames`: expected 32.*received 10"):
        PipelineConfig.from_dict(values)


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
    # Three hops are fine: the window hop is 3 feature frames.
    three_hops = config.replace(windows=config.windows.replace(hop_seconds=0.024))
    assert three_hops.windows.hop_seconds == 0.024
    assert three_hops.windows.hop_length(three_hops.features) == 3


def test_the_example_message_for_a_huge_sample_rate():
    with pytest.raises(ParameterError) as error:
        FeatureConfig(sample_rate=10**12)
    assert str(error.value) == ("Invalid value for `sample_rate`: expected an integer in "
                                "[1, 384000], received 1000000000000.")


# One case per upper bound: (class, setting, first value refused, other settings).
UPPER_BOUNDS = [
    (FeatureConfig, "sample_rate", 384_001, {}),
    (FeatureConfig, "frame_seconds", 4.2, {}),  # 67200 samples at 16 kHz
    (FeatureConfig, "hop_seconds", 4.2, {}),
    (FeatureConfig, "frame_seconds", 0.2, {"sample_rate": 384_000}),
    (FeatureConfig, "n_fft", 65_537, {}),
    (FeatureConfig, "n_mels", 513, {}),
    (FeatureConfig, "dynamic_range_db", 200.5, {}),
    (WindowConfig, "window_seconds", 60.5, {}),
    (WindowConfig, "hop_seconds", 60.5, {}),
    (ModelConfig, "conv_filters", 4097, {}),
    (ModelConfig, "bilstm_units", 4097, {}),
    (ModelConfig, "lstm_units", 4097, {}),
    (ModelConfig, "latent_dim", 4097, {}),
    (ModelConfig, "decoder_units", 4097, {}),
    (ModelConfig, "decoder_filters", 4097, {}),
    (ModelConfig, "silence_units", 4097, {}),
    (ModelConfig, "conv_kernel", (3, 1025), {}),
    (ModelConfig, "seed", 2**32, {}),
    (TrainConfig, "epochs", 100_001, {}),
    (TrainConfig, "batch_size", 65_537, {}),
    (TrainConfig, "learning_rate", 1.5, {}),
    (TrainConfig, "beta_warmup_epochs", 100_001, {}),
    (TrainConfig, "patience", 100_001, {}),
    (TrainConfig, "seed", 2**32, {}),
]


@pytest.mark.parametrize("cls,name,value,others", UPPER_BOUNDS,
                         ids=[f"{c.__name__}.{n}={v}" for c, n, v, _ in UPPER_BOUNDS])
def test_sizes_have_upper_bounds(cls, name, value, others):
    with pytest.raises(ParameterError,
                       match=rf"^Invalid value for `{name}`: expected .*, received "
                             rf"{re.escape(repr(value))}\.$"):
        cls(**others, **{name: value})


@pytest.mark.parametrize("cls,values", [
    (FeatureConfig, {"sample_rate": 384_000, "frame_seconds": 65536 / 384000,
                     "hop_seconds": 0.01, "n_fft": 65_536, "n_mels": 512,
                     "dynamic_range_db": 200.0}),
    (WindowConfig, {"window_seconds": 60.0, "hop_seconds": 60.0}),
    (ModelConfig, {"latent_dim": 4096, "conv_kernel": (1024, 1)}),
    (TrainConfig, {"epochs": 100_000, "batch_size": 65_536, "learning_rate": 1.0,
                   "seed": 2**32 - 1}),
])
def test_the_bounds_themselves_are_allowed(cls, values):
    config = cls(**values)
    assert {name: getattr(config, name) for name in values} == values


def test_huge_windows_are_refused_in_frames():
    features = FeatureConfig(hop_seconds=0.001)
    with pytest.raises(ParameterError, match=r"`windows.window_seconds`: expected at most "
                                             r"10000 feature frames \(10 s at a 0.001 s "
                                             r"hop\), received 60"):
        PipelineConfig(features=features, windows=WindowConfig(window_seconds=60,
                                                               hop_seconds=0.1))


@pytest.mark.parametrize("cls,name,value", [
    (FeatureConfig, "sample_rate", True),
    (FeatureConfig, "frame_seconds", True),
    (FeatureConfig, "frame_seconds", float("inf")),
    (FeatureConfig, "hop_seconds", float("-inf")),
    (FeatureConfig, "n_fft", True),
    (FeatureConfig, "n_fft", 512.0),
    (FeatureConfig, "n_mels", True),
    (FeatureConfig, "kind", ["logmel"]),
    (FeatureConfig, "fmin", True),
    (FeatureConfig, "fmin", float("nan")),
    (FeatureConfig, "fmax", float("inf")),
    (FeatureConfig, "dynamic_range_db", float("nan")),
    (FeatureConfig, "dynamic_range_db", "80"),
    (WindowConfig, "window_seconds", False),
    (WindowConfig, "window_seconds", float("nan")),
    (WindowConfig, "hop_seconds", float("inf")),
    (SilenceConfig, "low_threshold", float("nan")),
    (SilenceConfig, "floor_percentile", True),
    (SilenceConfig, "min_sound_seconds", float("inf")),
    (ModelConfig, "latent_dim", True),
    (ModelConfig, "conv_kernel", (True, 3)),
    (ModelConfig, "seed", -1),
    (ModelConfig, "seed", 0.0),
    (TrainConfig, "epochs", True),
    (TrainConfig, "learning_rate", float("nan")),
    (TrainConfig, "learning_rate", True),
    (TrainConfig, "beta", float("nan")),
    (TrainConfig, "silence_weight", float("inf")),
    (TrainConfig, "validation_fraction", True),
    (TrainConfig, "beta_warmup_epochs", -1),
])
def test_types_are_checked(cls, name, value):
    with pytest.raises(ParameterError, match=rf"`{name}`.*received {re.escape(repr(value))}"):
        cls(**{name: value})


@pytest.mark.parametrize("path", sorted(MODELS.glob("*/config.json")),
                         ids=lambda path: path.parent.name)
def test_shipped_model_configs_still_load(path):
    config = PipelineConfig.from_json(path.read_text())
    assert config.features.sample_rate <= config_module.MAX_SAMPLE_RATE
