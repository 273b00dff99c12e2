"""discovery: find the recurring sound units in recordings, without labels.

    recordings ──> audio.py ──> features.py ──> windowing.py ──> windows (T x F)
                   (mono,       (log-mel or      (sliding, with     │  silence.py:
                    resampled,   linear dB,       exact times)      │  energy targets
                    streamed)    normalised)                        v
        nn/: conv-BiLSTM variational encoder ──> z ──> one-to-many LSTM decoder
             + silence head on z_mean                   with deconvolution
                        │
                        v
        windowed embeddings ──> k-means / HDBSCAN ──> units with timestamps, report
        dtw.py: batched DTW (tf.function) for Siamese-pair evaluation

Modules import only earlier stages; only `cli.py` imports everything. TensorFlow is
imported on first use of the model, so the light parts load fast.
"""

__version__ = "0.1.0"

from discovery.annotations import Annotation, find_annotation, read_annotation
from discovery.audio import AudioInfo, find_audio_files, info, load, stream
from discovery.config import (
    FEATURE_PRESETS,
    FeatureConfig,
    ModelConfig,
    PipelineConfig,
    SilenceConfig,
    TrainConfig,
    WindowConfig,
)
from discovery.errors import (AudioError, AudioWarning, DiscoveryError, ModelError,
                              ParameterError)
from discovery.features import Features, compute, extract, iter_features
from discovery.recording import Recording, analyse
from discovery.windowing import Windows, frame_windows, make_windows


# Heavier parts (TensorFlow, scikit-learn estimators) load on first use.
_LAZY = {
    "load_model": ("discovery.bundle", "load_model"),
    "export_savedmodel": ("discovery.bundle", "export_savedmodel"),
    "train": ("discovery.training", "train"),
    "embed_recordings": ("discovery.embed", "embed_recordings"),
    "Embeddings": ("discovery.embed", "Embeddings"),
    "dtw_distance": ("discovery.dtw", "dtw_distance"),
    "dtw_path": ("discovery.dtw", "dtw_path"),
    "pairwise_distances": ("discovery.dtw", "pairwise_distances"),
    "UnitClusterer": ("discovery.clustering", "UnitClusterer"),
    "merge_units": ("discovery.clustering", "merge_units"),
    "unit_scores": ("discovery.evaluate", "unit_scores"),
    "run": ("discovery.pipeline", "run"),
    "RunConfig": ("discovery.pipeline", "RunConfig"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'discovery' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
