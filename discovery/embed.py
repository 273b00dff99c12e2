"""Model bundle + recordings -> windowed embeddings and silence probabilities.

Every recording is cut with the bundle's own feature and window settings, so the
windows always match what the model was trained on. Windows are embedded in batches
straight from a view into the features: memory holds one recording's features (about
90 MB for an hour at 64 bands) plus one batch, never a copy of all windows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from discovery import audio
from discovery.files import for_each_file
from discovery.recording import Recording, analyse

# Windows per forward pass. The default model's convolution holds 64 maps of every
# window's 32 x 64 cells: 0.5 MB a window, so 128 windows keep it to 64 MB.
BATCH_SIZE = 128


@dataclasses.dataclass
class RecordingEmbedding:
    """One recording's windows and their embeddings."""

    recording: Recording
    embedding: np.ndarray   # (n_windows, latent_dim) float32 z_mean
    silence: np.ndarray     # (n_windows,) float32 P(silence)


@dataclasses.dataclass
class Embeddings:
    """Windows of many recordings, one row each, sorted by file then time.

    Attributes:
        files: the recordings, as given.
        file: (n,) int index into `files`.
        start_s, end_s: (n,) window times in seconds.
        embedding: (n, d) float32 z_mean.
        silence: (n,) float32 P(silence).
    """

    files: List[str]
    file: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    embedding: np.ndarray
    silence: np.ndarray

    def __len__(self) -> int:
        return len(self.file)

    def to_arrays(self, unit: Optional[np.ndarray] = None) -> dict:
        """Arrays for `embeddings.npz`: one row per window (DESIGN: file, start_s, end_s,
        embedding, silence, and unit when clustering ran)."""
        arrays = {"file": np.asarray(self.files, dtype=str)[self.file],
                  "start_s": self.start_s, "end_s": self.end_s,
                  "embedding": self.embedding, "silence": self.silence}
        if unit is not None:
            arrays["unit"] = np.asarray(unit, dtype=np.int32)
        return arrays


def embed_recording(model, path, *, keep_features: bool = True) -> RecordingEmbedding:
    """Embed every window of one recording with a loaded bundle's model.

    Args:
        model: a `VAE` from `discovery.load_model` (carries `pipeline_config`).
        path: an audio file.
        keep_features: keep the features in the result (the report draws them);
            False drops them once embedded.

    Raises:
        AudioError: the file cannot be read.
    """
    result = analyse(path, model.pipeline_config)
    embedding, silence = model.embed(result.windows.values, batch_size=BATCH_SIZE)
    if not keep_features:
        result.features.values = np.zeros((0, result.features.values.shape[1]), np.float32)
        result.windows.values = result.windows.values[:0]
    return RecordingEmbedding(result, embedding.astype(np.float32),
                              silence.astype(np.float32))


def embed_recordings(inputs: Sequence, model, *, progress: bool = True,
                     keep_features: bool = True) -> tuple:
    """Embed every recording under `inputs`.

    Returns:
        (`Embeddings`, per-recording `RecordingEmbedding` list, failures).
    """
    paths = audio.find_audio_files(inputs)
    results, failures = for_each_file(
        paths, lambda path: embed_recording(model, path, keep_features=keep_features),
        description="embedding", progress=progress)
    return combine([r for _, r in results]), [r for _, r in results], failures


def combine(recordings: Sequence[RecordingEmbedding]) -> Embeddings:
    """Stack per-recording embeddings into one table."""
    latent = recordings[0].embedding.shape[1] if recordings else 0
    if not recordings:
        empty = np.zeros(0)
        return Embeddings([], empty.astype(int), empty, empty,
                          np.zeros((0, latent), np.float32), empty.astype(np.float32))
    return Embeddings(
        [r.recording.path for r in recordings],
        np.concatenate([np.full(len(r.embedding), i) for i, r in enumerate(recordings)]),
        np.concatenate([r.recording.windows.start_s for r in recordings]),
        np.concatenate([r.recording.windows.end_s for r in recordings]),
        np.concatenate([r.embedding for r in recordings]),
        np.concatenate([r.silence for r in recordings]))


def default_model_dir() -> Path:
    """The shipped default bundle: `models/default` in the source tree (an editable
    install, `pip install -e .`, finds it there)."""
    return shipped_models_dir() / "default"


def shipped_models_dir() -> Path:
    """The folder of the shipped bundles (`models/` in the source tree)."""
    return Path(__file__).resolve().parent.parent / "models"


def resolve_model_dir(model) -> Path:
    """The bundle folder a `--model` value names: None for the shipped default, a
    folder, or the name of a shipped bundle ("default", "birdsong")."""
    if model is None:
        return default_model_dir()
    path = Path(model)
    shipped = shipped_models_dir() / str(model)
    if not path.exists() and len(path.parts) == 1 and shipped.is_dir():
        return shipped
    return path
