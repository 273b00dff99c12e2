"""Named pipeline settings: features, windows and model sizes that fit together.

- "seed-v4": the seed experiments' model, exactly (641,024 encoder parameters).
- "default": chosen by measurement for quality and CPU speed (docs/models.md); speech
  and other sounds up to 8 kHz.
- "birdsong": songbird syllables at 32 kHz, band-limited above low-frequency noise.
- "tiny": for tests; a training step takes milliseconds.

Each entry is a validated, frozen `PipelineConfig`; change one with `.replace(...)`.
"""

from __future__ import annotations

from discovery.config import (
    FEATURE_PRESETS,
    FeatureConfig,
    ModelConfig,
    PipelineConfig,
    SegmentConfig,
    TrainConfig,
    WindowConfig,
)
from discovery.errors import ParameterError


def _preset(features: FeatureConfig, windows: WindowConfig,
            training: TrainConfig = TrainConfig(),
            segments: SegmentConfig = SegmentConfig(), **model_values) -> PipelineConfig:
    # The input shape is derived from `features` and `windows` (PipelineConfig), never
    # typed, so it cannot drift from them.
    return PipelineConfig(features=features, windows=windows, segments=segments,
                          model=ModelConfig(**model_values), training=training)


# Segments (docs/benchmarks.md). Speech: a word's pieces are joined across gaps under
# 0.1 s (stop closures), words last at most ~1 s. Songbirds: syllables 5-20 ms apart
# stay apart (no merging), the shortest syllables last ~25 ms, none longer than 0.3 s.
SPEECH_SEGMENTS = SegmentConfig(merge_gap_seconds=0.1, min_seconds=0.03, max_seconds=1.0)
SONG_SEGMENTS = SegmentConfig(merge_gap_seconds=0.0, min_seconds=0.02, max_seconds=0.3)


# The model and training of `default` and `birdsong`: 64 bands in, kernels spanning
# all of them, so each filter is a 3-frame spectral template and the pooling over
# frequency keeps its best-matching shift. Small 5x5 kernels lost where in frequency
# the energy sits (formants) and embedded digits worse than the raw features did
# (docs/models.md).
_FULL_HEIGHT_MODEL = dict(
    conv_filters=64, conv_kernel=(3, 64), bilstm_units=64, lstm_units=64,
    latent_dim=32, decoder_units=64, decoder_filters=8, silence_units=16,
)
_TRAINING = dict(batch_size=64, beta=0.01, beta_warmup_epochs=5, silence_weight=20.0,
                 patience=6)

PRESETS: dict[str, PipelineConfig] = {
    # 8 kHz, 256 linear bins, 10 ms hop; 1.28 s windows (128 frames), half overlap.
    "seed-v4": _preset(
        FEATURE_PRESETS["seed-v4"],
        WindowConfig(window_seconds=1.28, hop_seconds=0.64),
        conv_filters=256, conv_kernel=(8, 8), bilstm_units=128, lstm_units=128,
        latent_dim=128, decoder_units=128, decoder_filters=8, silence_units=32,
    ),
    # 16 kHz log-mel, 64 bands, 25 ms / 10 ms; 0.32 s windows (32 frames).
    "default": _preset(
        FeatureConfig(sample_rate=16000, kind="logmel", frame_seconds=0.025,
                      hop_seconds=0.010, n_mels=64),
        WindowConfig(window_seconds=0.32, hop_seconds=0.08),
        TrainConfig(epochs=40, **_TRAINING),
        SPEECH_SEGMENTS,
        **_FULL_HEIGHT_MODEL,
    ),
    # Songbirds: 32 kHz log-mel, 64 bands over 500 Hz-10 kHz (above the low-frequency
    # noise of aviary recordings), 16 ms / 8 ms frames; 0.2 s windows (25 frames) every
    # 16 ms (2 frames), a few syllables of context. On the Bengalese finch songs 0.1 s
    # windows and 0.32 s windows both clustered worse (docs/models.md).
    "birdsong": _preset(
        FeatureConfig(sample_rate=32000, kind="logmel", frame_seconds=0.016,
                      hop_seconds=0.008, n_mels=64, fmin=500.0, fmax=10000.0),
        WindowConfig(window_seconds=0.2, hop_seconds=0.016),
        TrainConfig(epochs=30, **_TRAINING),
        SONG_SEGMENTS,
        **_FULL_HEIGHT_MODEL,
    ),
    # 8 kHz log-mel, 16 bands; 0.16 s windows (16 frames).
    "tiny": _preset(
        FeatureConfig(sample_rate=8000, kind="logmel", frame_seconds=0.025,
                      hop_seconds=0.010, n_mels=16),
        WindowConfig(window_seconds=0.16, hop_seconds=0.08),
        TrainConfig(epochs=2, batch_size=64, beta_warmup_epochs=1),
        conv_filters=4, conv_kernel=(3, 3), bilstm_units=8, lstm_units=8,
        latent_dim=4, decoder_units=8, decoder_filters=2, silence_units=4,
    ),
}


def get_preset(name: str) -> PipelineConfig:
    """Returns the named preset.

    Args:
        name: str. One of `PRESETS`: "seed-v4", "default", "birdsong" or "tiny".

    Returns:
        The preset's frozen `PipelineConfig`.

    Raises:
        ParameterError: `name` is not a preset.
    """
    if name not in PRESETS:
        raise ParameterError(
            f"Invalid value for `preset`: expected one of {sorted(PRESETS)}, "
            f"received {name!r}.")
    return PRESETS[name]
