"""Model bundles: what `train` writes and every other command reads.

    <dir>/model.keras    the whole VAE (custom layers registered under "discovery")
    <dir>/config.json    feature, window, silence, model and training settings, versions
    <dir>/MODEL_CARD.md  data, settings, metrics, intended use

Every file is written to a temporary name and renamed, so a bundle is never half
written. `export_savedmodel` writes a TensorFlow SavedModel with a serving signature
`embed(windows) -> {z_mean, silence}` that loads without discovery installed.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from discovery import __version__
from discovery.config import PipelineConfig
from discovery.errors import ModelError
from discovery.files import atomic_path, write_text

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"


def versions() -> dict:
    """Library versions recorded beside every model."""
    import keras
    import tensorflow as tf

    return {"discovery": __version__, "keras": keras.__version__,
            "tensorflow": tf.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def save_bundle(model, config: PipelineConfig, directory, *, card: str) -> Path:
    """Write `model`, `config` and the model card into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    values = config.to_dict()
    values["versions"] = versions()
    write_text(directory / CONFIG_FILE, json.dumps(values, indent=2, sort_keys=True))
    write_text(directory / CARD_FILE, card)
    with atomic_path(directory / MODEL_FILE) as temporary:
        # Keras picks the format from the extension.
        keras_path = temporary.with_suffix(".keras")
        model.save(keras_path)
        keras_path.replace(temporary)
    return directory


def load_config(directory) -> PipelineConfig:
    """The settings of a bundle (no TensorFlow needed)."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise ModelError(f"{directory}: no such model folder.")
    if not path.is_file():
        raise ModelError(f"{directory}: not a model bundle (no {CONFIG_FILE}).")
    return PipelineConfig.from_json(path.read_text())


def load_model(directory):
    """Load a bundle's trained VAE.

    Args:
        directory: a model bundle folder (e.g. `models/default`).

    Returns:
        The `VAE` (`keras.Model`); `model.encoder(windows)` gives `(z_mean, z_log_var,
        z)`. Its settings are attached as `model.pipeline_config` (`PipelineConfig`).

    Raises:
        ModelError: the folder is missing or incomplete.
    """
    import keras

    import discovery.nn  # noqa: F401  registers the custom layers

    config = load_config(directory)
    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"{directory}: not a model bundle (no {MODEL_FILE}).")
    model = keras.saving.load_model(path)
    model.pipeline_config = config
    return model


def export_savedmodel(model, path) -> Path:
    """Write a SavedModel with the signature `embed(windows) -> {z_mean, silence}`.

    `windows` is float32 `(batch, T, F)`; the result loads with
    `tf.saved_model.load(path).signatures["embed"]` alone.
    """
    import keras
    import tensorflow as tf

    frames, n_features = model.input_frames, model.input_features

    archive = keras.export.ExportArchive()
    archive.track(model)

    def embed(windows):
        z_mean, _, _ = model.encoder(windows[..., None], training=False)
        silence = model.silence_head(z_mean, training=False)
        return {"z_mean": z_mean, "silence": silence[:, 0]}

    archive.add_endpoint(name="embed", fn=embed, input_signature=[
        tf.TensorSpec(shape=(None, frames, n_features), dtype=tf.float32, name="windows")])
    path = Path(path)
    archive.write_out(str(path), verbose=False)
    return path
