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

Stage folders, in the order data flows (docs/architecture.md): frontend/ (audio,
features, windowing, silence, annotations, recording), nn/ (the Keras model),
dataset.py, training.py, bundle.py, embed.py, dtw.py, units/ (clustering,
occurrences), evaluate/ (scores, pairs), result.py, outputs/ (tables, plots, report),
pipeline.py, cli.py. Modules import only earlier stages (import-linter contracts in
pyproject.toml, checked by the tests). Everything below loads on first use
(lazy_loader, as librosa does), so `import discovery` is fast and TensorFlow loads
only with the model.
"""

__version__ = "0.1.0"

import lazy_loader

from discovery.errors import AudioError, AudioWarning, DiscoveryError, ModelError, ParameterError

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["bundle", "config", "dtw", "embed", "evaluate", "files", "frontend",
                "nn", "outputs", "pipeline", "result", "segments", "training", "units"],
    submod_attrs={
        "config": ["FEATURE_PRESETS", "SILENCE_THRESHOLD", "ClusterConfig", "FeatureConfig",
                   "ModelConfig", "PipelineConfig", "SegmentConfig", "SilenceConfig",
                   "TrainConfig", "WindowConfig"],
        "frontend.annotations": ["Annotation", "find_annotation", "read_annotation"],
        "frontend.audio": ["AudioInfo", "find_audio_files", "info", "load", "stream"],
        "frontend.features": ["Features", "compute", "extract", "iter_features"],
        "frontend.recording": ["Recording", "analyse"],
        "frontend.segments": ["find_segments", "segment_images"],
        "frontend.windowing": ["Windows", "frame_windows", "make_windows"],
        "bundle": ["Bundle", "load_model", "export_savedmodel"],
        "training": ["train"],
        "embed": ["Embedded", "RecordingInfo", "WindowTable"],
        "segments": ["SegmentTable", "embed_segments"],
        "dtw": ["dtw_distance", "dtw_path", "pairwise_distances"],
        "units": ["UnitClusterer", "merge_units"],
        "units.occurrences": ["Occurrences"],
        "evaluate": ["unit_scores"],
        "result": ["DiscoveryResult"],
        "pipeline": ["discover", "run", "RunConfig"],
    },
)
__all__ += ["AudioError", "AudioWarning", "DiscoveryError", "ModelError", "ParameterError",
            "__version__"]
