"""Model bundles: what `train` writes and every other command reads.

    <dir>/model.keras    the whole VAE (custom layers registered under "discovery")
    <dir>/config.json    feature, window, silence, model and training settings, versions
    <dir>/MODEL_CARD.md  data, settings, metrics, intended use, how to load it

Every file is written to a temporary name and renamed, so a bundle is never half
written.

`Bundle` holds the three together: `Bundle.load("default")` (a folder, or a shipped
bundle's name) gives `.model` (the Keras VAE), `.config` (`PipelineConfig`) and
`.path`; `.embed(inputs)` cuts and embeds recordings with the bundle's own settings,
`.save(dir, card=...)` writes a bundle, `.export(path)` a SavedModel or `.keras` file.
Everything that needs a model's settings takes them from its `Bundle`: a Keras model
carries no discovery settings of its own.

Loading checks the files first and turns every way a bundle can be broken into one
`ModelError` naming the file: a
`model.keras` that is not a Keras file (random bytes, a truncated zip), one that holds
a `Lambda` layer or other code Keras's safe mode refuses (safe mode stays on: discovery
never runs code from a file), a `config.json` that is not JSON or holds bad values, and
a model that does not match its config. `load_model(dir)` (`discovery.load_model`) is
the low-level path: the checked Keras model alone. Plain `keras.saving.load_model` works on
`model.keras` after `import discovery.nn` (which registers the custom layers); without
it Keras fails with "Could not locate class 'VAE'" and prints the saved config, whose
first entry (`how_to_load`) says this. Keras imports no module outside its own
packages, so a saved file can do no more than that.

Export: `export_savedmodel` writes a TensorFlow SavedModel that loads without discovery
installed, with a serving signature `embed(windows) -> {z_mean, silence}`:

    windows  float32 (batch, frames, features): consecutive feature frames, frames
             first, built with the settings in the bundle's config.json (`features`:
             sample rate, spectrogram kind, frame and hop, band; `windows`: length
             and hop), each recording's features normalised to [0, 1] (1 = the
             recording's reference level, 0 = `dynamic_range_db` below it); a window
             that runs past the end is padded with zeros.
    z_mean   float32 (batch, latent_dim), the embedding.
    silence  float32 (batch,), P(window is silence).

Its `assets/` hold `config.json` (the bundle's settings) and `README.md` (this input
contract, with the model's numbers); the loaded object gives their paths as
`config_file.asset_path` and `readme_file.asset_path`. `export_keras` writes the
model as one `.keras` file.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import tempfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from discovery import __version__
from discovery.config import PipelineConfig
from discovery.embed import Embedded, embed_paths
from discovery.errors import ModelError, ParameterError
from discovery.files import atomic_path, check_output_location, find_inputs, write_text

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"
BUNDLE_FILES = (MODEL_FILE, CONFIG_FILE, CARD_FILE)
# The SavedModel's asset that says what its input is.
EXPORT_README = "README.md"
# Reasons are cut to this many characters, so an error stays one readable line.
MAX_REASON = 200
EXPORT_FORMATS = ("savedmodel", "keras")


def shipped_models_dir() -> Path:
    """The folder of the shipped bundles.

    A regular install or a wheel carries them as package data in
    `site-packages/discovery/models`; an editable install (`pip install -e .`) reads
    the repository's top-level `models/` (pyproject.toml maps one onto the other).
    """
    package = Path(__file__).resolve().parent
    installed = package / "models"
    return installed if installed.is_dir() else package.parent / "models"


def default_model_dir() -> Path:
    """The shipped default bundle (see `shipped_models_dir`)."""
    return shipped_models_dir() / "default"


def resolve_model_dir(model) -> Path:
    """The bundle folder a `--model` value names: None for the shipped default, a
    folder, or the name of a shipped bundle ("default", "birdsong"). A folder that
    exists wins over a shipped name."""
    if model is None:
        return default_model_dir()
    path = Path(model)
    shipped = shipped_models_dir() / str(model)
    if not path.exists() and len(path.parts) == 1 and shipped.is_dir():
        return shipped
    return path


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A trained model with the settings that build its input, and where it lives.

    Attributes:
        model: the Keras `VAE` (`discovery.nn.VAE`).
        config: `PipelineConfig`. Feature, window, silence, model and training
            settings: every recording the model sees is cut with them.
        path: the bundle folder it was loaded from or saved to, or None.

    Example:
        >>> bundle = Bundle.load("default")
        >>> windows, recordings, failures = bundle.embed(["data/fsdd"])
    """

    model: Any = dataclasses.field(repr=False)
    config: PipelineConfig
    path: Optional[Path] = None

    def __post_init__(self):
        if not isinstance(self.config, PipelineConfig):
            raise ParameterError(f"Invalid value for `config`: expected a PipelineConfig, "
                                 f"received {type(self.config).__name__}.")
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))

    def with_hop(self, hop_seconds: Optional[float]) -> "Bundle":
        """This bundle with its windows `hop_seconds` apart, the same model: the
        windows keep their length, so no retraining is needed (finer hops give
        embedding sequences fit for DTW alignment). None returns the bundle itself.

        Raises:
            ParameterError: the hop is not a whole number of feature hops (named).
        """
        if hop_seconds is None:
            return self
        if isinstance(hop_seconds, bool) or not isinstance(hop_seconds, (int, float)) \
                or not hop_seconds > 0:
            raise ParameterError(f"Invalid value for `hop_seconds`: expected a number > 0, "
                                 f"received {hop_seconds!r}.")
        windows = self.config.windows.replace(hop_seconds=float(hop_seconds))
        return dataclasses.replace(self, config=self.config.replace(windows=windows))

    @classmethod
    def load(cls, directory=None) -> "Bundle":
        """Load a bundle folder, or a shipped bundle by name.

        Args:
            directory: a bundle folder, a shipped bundle's name ("default",
                "birdsong"; a folder that exists wins), or None for the shipped
                default.

        Raises:
            ModelError: the folder is missing or broken (see `load_model`).
        """
        path = resolve_model_dir(directory)
        config = load_config(path)
        return cls(_load_checked(path, config), config, path)

    def embed(self, inputs: Sequence, *, progress: bool = True) -> Embedded:
        """Embed every window of the recordings under `inputs` (files or folders).

        A missing input or an unreadable file is listed in the failures; the others
        are embedded.

        Returns:
            `embed.Embedded(windows, recordings, failures)`: the `WindowTable`, a
            `RecordingInfo` per readable file, a `files.Failure` per input or file
            that could not be read.
        """
        paths, failures = find_inputs(inputs)
        windows, recordings, embed_failures = embed_paths(
            paths, model=self.model, config=self.config, progress=progress)
        return Embedded(windows, recordings, failures + embed_failures)

    def save(self, directory, *, card: str) -> Path:
        """Write the bundle into `directory` (see `save_bundle`)."""
        return save_bundle(self.model, self.config, directory, card=card)

    def export(self, path, *, format: str = "savedmodel") -> Path:  # noqa: A002
        """Export the model as a TensorFlow SavedModel or one `.keras` file.

        Args:
            path: a new folder for "savedmodel", a file ending in `.keras` for "keras".
            format: "savedmodel" (serving signature `embed`, loads without discovery;
                see `export_savedmodel`) or "keras". Defaults to "savedmodel".

        Raises:
            ParameterError: `format` is unknown, `path` exists (SavedModel) or does not
                end in `.keras`, or its folder cannot be written.
        """
        path = Path(path)
        if format not in EXPORT_FORMATS:
            raise ParameterError(f"Invalid value for `format`: expected one of "
                                 f"{EXPORT_FORMATS}, received {format!r}.")
        if format == "keras":
            return export_keras(self.model, path)
        if path.exists():
            raise ParameterError(f"{path}: already exists; choose a new path for the "
                                 "SavedModel.")
        temporary = path.with_name(f".{path.name}.tmp")
        # A killed export leaves its temporary folder; start from nothing.
        shutil.rmtree(temporary, ignore_errors=True)
        export_savedmodel(self.model, temporary, config=self.config)
        temporary.rename(path)
        return path


def versions() -> dict:
    """Library versions recorded beside every model."""
    import keras
    import tensorflow as tf

    return {"discovery": __version__, "keras": keras.__version__,
            "tensorflow": tf.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def config_json(config: PipelineConfig) -> str:
    """The text of a bundle's config.json: the settings and the library versions."""
    values = config.to_dict()
    values["versions"] = versions()
    return json.dumps(values, indent=2, sort_keys=True)


def save_bundle(model, config: PipelineConfig, directory, *, card: str) -> Path:
    """Write `model`, `config` and the model card into `directory`.

    Raises:
        ParameterError: `directory` cannot be written.
    """
    directory = check_output_location(directory, inputs=())
    write_text(directory / CONFIG_FILE, config_json(config))
    write_text(directory / CARD_FILE, card)
    with atomic_path(directory / MODEL_FILE) as temporary:
        # Keras picks the format from the extension.
        keras_path = temporary.with_suffix(".keras")
        model.save(keras_path)
        keras_path.replace(temporary)
    return directory


def _reason(error: BaseException) -> str:
    """The first line of an exception's message, cut to `MAX_REASON` characters."""
    lines = str(error).strip().splitlines()
    text = lines[0].rstrip(".") if lines else type(error).__name__
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


def load_config(directory) -> PipelineConfig:
    """The settings of a bundle (no TensorFlow needed).

    Raises:
        ModelError: the folder or its config.json is missing, unreadable, not JSON, or
            holds an unknown setting or a bad value; the message names the file.
    """
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise ModelError(f"{directory}: no such model folder.")
    if not path.is_file():
        raise ModelError(f"{directory}: not a model bundle (no {CONFIG_FILE}).")
    try:
        return PipelineConfig.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: cannot read the bundle's settings "
                         f"({_reason(error)}).") from None
    except ParameterError as error:
        raise ModelError(f"{path}: {error}") from None


def _saved_classes(value):
    """Every `class_name` in a saved Keras config, depth first."""
    if isinstance(value, dict):
        if isinstance(value.get("class_name"), str):
            yield value["class_name"]
        for item in value.values():
            yield from _saved_classes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _saved_classes(item)


def _check_keras_file(path: Path) -> None:
    """Refuse a file Keras would misreport ("File not found") or refuse to run."""
    unreadable = f"{path}: not a readable Keras model file"
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{unreadable} (not a zip archive: corrupt or truncated).")
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
    except KeyError:
        raise ModelError(f"{unreadable} (no config.json inside).") from None
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        raise ModelError(f"{unreadable} ({_reason(error)}).") from None
    if "Lambda" in set(_saved_classes(saved)):
        raise ModelError(f"{path}: holds a Lambda layer (arbitrary code); discovery "
                         "does not load it.")


def _check_matches(model, config: PipelineConfig, path: Path) -> None:
    """The layer sizes in `model.keras` are those in `config.json`."""
    from discovery.nn import VAE

    if not isinstance(model, VAE):
        raise ModelError(f"{path}: holds a {type(model).__name__} model, not a "
                         "discovery VAE.")
    expected_values = dict(config.model.to_dict(), input_frames=config.input_frames,
                           input_features=config.input_features)
    for name, expected in expected_values.items():
        actual = getattr(model, name)
        if tuple(np.atleast_1d(actual)) != tuple(np.atleast_1d(expected)):
            raise ModelError(
                f"{path}: does not match {CONFIG_FILE}: `{name}` is {actual!r} in the "
                f"model, {expected!r} in the config.")


def load_model(directory):
    """Load a bundle's trained VAE alone: the low-level path (`Bundle.load` gives the
    model with its settings, which embedding needs).

    Keras's safe mode stays on: a file that holds code (a `Lambda` layer) is refused,
    never run.

    Args:
        directory: a model bundle folder (e.g. `models/default`).

    Returns:
        The `VAE` (`keras.Model`); `model.encoder(windows)` gives `(z_mean, z_log_var,
        z)`. Its settings are in the folder's config.json (`load_config`).

    Raises:
        ModelError: the folder is missing or incomplete, `model.keras` is not a
            readable Keras file or holds code, `config.json` is not valid, or the two
            do not match. The message is one line naming the file.
    """
    return _load_checked(directory, load_config(directory))


def _load_checked(directory, config: PipelineConfig):
    """The VAE in `directory`, checked against `config`."""
    import keras

    import discovery.nn  # noqa: F401  registers the custom layers

    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"{directory}: not a model bundle (no {MODEL_FILE}).")
    _check_keras_file(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001  any failure here is the file's
        if "safe_mode" in str(error):
            raise ModelError(f"{path}: holds code that Keras's safe mode refuses to "
                             "run; discovery does not load it.") from error
        raise ModelError(f"{path}: not a readable Keras model file "
                         f"({_reason(error)}).") from error
    _check_matches(model, config, path)
    return model


def export_keras(model, path) -> Path:
    """Write `model` as one `.keras` file (atomically).

    Raises:
        ParameterError: `path` does not end in `.keras`, or its folder cannot be
            written.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ParameterError(f"Invalid value for `--out`: expected a path ending in "
                             f".keras, received {str(path)!r}.")
    check_output_location(path.parent, inputs=())
    with atomic_path(path) as temporary:
        # Keras picks the format from the extension.
        keras_path = temporary.with_suffix(".keras")
        model.save(keras_path)
        keras_path.replace(temporary)
    return path


def _export_readme(config: PipelineConfig) -> str:
    """The SavedModel's README.md asset: what its input is, with this model's numbers."""
    from discovery.frontend.features import REFERENCE_PERCENTILE

    features, windows, model = config.features, config.windows, config.model
    paragraphs = [
        f"Input `windows`: float32, shape (batch, {config.input_frames}, "
        f"{config.input_features}): {config.input_frames} consecutive feature frames "
        f"({windows.window_seconds} s, one window every {windows.hop_seconds} s) of "
        f"{config.input_features} features, frames first. Build them with the settings "
        f"in `config.json` beside this file: {features.kind} features of audio "
        f"resampled to {features.sample_rate} Hz, frames of {features.frame_seconds} s "
        f"every {features.hop_seconds} s (not centred), band {features.fmin}-"
        f"{features.upper_frequency} Hz, each recording's power in dB normalised to "
        f"[0, 1] by `clip((dB - reference_dB) / {features.dynamic_range_db} + 1, 0, 1)` "
        f"(reference_dB: the {REFERENCE_PERCENTILE}th percentile of the recording's "
        "per-frame peak level). "
        "A window that runs past the end of a recording is padded with zeros. "
        "`discovery features RECORDING --config config.json --out DIR` writes each "
        "recording's features and window starts.",
        f"Outputs: `z_mean`, float32 (batch, {model.latent_dim}), the embedding; "
        "`silence`, float32 (batch,), P(window is silence).",
    ]
    return "\n\n".join([
        "# A discovery model as a TensorFlow SavedModel",
        "    import tensorflow as tf\n"
        "    loaded = tf.saved_model.load(PATH)\n"
        "    out = loaded.signatures[\"embed\"](windows=tf.constant(windows))",
    ] + [textwrap.fill(text, width=88) for text in paragraphs]) + "\n"


def export_savedmodel(model, path, *, config: Optional[PipelineConfig] = None) -> Path:
    """Write a SavedModel with the signature `embed(windows) -> {z_mean, silence}`.

    `windows` is float32 `(batch, T, F)` (see the module docstring); the result loads
    with `tf.saved_model.load(path).signatures["embed"]` alone. Its `assets/` hold
    `config.json` (the settings that build the input) and `README.md`.

    Args:
        model: a `VAE`.
        path: the SavedModel folder to write.
        config: `PipelineConfig`. The settings to ship (`Bundle.config`; `Bundle.export`
            passes them). Required; None is refused.

    Raises:
        ParameterError: no settings to ship, or `path`'s folder cannot be written.
    """
    import keras
    import tensorflow as tf

    if not isinstance(config, PipelineConfig):
        raise ParameterError(
            "Invalid value for `config`: expected a PipelineConfig (the settings that "
            f"build the model's input), received {config!r}; use Bundle.export or pass "
            "config=.")
    path = Path(path)
    check_output_location(path.parent, inputs=())
    frames, n_features = model.input_frames, model.input_features

    archive = keras.export.ExportArchive()
    archive.track(model)

    def embed(windows):
        z_mean, _, _ = model.encoder(windows[..., None], training=False)
        silence = model.silence_head(z_mean, training=False)
        return {"z_mean": z_mean, "silence": silence[:, 0]}

    archive.add_endpoint(name="embed", fn=embed, input_signature=[
        tf.TensorSpec(shape=(None, frames, n_features), dtype=tf.float32, name="windows")])
    with tempfile.TemporaryDirectory() as sources:
        # tf.saved_model copies each Asset's file into assets/ under its own name.
        (Path(sources) / CONFIG_FILE).write_text(config_json(config), encoding="utf-8")
        (Path(sources) / EXPORT_README).write_text(_export_readme(config),
                                                   encoding="utf-8")
        # ExportArchive.track keeps only lookup-table resources, so the assets hang
        # off the object the archive saves, which is what a loaded SavedModel is.
        root = archive._tf_trackable
        root.config_file = tf.saved_model.Asset(str(Path(sources) / CONFIG_FILE))
        root.readme_file = tf.saved_model.Asset(str(Path(sources) / EXPORT_README))
        archive.write_out(str(path), verbose=False)
    return path
