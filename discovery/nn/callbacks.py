"""Keras callbacks that put more than scalars into TensorBoard.

- `ReconstructionImages`: a few fixed windows beside their reconstructions, each epoch.
- `SilenceConfusion`: the silence detector's confusion matrix (as an image and a text
  table) and balanced accuracy on held-out windows, each epoch.
- `write_projector`: embeddings of sample windows with their metadata, for the
  TensorBoard projector.

And one that keeps the record of a training run that was interrupted and resumed:

- `TrainingRecord`: every epoch's logs and the time so far, in a JSON file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf
from sklearn import metrics

from discovery.config import SILENCE_THRESHOLD
from discovery.files import write_text
from discovery.frontend.audio import PathLike
from discovery.nn.vae import VAE


def _image(values: np.ndarray) -> np.ndarray:
    """(T, F) in [0, 1] -> (F, T, 1) image, low frequencies at the bottom."""
    return np.clip(values.T[::-1, :, None], 0.0, 1.0)


class ReconstructionImages(keras.callbacks.Callback):
    """Writes input | reconstruction images of fixed windows at the end of each epoch.

    Args:
        windows: (n, T, F) float32 windows to show (a handful).
        log_dir: the TensorBoard log folder; images go to `log_dir/images`.
    """

    def __init__(self, windows: np.ndarray, *, log_dir: PathLike):
        super().__init__()
        self.windows = np.asarray(windows, dtype=np.float32)
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "images"))

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        outputs = self.model(self.windows[..., None], training=False)
        reconstruction = keras.ops.convert_to_numpy(outputs["reconstruction"])[..., 0]
        gap = np.ones((self.windows.shape[2], 2, 1), dtype=np.float32)
        pairs = np.stack([np.concatenate([_image(x), gap, _image(y)], axis=1)
                          for x, y in zip(self.windows, reconstruction)])
        with self.writer.as_default():
            tf.summary.image("input | reconstruction", pairs, step=epoch,
                             max_outputs=len(pairs))
        self.writer.flush()


def _confusion(truth: np.ndarray, guess: np.ndarray) -> Tuple[np.ndarray, float]:
    """The silence confusion matrix and the balanced accuracy read from it.

    Args:
        truth: (n,) bool, the window is silence.
        guess: (n,) bool, the detector says silence.

    Returns:
        (matrix (2, 2) int, rows true sound and silence, columns said sound and
        silence; balanced accuracy, the mean recall of the two rows). A class absent in
        truth has recall 0, so the value stays defined (at most 0.5) where
        scikit-learn's `balanced_accuracy_score` would leave that class out.
    """
    matrix = metrics.confusion_matrix(truth, guess, labels=[False, True])
    recall = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    return matrix, float(recall.mean())


class SilenceConfusion(keras.callbacks.Callback):
    """Writes the silence detector's confusion matrix on held-out windows each epoch.

    Also adds "silence_balanced_accuracy" to the epoch logs (see `_confusion`: a
    class absent from `silence` counts with recall 0).

    Args:
        windows: (n, T, F) windows.
        silence: (n,) targets, 1 (or True) for silence.
        log_dir: the TensorBoard log folder; results go to `log_dir/silence`.

    Attributes:
        balanced_accuracy: the last epoch's value, or None before the first.
    """

    def __init__(self, windows: np.ndarray, silence: np.ndarray, *, log_dir: PathLike):
        super().__init__()
        self.windows = np.asarray(windows, dtype=np.float32)
        self.silence = np.asarray(silence).astype(bool)
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "silence"))
        self.balanced_accuracy: Optional[float] = None

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        outputs = self.model.predict(self.windows[..., None], batch_size=256, verbose=0)
        guess = np.asarray(outputs["silence"]).reshape(-1) >= SILENCE_THRESHOLD
        matrix, self.balanced_accuracy = _confusion(self.silence, guess)
        if logs is not None:
            logs["silence_balanced_accuracy"] = self.balanced_accuracy
        normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        # Rows: true sound, true silence; columns: said sound, said silence.
        image = np.kron(normalised, np.ones((32, 32)))[None, :, :, None]
        table = ("| true \\ said | sound | silence |\n|---|---|---|\n"
                 f"| sound | {matrix[0, 0]} | {matrix[0, 1]} |\n"
                 f"| silence | {matrix[1, 0]} | {matrix[1, 1]} |")
        with self.writer.as_default():
            tf.summary.scalar("balanced_accuracy", self.balanced_accuracy, step=epoch)
            tf.summary.image("confusion (rows true sound/silence, columns said)",
                             image.astype(np.float32), step=epoch)
            tf.summary.text("confusion", table, step=epoch)
        self.writer.flush()


def write_projector(model: VAE, windows: np.ndarray, *,
                    metadata: Sequence[Tuple[str, float, float]],
                    log_dir: PathLike) -> Path:
    """Save embeddings of `windows` and a metadata table for TensorBoard's projector.

    Args:
        model: a trained `VAE`.
        windows: (n, T, F) windows.
        metadata: n rows of (file name, start_s, silence target).
        log_dir: the TensorBoard log folder; files go to `log_dir/projector`.

    Returns:
        The projector's folder, `log_dir/projector`.
    """
    from tensorboard.plugins import projector

    folder = Path(log_dir) / "projector"
    folder.mkdir(parents=True, exist_ok=True)
    z_mean, _ = model.embed(np.asarray(windows, dtype=np.float32))
    with open(folder / "metadata.tsv", "w", encoding="utf-8") as handle:
        handle.write("file\tstart_s\tsilence\n")
        for name, start, silence in metadata:
            handle.write(f"{name}\t{start:.3f}\t{int(silence)}\n")
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(z_mean))
    checkpoint.save(str(folder / "embedding.ckpt"))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(str(folder), config)
    # TensorBoard lists only folders holding an event file as runs; the projector
    # looks for its config in runs, so give the folder one.
    writer = tf.summary.create_file_writer(str(folder))
    writer.flush()
    writer.close()
    return folder


class TrainingRecord(keras.callbacks.Callback):
    """Keeps every epoch's logs in a JSON file, across interrupted and resumed runs.

    `BackupAndRestore` resumes `fit` at the last finished epoch, but then `History`
    holds only the epochs of the resumed run. This callback reads what earlier runs
    wrote to `path`, keeps as many epochs as the restored weights have seen (the first
    epoch this run starts at), and appends each new one, so `epochs` and
    `resumed_after` describe the whole training. List it after the callbacks that add
    values to the logs (`BetaWarmup`, `SilenceConfusion`) and before
    `BackupAndRestore`.

    Args:
        path: the JSON file; kept between runs.

    Attributes:
        epochs: one dict per epoch run over all runs: its logs, and "elapsed_s", the
            time spent in `fit` so far, in seconds.
        resumed_after: for each resumed run, how many epochs had finished before it.
        earlier_seconds: time earlier runs spent in `fit` on the epochs kept, in
            seconds.
    """

    def __init__(self, path: PathLike):
        super().__init__()
        self.path = Path(path)
        self.epochs, self.resumed_after = [], []
        self._earlier = self._read()
        self._begun = False
        self._started = time.perf_counter()
        self.earlier_seconds = 0.0

    def _read(self) -> dict:
        try:
            values = json.loads(self.path.read_text(encoding="utf-8"))
            return {"epochs": list(values["epochs"]),
                    "resumed_after": [int(n) for n in values["resumed_after"]]}
        except (OSError, ValueError, KeyError, TypeError):
            # No record (a fresh run) or an unreadable one: count from here.
            return {"epochs": [], "resumed_after": []}

    def _begin(self, first_epoch: int) -> None:
        self._begun = True
        self.epochs = self._earlier["epochs"][:first_epoch]
        self.resumed_after = [n for n in self._earlier["resumed_after"]
                              if n < first_epoch]
        if first_epoch > 0:
            self.resumed_after.append(first_epoch)
        self.earlier_seconds = (self.epochs[-1].get("elapsed_s", 0.0) if self.epochs
                                else 0.0)

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if not self._begun:
            self._begin(epoch)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        values = {name: float(value) for name, value in (logs or {}).items()}
        values["elapsed_s"] = self.earlier_seconds + time.perf_counter() - self._started
        self.epochs.append(values)
        write_text(self.path, json.dumps({"epochs": self.epochs,
                                          "resumed_after": self.resumed_after}))

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if not self._begun:
            # Resumed after the last epoch had finished: nothing was left to run.
            self._begin(len(self._earlier["epochs"]))


class PairSeparation(keras.callbacks.Callback):
    """ROC-AUC of held-out aligned window pairs against mismatched ones, each epoch.

    Label-free validation for the Siamese stage: a positive is a pair of windows that
    DTW aligned between two recordings (`discovery.mining`), a negative the same first
    window beside another pair's second window. The score is how well the cosine
    similarity of the embeddings (`z_mean`) tells them apart; it goes to the logs as
    `val_pair_roc_auc` (list this callback before `TensorBoard`).

    Args:
        first, second: (n, T, F) float32 windows, row i of each a positive pair.
        seed: int. Seeds the mismatching.
    """

    def __init__(self, first: np.ndarray, second: np.ndarray, *, seed: int = 0):
        super().__init__()
        self.first = np.asarray(first, dtype=np.float32)
        self.second = np.asarray(second, dtype=np.float32)
        n = len(self.first)
        # A derangement: every first window meets another pair's second window.
        self.shift = (np.arange(n) + np.random.default_rng(seed).integers(1, max(n, 2))) % max(n, 1)
        self.scores = []

    def score(self, vae: VAE) -> float:
        """The ROC-AUC under `vae`'s embeddings."""
        a = vae.embed(self.first).z_mean
        b = vae.embed(self.second).z_mean
        return pair_roc_auc(a, b, self.shift)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        value = self.score(self.model.vae if hasattr(self.model, "vae") else self.model)
        self.scores.append(value)
        if logs is not None:
            logs["val_pair_roc_auc"] = value


def pair_roc_auc(first: np.ndarray, second: np.ndarray, shift: np.ndarray) -> float:
    """ROC-AUC of cosine similarity: rows (first[i], second[i]) against
    (first[i], second[shift[i]]).

    Args:
        first, second: (n, d) vectors, row i of each a positive pair.
        shift: (n,) index of each row's negative partner in `second`.
    """
    first = first / np.maximum(np.linalg.norm(first, axis=1, keepdims=True), 1e-8)
    second = second / np.maximum(np.linalg.norm(second, axis=1, keepdims=True), 1e-8)
    positive = np.sum(first * second, axis=1)
    negative = np.sum(first * second[shift], axis=1)
    truth = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    return float(metrics.roc_auc_score(truth, np.concatenate([positive, negative])))
