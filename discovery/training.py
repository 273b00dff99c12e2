"""Fit the VAE on recordings and write a model bundle.

    recordings -> dataset.load_windows -> split by recording -> tf.data
      -> VAE.fit under a tf.distribute strategy, with callbacks:
         TensorBoard scalars (every loss term, silence accuracy, beta), reconstruction
         images, silence confusion matrix, checkpoints, early stopping,
         BackupAndRestore (a killed run resumes at its last epoch), TerminateOnNaN
      -> bundle (model.keras, config.json, MODEL_CARD.md), embedding projector

`out_dir` receives the bundle; `out_dir/logs` the TensorBoard events;
`out_dir/checkpoints` the best model so far and the state a resumed run needs
(`backup/`, `config.json`: the run's settings, `history.json`: every epoch so far).

A folder that holds a finished bundle is refused unless `overwrite`; one that holds an
interrupted run resumes it, with the same settings only. `overwrite` removes a bundle
and its training state, and refuses a folder that holds anything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from discovery import bundle
from discovery.config import PipelineConfig
from discovery.dataset import WindowSet, load_windows, split_by_recording, to_tf_dataset
from discovery.errors import ParameterError
from discovery.files import Failure, check_output_location, write_text
from discovery.frontend.audio import PathLike

if TYPE_CHECKING:
    import keras

# Windows shown as images and in the projector.
N_IMAGES = 6
N_PROJECTOR = 2000
# What `train` writes into its folder besides the bundle; `overwrite` removes these,
# the bundle's files and leftovers of their atomic writes, and nothing else.
TRAINING_ENTRIES = ("logs", "checkpoints")
CHECKPOINTS = "checkpoints"
RUN_CONFIG = "config.json"
HISTORY = "history.json"


@dataclasses.dataclass
class TrainingResult:
    """What `train` produced.

    Attributes:
        bundle_dir: the bundle's folder.
        history: every metric per epoch, over all runs of a resumed training.
        metrics: the final epoch's values.
        failures: recordings that could not be read.
        seconds: time this call took, in seconds.
        resumed_after: for each resume, the epochs that had finished before it.
    """

    bundle_dir: Path
    history: dict
    metrics: dict
    failures: List[Failure]
    seconds: float
    resumed_after: List[int] = dataclasses.field(default_factory=list)


def _ours(name: str) -> bool:
    """Whether `train` writes an entry of this name (atomic writes leave ".<name>.*")."""
    return name in bundle.BUNDLE_FILES + TRAINING_ENTRIES or any(
        name.startswith(f".{own}.") for own in bundle.BUNDLE_FILES)


def _clear(out_dir: Path) -> None:
    """Remove a bundle and its training state; refuse a folder that holds more."""
    entries = sorted(out_dir.iterdir())
    foreign = [entry.name for entry in entries if not _ours(entry.name)]
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ParameterError(
            f"{out_dir}: holds {foreign[0]!r}{more}, which `discovery train` did not "
            "write; --overwrite replaces only a model bundle and its training run. "
            "Choose another folder.")
    try:
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    except OSError as error:
        raise ParameterError(f"{out_dir}: cannot remove the old bundle "
                             f"({error.strerror or error}).") from None


def refuse_other_settings(out_dir: Path, command: str, old: Dict[str, object],
                          new: Dict[str, object]) -> None:
    """Refuse to resume an interrupted `command` whose recorded settings `old` differ
    from `new` (a name missing from `old` was added since and cannot refuse)."""
    for name, value in new.items():
        if name in old and old[name] != value:
            raise ParameterError(
                f"{out_dir}: holds an interrupted `{command}` with `{name}` = "
                f"{old[name]!r}, not {value!r}; resume it with its settings, or pass "
                "--overwrite to start again.")


def _check_resume(out_dir: Path, config: PipelineConfig) -> None:
    """An interrupted run resumes only with the settings it started with."""
    path = out_dir / CHECKPOINTS / RUN_CONFIG
    if not (out_dir / CHECKPOINTS / "backup").is_dir() or not path.is_file():
        return
    try:
        before = PipelineConfig.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ParameterError):
        return  # an unreadable record cannot refuse; Keras checks the weights
    def settings(run: PipelineConfig) -> Dict[str, object]:
        return {f"{section}.{name}": value
                for section in ("features", "windows", "silence", "model")
                for name, value in getattr(run, section).to_dict().items()}

    refuse_other_settings(out_dir, "train", settings(before), settings(config))


def prepare_out_dir(out_dir, config: PipelineConfig, *, inputs: Sequence,
                     overwrite: bool) -> Path:
    """Make `out_dir` ready for `train`: new, resumable, or cleared by `overwrite`.

    Raises:
        ParameterError: `out_dir` is or holds one of `inputs`; holds a finished bundle
            and not `overwrite`; holds files `train` did not write and `overwrite`;
            holds an interrupted run with other settings; or cannot be written.
    """
    # Creates the folder and checks it can be written: it exists from here on.
    out_dir = check_output_location(out_dir, inputs)
    if overwrite:
        _clear(out_dir)
    elif (out_dir / bundle.MODEL_FILE).exists():
        raise ParameterError(
            f"{out_dir}: holds a trained model bundle already; pass --overwrite "
            "(overwrite=True) to replace it, or choose another folder.")
    else:
        _check_resume(out_dir, config)
    (out_dir / CHECKPOINTS).mkdir(exist_ok=True)
    if not (out_dir / CHECKPOINTS / "backup").is_dir():
        write_text(out_dir / CHECKPOINTS / RUN_CONFIG, config.to_json())
    return out_dir


def _strategy():
    """One GPU or several, or the CPU, with no change to the code."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def _sample(windows: WindowSet, n: int, seed: int) -> np.ndarray:
    """Indices of up to `n` windows, sound windows first (they make better pictures)."""
    order = np.random.default_rng(seed).permutation(len(windows))
    order = order[np.argsort(windows.silence[order], kind="stable")]
    return np.sort(order[:n])


def _callbacks(config: PipelineConfig, out_dir: Path, monitored: WindowSet,
               has_validation: bool):
    import keras

    from discovery.nn.callbacks import (
        ReconstructionImages,
        SilenceConfusion,
        TrainingRecord,
    )
    from discovery.nn import BetaWarmup

    logs, checkpoints = out_dir / "logs", out_dir / CHECKPOINTS
    # Reconstruction, not the total loss: the total grows by design while beta warms up,
    # which would make the first epochs look best.
    monitor = ("val_" if has_validation else "") + "reconstruction_loss"
    shown = _sample(monitored, N_IMAGES, config.training.seed)
    confusion = SilenceConfusion(monitored.windows, monitored.silence, log_dir=logs)
    record = TrainingRecord(checkpoints / HISTORY)
    callbacks = [
        BetaWarmup(config.training.beta,
                   warmup_epochs=config.training.beta_warmup_epochs),
        confusion,
        ReconstructionImages(monitored.windows[shown], log_dir=logs),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(str(checkpoints / "best.keras"), monitor=monitor,
                                        mode="min", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="min",
                                      patience=config.training.patience,
                                      restore_best_weights=True,
                                      start_from_epoch=config.training.beta_warmup_epochs),
        # After the callbacks that add values to the logs, before the backup.
        record,
        # Last, so that every value the callbacks above add to the logs is written.
        keras.callbacks.TensorBoard(log_dir=str(logs), write_graph=False,
                                    update_freq="epoch"),
        # Double: a kill while the backup is written leaves the one before readable.
        keras.callbacks.BackupAndRestore(str(checkpoints / "backup"),
                                         double_checkpoint=True, delete_checkpoint=True),
    ]
    return callbacks, record


def _epochs_line(config: PipelineConfig, epochs_run: int, resumed_after: Sequence[int],
                 seconds: float) -> str:
    """"- Epochs run: 5 of 5 (resumed after epoch 3); time: 12 s." for the card."""
    line = f"- Epochs run: {epochs_run} of {config.training.epochs}"
    if resumed_after:
        counts = [str(n) for n in resumed_after]
        which = counts[-1] if len(counts) == 1 else (
            ", ".join(counts[:-1]) + " and " + counts[-1])
        line += f" (resumed after epoch{'s' if len(counts) > 1 else ''} {which})"
    return line + f"; time: {seconds:.0f} s."


def model_card(config: PipelineConfig, *, inputs: Sequence[PathLike],
               window_set: WindowSet, metrics: Dict[str, float], seconds: float,
               epochs_run: int, command: str, resumed_after: Sequence[int] = ()) -> str:
    """The MODEL_CARD.md text of a trained bundle.

    Args:
        config: the settings the model was trained with.
        inputs: the audio files or folders trained on.
        window_set: the windows trained and validated on.
        metrics: the final epoch's values.
        seconds: training time over all runs, in seconds.
        epochs_run: epochs over all runs, resumed ones included.
        command: the command line that trained the model.
        resumed_after: for each resume, the epochs that had finished before it.
            Defaults to (): never resumed.

    Returns:
        The card's Markdown text.
    """
    n_annotated = int(np.unique(window_set.recording[window_set.annotated]).size)
    lines = [
        "# Model card", "",
        "A conv-BiLSTM variational autoencoder over spectrogram windows, with a silence",
        "detector on its latent mean, trained without labels by `discovery train`.", "",
        "## Training", "",
        f"- Command: `{command}`",
        f"- Data: {', '.join(str(p) for p in inputs)}: {len(window_set.paths)} recordings, "
        f"{len(window_set)} windows ({n_annotated} recordings with annotations, whose "
        "intervals gave the silence targets; energy-based targets elsewhere).",
        _epochs_line(config, epochs_run, resumed_after, seconds),
        f"- Features: {config.features.kind}, {config.features.sample_rate} Hz, "
        f"{config.input_features} features, frame {config.features.frame_seconds} s, "
        f"hop {config.features.hop_seconds} s, band {config.features.fmin}-"
        f"{config.features.upper_frequency} Hz.",
        f"- Windows: {config.windows.window_seconds} s ({config.input_frames} frames) "
        f"every {config.windows.hop_seconds} s.",
        f"- Latent size {config.model.latent_dim}; beta {config.training.beta} "
        f"(warm-up {config.training.beta_warmup_epochs} epochs); silence weight "
        f"{config.training.silence_weight}; seed {config.training.seed}"
        + (f"; each training window's frequency axis warped by up to "
           f"{config.training.warp}." if config.training.warp else "."), "",
        "## Metrics (final epoch; validation where a split was held out)", "",
        "| metric | value |", "|---|---|",
    ]
    lines += [f"| {name} | {value:.4f} |" for name, value in sorted(metrics.items())]
    lines += [
        "", "## Intended use", "",
        "Embedding windows of recordings like the training data for unit discovery",
        "(`discovery run`, `discovery embed`) and for DTW comparisons. Features are",
        "normalised per recording, so levels may differ; sample rate, band and window",
        "settings are fixed by `config.json` and every command reuses them. The",
        "silence detector was trained on this data's silence targets; check it on your",
        "own recordings before trusting it. Not for speaker or species identification.",
        "", "## Loading", "",
        "    import discovery",
        "    model = discovery.load_model(\"path/to/this/folder\")",
        "    z_mean, silence = model.embed(windows)  # (n, frames, features)", "",
        f"`{bundle.MODEL_FILE}` holds discovery's custom layers: plain "
        "`keras.saving.load_model` needs `import discovery.nn` first (without it Keras",
        "stops with \"Could not locate class 'VAE'\" and prints the model's config,",
        "whose `how_to_load` entry says so). Keras's safe mode stays on: discovery never runs",
        "code from a model file. `discovery export` writes a TensorFlow SavedModel that",
        "loads without discovery.",
    ]
    return "\n".join(lines) + "\n"


def train(inputs: Sequence[PathLike], out_dir: PathLike, config: PipelineConfig, *,
          progress: bool = True, command: Optional[str] = None,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          overwrite: bool = False) -> TrainingResult:
    """Train a VAE on recordings and write a model bundle into `out_dir`.

    Args:
        inputs: audio files or folders.
        out_dir: folder for the bundle, `logs/` and `checkpoints/`. A run killed
            part-way resumes from its last finished epoch when started again with the
            same `out_dir` and settings; the model card and `history` count the
            epochs of every run.
        config: settings; `config.training.seed` makes the run deterministic.
        progress: bool. Show progress bars and one line per epoch, on stderr.
            Defaults to True.
        command: str or None. The command line to record in the model card.
            Defaults to None: "discovery.training.train(...)".
        callbacks: further Keras callbacks for `fit`, run before the standard ones.
            Defaults to ().
        overwrite: bool. Replace a finished bundle in `out_dir` (its logs and
            training state too); without it such a folder is refused. A folder that
            holds files `train` did not write is refused either way. Defaults to
            False.

    Returns:
        `TrainingResult`.

    Raises:
        ParameterError: `out_dir` holds a finished bundle (without `overwrite`),
            files `train` did not write (with `overwrite`), an interrupted run with
            other settings, or cannot be written.
        AudioError: no recording could be read.
    """
    import keras
    import tensorflow as tf

    from discovery.nn.callbacks import write_projector
    from discovery.nn import build_vae

    started = time.perf_counter()
    # Before the slow part, so that a folder that will be refused is refused at once.
    out_dir = prepare_out_dir(out_dir, config, inputs=inputs, overwrite=overwrite)
    training = config.training
    keras.utils.set_random_seed(training.seed)
    tf.config.experimental.enable_op_determinism()

    window_set, failures = load_windows(inputs, config, progress=progress)
    train_set, validation_set = split_by_recording(
        window_set, validation_fraction=training.validation_fraction, seed=training.seed)
    monitored = validation_set if validation_set is not None else train_set
    train_data = to_tf_dataset(train_set, batch_size=training.batch_size, shuffle=True,
                               seed=training.seed)
    validation_data = None if validation_set is None else to_tf_dataset(
        validation_set, batch_size=training.batch_size, shuffle=False)
    if progress:
        held_out = 0 if validation_set is None else len(validation_set)
        print(f"training on {len(train_set)} windows, validating on {held_out}",
              file=sys.stderr)

    with _strategy().scope():
        model = build_vae(config)
        model.compile(optimizer=keras.optimizers.Adam(training.learning_rate))
        # Built before `fit`: an optimizer that creates its variables in the first
        # step makes TensorFlow trace the train step twice.
        model.optimizer.build(model.trainable_weights)
    standard, record = _callbacks(config, out_dir, monitored, validation_set is not None)
    callbacks = list(callbacks) + standard
    # Keras prints its epoch lines on stdout; every other progress line of discovery goes
    # to stderr, so stdout stays clean for what a user pipes.
    with contextlib.redirect_stdout(sys.stderr):
        model.fit(train_data, validation_data=validation_data, epochs=training.epochs,
                  callbacks=callbacks, shuffle=False, verbose=2 if progress else 0)
    # From the record, not fit's History, which holds only this run's epochs.
    epochs = [{name: value for name, value in epoch.items() if name != "elapsed_s"}
              for epoch in record.epochs]
    history = {name: [epoch.get(name, float("nan")) for epoch in epochs]
               for name in (epochs[-1] if epochs else {})}
    metrics = dict(epochs[-1]) if epochs else {}
    seconds = time.perf_counter() - started
    command = command or "discovery.training.train(...)"
    card = model_card(config, inputs=inputs, window_set=window_set, metrics=metrics,
                      seconds=record.earlier_seconds + seconds,
                      epochs_run=len(record.epochs), command=command,
                      resumed_after=record.resumed_after)
    bundle.save_bundle(model, config, out_dir, card=card)
    shown = _sample(monitored, N_PROJECTOR, training.seed)
    write_projector(model, monitored.windows[shown],
                    metadata=[(Path(monitored.paths[monitored.recording[i]]).name,
                               monitored.start_s[i], monitored.silence[i]) for i in shown],
                    log_dir=out_dir / "logs")
    return TrainingResult(out_dir, history, metrics, failures, seconds,
                          list(record.resumed_after))
