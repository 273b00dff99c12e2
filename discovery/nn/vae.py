"""The variational autoencoder with a silence head, and its beta warm-up callback.

Losses, per window, then averaged over the batch (weighted by sample weights):

    reconstruction = sum over T x F of (window - reconstruction)^2
    kl             = -0.5 * sum over latent of (1 + log_var - mean^2 - exp(log_var))
    silence        = binary cross-entropy(silence target, P(silence))
    loss           = reconstruction + beta * kl + silence_weight * silence

Summing (not averaging) over cells and latent dimensions keeps the two terms of the
evidence lower bound on their natural scales (Kingma & Welling, 2014), so `beta` means
what it means in the beta-VAE literature (Higgins et al., 2017): beta = 1 is the plain
VAE, beta = 0 the plain autoencoder. Squared error rather than cross-entropy, because
features are continuous in [0, 1]: squared error is 0 for a perfect reconstruction,
cross-entropy against non-binary targets is not.
"""

from __future__ import annotations

import weakref
from typing import Any, Dict, NamedTuple, Optional, Tuple, Union

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from discovery.config import ModelConfig, PipelineConfig
from discovery.errors import ModelError, ParameterError
from discovery.nn.augment import warp_frequency
from discovery.nn.decoder import build_decoder, build_silence_head
from discovery.nn.encoder import build_encoder

# Saved in every VAE's config. Without discovery imported, `keras.saving.load_model`
# fails with "Could not locate class 'VAE'" and prints that config, hint included;
# Keras imports no module outside its own packages, so the file cannot do more.
LOAD_HINT_KEY = "how_to_load"
LOAD_HINT = ("This is a discovery model: run `import discovery.nn` before "
             "keras.saving.load_model(), or load its bundle folder with "
             "discovery.load_model(folder).")

class WindowEmbedding(NamedTuple):
    """What `VAE.embed` returns; unpacks as `z_mean, silence`.

    Attributes:
        z_mean: (n, latent_dim) float32, the deterministic code of each window.
        silence: (n,) float32, P(window is silence).
    """

    z_mean: np.ndarray
    silence: np.ndarray


# One traced embedding function per model (see `VAE.embed`).
_EMBED_FUNCTIONS = weakref.WeakKeyDictionary()


def _with_channel(windows):
    """`(batch, T, F)` -> `(batch, T, F, 1)`; 4-D windows pass unchanged."""
    if len(windows.shape) == 3:
        return ops.expand_dims(windows, -1)
    return windows


def _weighted_mean(values, weights):
    """Mean of per-window `values` `(batch,)`, weighted when `weights` is given."""
    if weights is None:
        return ops.mean(values)
    # Divide by the total weight, not the batch size, so zero-weight (padding)
    # windows change neither the value nor the scale of the loss.
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), 1e-7)


@keras.saving.register_keras_serializable(package="discovery")
class VAE(keras.Model):
    """Convolutional-recurrent VAE over feature windows, with a silence head.

    ```
    windows (T, F, 1) -> encoder -> z_mean, z_log_var, z
                         z       -> decoder      -> reconstruction (T, F, 1)
                         z_mean  -> silence_head -> P(silence)
    ```
    Sizes follow `ModelConfig` (see `build_vae`). `fit` takes `(windows,
    silence_targets)` or `(windows, silence_targets, sample_weight)` batches; plain
    `windows` batches train without the silence term. Compile with an optimizer only.

    Args:
        input_frames: int > 0. Window length T, in feature frames. Defaults to 32.
        input_features: int > 0. Features F per frame. Defaults to 64.
        conv_filters: int > 0. Encoder Conv2D filters. Defaults to 32.
        conv_kernel: tuple of two ints > 0. Encoder Conv2D kernel and decoder
            Conv2DTranspose kernel, (frames, features). Defaults to (5, 5).
        bilstm_units: int > 0. Units per direction of the BiLSTM. Defaults to 64.
        lstm_units: int > 0. Units of the encoder's last LSTM. Defaults to 64.
        latent_dim: int > 0. Size of the latent code. Defaults to 32.
        decoder_units: int > 0. Units of the decoder LSTM. Defaults to 64.
        decoder_filters: int > 0. Channels before the Conv2DTranspose. Defaults to 8.
        silence_units: int > 0. Hidden units of the silence head. Defaults to 16.
        seed: int or None. Seed of the sampling noise. Defaults to 0.
        beta: float >= 0. Initial weight of the KL term, held in a non-trainable
            variable so `BetaWarmup` can change it during `fit`. Defaults to 0.0.
        silence_weight: float >= 0. Weight of the silence cross-entropy. Defaults
            to 1.0.
        warp: float in [0, 0.5]. Largest frequency warp of each training window
            (`nn.augment.warp_frequency`, input and target alike): voices the data
            does not hold. Training only; 0 trains on the windows as they are.
            Defaults to 0.0.
        **kwargs: Standard `keras.Model` arguments (`name`, ...).

    Call arguments:
        windows: float tensor `(batch, T, F, 1)` or `(batch, T, F)` in [0, 1].
        training: bool or None. When True, `z` is sampled and decoded; otherwise
            `z_mean` is decoded, so inference is deterministic.

    Returns:
        dict with "reconstruction" `(batch, T, F, 1)`, "z_mean" and "z_log_var"
        `(batch, latent_dim)`, and "silence" `(batch,)`, P(window is silence).
    """

    def __init__(self, *, input_frames: int = 32, input_features: int = 64,
                 conv_filters: int = 32, conv_kernel: Tuple[int, int] = (5, 5),
                 bilstm_units: int = 64, lstm_units: int = 64, latent_dim: int = 32,
                 decoder_units: int = 64, decoder_filters: int = 8,
                 silence_units: int = 16, seed: Optional[int] = 0, beta: float = 0.0,
                 silence_weight: float = 1.0, warp: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.input_frames = input_frames
        self.input_features = input_features
        self.conv_filters = conv_filters
        self.conv_kernel = tuple(conv_kernel)
        self.bilstm_units = bilstm_units
        self.lstm_units = lstm_units
        self.latent_dim = latent_dim
        self.decoder_units = decoder_units
        self.decoder_filters = decoder_filters
        self.silence_units = silence_units
        self.seed = seed
        self.silence_weight = float(silence_weight)
        self.warp = float(warp)
        self.encoder = build_encoder(
            input_frames=input_frames, input_features=input_features,
            conv_filters=conv_filters, conv_kernel=self.conv_kernel,
            bilstm_units=bilstm_units, lstm_units=lstm_units, latent_dim=latent_dim,
            seed=seed)
        self.decoder = build_decoder(
            input_frames=input_frames, input_features=input_features,
            latent_dim=latent_dim, decoder_units=decoder_units,
            decoder_filters=decoder_filters, conv_kernel=self.conv_kernel)
        self.silence_head = build_silence_head(
            latent_dim=latent_dim, silence_units=silence_units)
        # A variable, not a float: a callback can change it between epochs without
        # retracing the compiled train step, and it is saved with the weights.
        self.beta = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(float(beta)),
            trainable=False, name="beta")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self.silence_loss_tracker = keras.metrics.Mean(name="silence_loss")
        self.silence_accuracy = keras.metrics.BinaryAccuracy(name="silence_accuracy")
        # Every sub-model is functional and built already; nothing waits for a shape.
        self.built = True

    @property
    def metrics(self) -> list:
        # Listed so that fit/evaluate reset them each epoch and log every term
        # (also as val_* with validation data) to History and TensorBoard.
        return [self.loss_tracker, self.reconstruction_loss_tracker,
                self.kl_loss_tracker, self.silence_loss_tracker,
                self.silence_accuracy]

    def call(self, windows, training: Optional[bool] = None) -> Dict[str, Any]:
        windows = _with_channel(windows)
        z_mean, z_log_var, z = self.encoder(windows, training=training)
        reconstruction = self.decoder(z, training=training)
        silence = self.silence_head(z_mean, training=training)
        return {"reconstruction": reconstruction, "z_mean": z_mean,
                "z_log_var": z_log_var, "silence": ops.squeeze(silence, axis=-1)}

    def compute_losses(self, windows, outputs: Dict[str, Any], *, silence_targets=None,
                       sample_weight=None) -> Dict[str, Any]:
        """The loss terms of one batch (see the module docstring).

        Args:
            windows: float tensor `(batch, T, F, 1)` or `(batch, T, F)`.
            outputs: dict returned by `call` on `windows`.
            silence_targets: float tensor `(batch,)` or `(batch, 1)` in {0, 1}, or
                None to leave the silence term out (it is then 0).
            sample_weight: float tensor `(batch,)` or `(batch, 1)`, or None.

        Returns:
            dict of scalar tensors "loss", "reconstruction_loss", "kl_loss",
            "silence_loss".
        """
        weights = None
        if sample_weight is not None:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        windows = ops.cast(_with_channel(windows), "float32")
        # Cast outputs so the losses stay float32 under a mixed-precision policy.
        reconstruction = ops.cast(outputs["reconstruction"], "float32")
        z_mean = ops.cast(outputs["z_mean"], "float32")
        z_log_var = ops.cast(outputs["z_log_var"], "float32")
        squared_error = ops.sum(ops.square(windows - reconstruction), axis=(1, 2, 3))
        kl = -0.5 * ops.sum(
            1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
        reconstruction_loss = _weighted_mean(squared_error, weights)
        kl_loss = _weighted_mean(kl, weights)
        if silence_targets is None:
            silence_loss = ops.zeros((), dtype="float32")
        else:
            targets = ops.reshape(ops.cast(silence_targets, "float32"), (-1,))
            silence = ops.cast(outputs["silence"], "float32")
            cross_entropy = ops.binary_crossentropy(targets, silence)
            silence_loss = _weighted_mean(cross_entropy, weights)
        loss = (reconstruction_loss + ops.cast(self.beta, "float32") * kl_loss
                + self.silence_weight * silence_loss)
        return {"loss": loss, "reconstruction_loss": reconstruction_loss,
                "kl_loss": kl_loss, "silence_loss": silence_loss}

    def _update_metrics(self, windows, outputs, losses, silence_targets,
                        sample_weight):
        # Weight each batch by its size (or total weight) so the epoch value is the
        # mean over windows, not over batches of unequal size.
        if sample_weight is None:
            batch_weight = ops.cast(ops.shape(windows)[0], "float32")
        else:
            batch_weight = ops.sum(ops.cast(sample_weight, "float32"))
        self.loss_tracker.update_state(losses["loss"], sample_weight=batch_weight)
        self.reconstruction_loss_tracker.update_state(
            losses["reconstruction_loss"], sample_weight=batch_weight)
        self.kl_loss_tracker.update_state(losses["kl_loss"], sample_weight=batch_weight)
        if silence_targets is not None:
            self.silence_loss_tracker.update_state(
                losses["silence_loss"], sample_weight=batch_weight)
            weights = (None if sample_weight is None
                       else ops.reshape(sample_weight, (-1,)))
            self.silence_accuracy.update_state(
                ops.reshape(silence_targets, (-1,)), outputs["silence"],
                sample_weight=weights)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data) -> Dict[str, Any]:
        windows, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self.warp > 0:
            flat = windows if len(windows.shape) == 3 else windows[..., 0]
            windows = _with_channel(warp_frequency(flat, self.warp, seed=self.seed))
        with tf.GradientTape() as tape:
            outputs = self(windows, training=True)
            losses = self.compute_losses(windows, outputs, silence_targets=targets,
                                         sample_weight=sample_weight)
            # Under tf.distribute the replicas' gradients are summed; dividing by
            # their number makes the sum a mean over the global batch.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled_loss = self.optimizer.scale_loss(losses["loss"] / replicas)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        # Without silence targets the head gets no gradient; skip it quietly.
        self.optimizer.apply_gradients(
            [(gradient, weight) for gradient, weight
             in zip(gradients, self.trainable_weights) if gradient is not None])
        return self._update_metrics(windows, outputs, losses, targets, sample_weight)

    def test_step(self, data) -> Dict[str, Any]:
        windows, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        outputs = self(windows, training=False)
        losses = self.compute_losses(windows, outputs, silence_targets=targets,
                                     sample_weight=sample_weight)
        return self._update_metrics(windows, outputs, losses, targets, sample_weight)

    def embed(self, windows, *, batch_size: int = 256) -> WindowEmbedding:
        """Embeds windows: the deterministic code `z_mean` and P(silence).

        Args:
            windows: array-like `(n, T, F)` or `(n, T, F, 1)`, features in [0, 1].
            batch_size: int > 0. Windows per forward pass. Defaults to 256.

        Returns:
            `WindowEmbedding(z_mean, silence)` of float32 NumPy arrays,
            `(n, latent_dim)` and `(n,)`.

        Raises:
            ModelError: the windows' frames or features differ from the model's.
        """
        windows = np.asarray(windows, dtype="float32")
        expected = (self.input_frames, self.input_features)
        if windows.ndim not in (3, 4) or windows.shape[1:3] != expected or (
                windows.ndim == 4 and windows.shape[3] != 1):
            raise ModelError(
                f"Invalid windows for this model: expected shape (n, {expected[0]}, "
                f"{expected[1]}) (frames, features), received {windows.shape}.")
        if len(windows) == 0:
            return WindowEmbedding(np.zeros((0, self.latent_dim), "float32"),
                                   np.zeros(0, "float32"))
        if windows.ndim == 3:
            windows = windows[..., np.newaxis]
        # Encoder and head only: the decoder is not needed for embeddings. One traced
        # function with an open batch axis: `predict` would retrace for every new
        # final-batch size, i.e. for almost every recording.
        # Kept outside the model so that saving and export never see it.
        function = _EMBED_FUNCTIONS.get(self)
        if function is None:
            function = _EMBED_FUNCTIONS[self] = tf.function(
                self._embed_batch, input_signature=[
                    tf.TensorSpec((None,) + expected + (1,), tf.float32)])
        z_means, silences = [], []
        for start in range(0, len(windows), batch_size):
            z_mean, silence = function(windows[start:start + batch_size])
            z_means.append(z_mean.numpy())
            silences.append(silence.numpy())
        return WindowEmbedding(np.concatenate(z_means), np.concatenate(silences))

    def _embed_batch(self, windows):
        z_mean, _, _ = self.encoder(windows, training=False)
        return z_mean, self.silence_head(z_mean, training=False)[:, 0]

    def get_config(self) -> Dict[str, Any]:
        # The hint goes first: Keras prints this config when it cannot find the class,
        # the one place a saved file can tell a user who did not import discovery.
        config = {LOAD_HINT_KEY: LOAD_HINT}
        config.update(super().get_config())
        config.update({
            "input_frames": self.input_frames,
            "input_features": self.input_features,
            "conv_filters": self.conv_filters,
            "conv_kernel": self.conv_kernel,
            "bilstm_units": self.bilstm_units,
            "lstm_units": self.lstm_units,
            "latent_dim": self.latent_dim,
            "decoder_units": self.decoder_units,
            "decoder_filters": self.decoder_filters,
            "silence_units": self.silence_units,
            "seed": self.seed,
            "beta": float(ops.convert_to_numpy(self.beta)),
            "silence_weight": self.silence_weight,
            "warp": self.warp,
        })
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> VAE:
        # The hint is a note for people, not an argument (files saved before it was
        # added load too).
        config = {key: value for key, value in config.items() if key != LOAD_HINT_KEY}
        return cls(**config)


def build_vae(config: Union[ModelConfig, PipelineConfig], *, beta: Optional[float] = None,
              silence_weight: Optional[float] = None, input_frames: Optional[int] = None,
              input_features: Optional[int] = None, name: str = "vae") -> VAE:
    """Builds a `VAE` from settings.

    Args:
        config: `PipelineConfig` (its `model` section, and the input shape its feature
            and window settings give), or a `ModelConfig` with `input_frames` and
            `input_features`.
        beta: float >= 0 or None. Initial KL weight. None takes
            `config.training.beta` for a `PipelineConfig`, else 0.0.
        silence_weight: float >= 0 or None. Weight of the silence cross-entropy.
            None takes `config.training.silence_weight` for a `PipelineConfig`,
            else 1.0.
        input_frames, input_features: int > 0 or None. The input window's frames and
            features, for a `ModelConfig` (a `PipelineConfig` derives them; giving
            them too is an error). Defaults to None.
        name: str. Model name. Defaults to "vae".

    Returns:
        An uncompiled `VAE`; compile it with an optimizer only.

    Raises:
        ParameterError: `config` is neither a `ModelConfig` nor a `PipelineConfig`, or
            the input shape is missing (`ModelConfig`) or given twice (`PipelineConfig`).
    """
    shape = {"input_frames": input_frames, "input_features": input_features}
    warp = 0.0
    if isinstance(config, PipelineConfig):
        given = [name for name, value in shape.items() if value is not None]
        if given:
            raise ParameterError(
                f"Invalid value for `{given[0]}`: a PipelineConfig derives it from its "
                f"feature and window settings, received {shape[given[0]]!r}.")
        shape = {"input_frames": config.input_frames,
                 "input_features": config.input_features}
        beta = config.training.beta if beta is None else beta
        if silence_weight is None:
            silence_weight = config.training.silence_weight
        warp = config.training.warp
        config = config.model
    if not isinstance(config, ModelConfig):
        raise ParameterError(
            "Invalid value for `config`: expected a ModelConfig or PipelineConfig, "
            f"received {type(config).__name__}.")
    for name, value in shape.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(
                f"Invalid value for `{name}`: expected an integer > 0 (the input "
                f"window's shape, needed with a ModelConfig), received {value!r}.")
    return VAE(**shape, **config.to_dict(), beta=0.0 if beta is None else beta,
               silence_weight=1.0 if silence_weight is None else silence_weight,
               warp=warp, name=name)


class BetaWarmup(keras.callbacks.Callback):
    """Raises the model's KL weight linearly from 0 to `beta` over the first epochs.

    At the start of epoch `e` (0-based, absolute, so resumed runs continue the ramp)
    it sets `model.beta` to `beta * min(1, e / warmup_epochs)`; with
    `warmup_epochs=0` beta is `beta` from the first epoch. Starting as a plain
    autoencoder and adding the KL term gradually avoids posterior collapse (Bowman
    et al., 2016). The value is also written to the epoch logs as "beta"; list this
    callback before `TensorBoard` for it to be plotted.

    Args:
        beta: float >= 0. KL weight after warm-up.
        warmup_epochs: int >= 0. Epochs of the linear ramp. Defaults to 5.

    Raises:
        ParameterError: `beta` is not a number >= 0, or `warmup_epochs` not an
            integer >= 0.
    """

    def __init__(self, beta: float, *, warmup_epochs: int = 5):
        super().__init__()
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
            raise ParameterError(
                f"Invalid value for `beta`: expected a number >= 0, received {beta!r}.")
        if (isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int)
                or warmup_epochs < 0):
            raise ParameterError(
                "Invalid value for `warmup_epochs`: expected an integer >= 0, "
                f"received {warmup_epochs!r}.")
        self.beta = float(beta)
        self.warmup_epochs = warmup_epochs

    def value(self, epoch: int) -> float:
        """The KL weight for 0-based `epoch`."""
        if self.warmup_epochs == 0:
            return self.beta
        return self.beta * min(1.0, epoch / self.warmup_epochs)

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self.model.beta.assign(self.value(epoch))

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if logs is not None:
            logs["beta"] = self.value(epoch)
