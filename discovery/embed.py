"""Model bundle + recordings -> windowed embeddings and silence probabilities.

Every recording is cut with the bundle's own feature and window settings, so the
windows always match what the model was trained on. Windows are embedded in batches
straight from a view into the features: memory holds one recording's features (about
90 MB for an hour at 64 bands) plus one batch, never a copy of all windows.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from discovery.frontend import audio
from discovery.errors import DiscoveryError
from discovery.files import Failure, find_inputs
from discovery.frontend.recording import Recording, analyse

# Windows per forward pass. The default model's convolution holds 64 maps of every
# window's 32 x 64 cells: 0.5 MB a window, so 128 windows keep it to 64 MB.
BATCH_SIZE = 128
# Windows embedded between progress updates (about 4 minutes of audio at an 80 ms hop).
PROGRESS_WINDOWS = 3072


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


def embed_recording(model, path, *, keep_features: bool = True,
                    on_progress: Optional[Callable[[float], None]] = None
                    ) -> RecordingEmbedding:
    """Embed every window of one recording with a loaded bundle's model.

    Windows that are digital silence (every frame below the absolute level floor,
    `Recording.window_digital_silence`) get P(silence) = 1 whatever the model says:
    the model never saw such input, and no unit can live there.

    Args:
        model: a `VAE` from `discovery.load_model` (carries `pipeline_config`).
        path: an audio file.
        keep_features: keep the features and windows in the result; False drops them
            once embedded (the run keeps only times, embeddings and levels, so its
            memory does not grow with the audio).
        on_progress: called with the seconds of audio embedded since the last call.

    Raises:
        AudioError: the file cannot be read.
    """
    result = analyse(path, model.pipeline_config)
    windows = result.windows.values
    embedding = np.zeros((len(windows), model.latent_dim), np.float32)
    silence = np.zeros(len(windows), np.float32)
    done_s = 0.0
    for first in range(0, len(windows), PROGRESS_WINDOWS):
        rows = slice(first, first + PROGRESS_WINDOWS)
        embedding[rows], silence[rows] = model.embed(windows[rows], batch_size=BATCH_SIZE)
        if on_progress is not None:
            reached = min(float(result.windows.end_s[rows][-1]), result.features.duration)
            on_progress(max(reached - done_s, 0.0))
            done_s = max(done_s, reached)
    silence[result.window_digital_silence] = 1.0
    if not keep_features:
        result.features.values = np.zeros((0, result.features.values.shape[1]), np.float32)
        result.windows.values = result.windows.values[:0]
    return RecordingEmbedding(result, embedding, silence)


def _seconds(path: Path) -> float:
    try:
        return audio.info(path).duration
    except DiscoveryError:
        return 0.0  # reported as a failure when it is read


def embed_paths(paths: Sequence[Path], model, *, progress: bool = True,
                keep_features: bool = True) -> tuple:
    """Embed audio files, keeping going past files that cannot be read.

    Progress is shown in seconds of audio, so a single long file moves the bar too.

    Returns:
        (per-recording `RecordingEmbedding` list, failures: list of `Failure`).
    """
    recordings, failures = [], []
    bar = tqdm(total=round(sum(_seconds(p) for p in paths), 1), unit="s", desc="embedding",
               disable=not progress, file=sys.stderr, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]")
    with bar:
        for path in paths:
            try:
                recordings.append(embed_recording(model, path, keep_features=keep_features,
                                                  on_progress=bar.update))
            except DiscoveryError as error:
                failures.append(Failure(str(path), str(error)))
                bar.set_postfix(failed=len(failures))
    return recordings, failures


def embed_recordings(inputs: Sequence, model, *, progress: bool = True,
                     keep_features: bool = True) -> tuple:
    """Embed every recording under `inputs` (files or folders).

    A missing input or an unreadable file is listed in the failures; the others are
    embedded.

    Returns:
        (`Embeddings`, per-recording `RecordingEmbedding` list, failures).
    """
    paths, failures = find_inputs(inputs)
    recordings, embed_failures = embed_paths(paths, model, progress=progress,
                                             keep_features=keep_features)
    return combine(recordings), recordings, failures + embed_failures


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
    """The shipped default bundle (see `shipped_models_dir`)."""
    return shipped_models_dir() / "default"


def shipped_models_dir() -> Path:
    """The folder of the shipped bundles.

    A regular install or a wheel carries them as package data in
    `site-packages/discovery/models`; an editable install (`pip install -e .`) reads
    the repository's top-level `models/` (pyproject.toml maps one onto the other).
    """
    package = Path(__file__).resolve().parent
    installed = package / "models"
    return installed if installed.is_dir() else package.parent / "models"


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
