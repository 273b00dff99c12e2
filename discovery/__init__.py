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
from discovery.errors import AudioError, DiscoveryError, ModelError, ParameterError
from discovery.features import Features, compute, extract, iter_features
from discovery.recording import Recording, analyse
from discovery.windowing import Windows, frame_windows, make_windows


def load_model(directory):
    """Load a model bundle's trained VAE (see `discovery.bundle.load_model`)."""
    from discovery.bundle import load_model as _load

    return _load(directory)
