"""Fit the VAE on recordings and write a model bundle.

    recordings -> dataset.load_windows -> split by recording -> tf.data
      -> VAE.fit under a tf.distribute strategy, with callbacks:
         TensorBoard scalars (every loss term, silence accuracy, beta), reconstruction
         images, silence confusion matrix, checkpoints, early stopping,
         BackupAndRestore (a killed run resumes at its last epoch), TerminateOnNaN
      -> bundle (model.keras, config.json, MODEL_CARD.md), embedding projector

`out_dir` receives the bundle; `out_dir/logs` the TensorBoard events;
`out_dir/checkpoints` the best model so far and the state a resumed run needs.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from discovery import bundle
from discovery.config import PipelineConfig
from discovery.dataset import WindowSet, load_windows, split_by_recording, to_tf_dataset
from discovery.files import Failure

# Windows shown as images and in the projector.
N_IMAGES = 6
N_PROJECTOR = 2000


@dataclasses.dataclass
class TrainingResult:
    """What `train` produced."""

    bundle_dir: Path
    history: dict
    metrics: dict
    failures: List[Failure]
    seconds: float


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

    from discovery.callbacks import ReconstructionImages, SilenceConfusion
    from discovery.nn import BetaWarmup

    logs, checkpoints = out_dir / "logs", out_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    # Reconstruction, not the total loss: the total grows by design while beta warms up,
    # which would make the first epochs look best.
    monitor = ("val_" if has_validation else "") + "reconstruction_loss"
    shown = _sample(monitored, N_IMAGES, config.training.seed)
    confusion = SilenceConfusion(monitored.windows, monitored.silence, logs)
    callbacks = [
        BetaWarmup(config.training.beta, config.training.beta_warmup_epochs),
        confusion,
        ReconstructionImages(monitored.windows[shown], logs),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(str(checkpoints / "best.keras"), monitor=monitor,
                                        mode="min", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="min",
                                      patience=config.training.patience,
                                      restore_best_weights=True,
                                      start_from_epoch=config.training.beta_warmup_epochs),
        # Last, so that every value the callbacks above add to the logs is written.
        keras.callbacks.TensorBoard(log_dir=str(logs), write_graph=False,
                                    update_freq="epoch"),
        keras.callbacks.BackupAndRestore(str(checkpoints / "backup"),
                                         delete_checkpoint=True),
    ]
    return callbacks, confusion


def model_card(config: PipelineConfig, inputs: Sequence, window_set: WindowSet,
               metrics: dict, seconds: float, epochs_run: int, command: str) -> str:
    """The MODEL_CARD.md text of a trained bundle."""
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
        f"- Epochs run: {epochs_run} of {config.training.epochs}; time: {seconds:.0f} s.",
        f"- Features: {config.features.kind}, {config.features.sample_rate} Hz, "
        f"{config.model.input_features} features, frame {config.features.frame_seconds} s, "
        f"hop {config.features.hop_seconds} s, band {config.features.fmin}-"
        f"{config.features.upper_frequency} Hz.",
        f"- Windows: {config.windows.window_seconds} s ({config.model.input_frames} frames) "
        f"every {config.windows.hop_seconds} s.",
        f"- Latent size {config.model.latent_dim}; beta {config.training.beta} "
        f"(warm-up {config.training.beta_warmup_epochs} epochs); silence weight "
        f"{config.training.silence_weight}; seed {config.training.seed}.", "",
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
    ]
    return "\n".join(lines) + "\n"


def train(inputs: Sequence, out_dir, config: PipelineConfig, *,
          progress: bool = True, command: Optional[str] = None,
          callbacks: Sequence = ()) -> TrainingResult:
    """Train a VAE on recordings and write a model bundle into `out_dir`.

    Args:
        inputs: audio files or folders.
        out_dir: folder for the bundle, `logs/` and `checkpoints/`. A run killed
            part-way resumes from its last finished epoch when started again with the
            same `out_dir`.
        config: settings; `config.training.seed` makes the run deterministic.
        progress: show progress bars and one line per epoch.
        command: the command line to record in the model card.
        callbacks: further Keras callbacks for `fit`.

    Returns:
        `TrainingResult`.

    Raises:
        AudioError: no recording could be read.
    """
    import keras
    import tensorflow as tf

    from discovery.callbacks import write_projector
    from discovery.nn import build_vae

    started = time.perf_counter()
    out_dir = Path(out_dir)
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
    standard, confusion = _callbacks(config, out_dir, monitored,
                                     validation_set is not None)
    callbacks = list(callbacks) + standard
    history = model.fit(train_data, validation_data=validation_data,
                        epochs=training.epochs, callbacks=callbacks, shuffle=False,
                        verbose=2 if progress else 0)
    history = {name: [float(v) for v in values] for name, values in history.history.items()}

    metrics = {name: values[-1] for name, values in history.items()}
    if confusion.balanced_accuracy is not None:
        metrics["silence_balanced_accuracy"] = confusion.balanced_accuracy
    seconds = time.perf_counter() - started
    epochs_run = len(next(iter(history.values()), []))
    command = command or "discovery.training.train(...)"
    card = model_card(config, inputs, window_set, metrics, seconds, epochs_run, command)
    bundle.save_bundle(model, config, out_dir, card=card)
    shown = _sample(monitored, N_PROJECTOR, training.seed)
    write_projector(model, monitored.windows[shown],
                    [(Path(monitored.paths[monitored.recording[i]]).name,
                      monitored.start_s[i], monitored.silence[i]) for i in shown],
                    out_dir / "logs")
    return TrainingResult(out_dir, history, metrics, failures, seconds)
