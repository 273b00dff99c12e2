"""Encoder: a window of feature frames -> a latent Gaussian and a sample from it."""

from __future__ import annotations

from typing import Optional, Tuple

import keras
from keras import layers

from discovery.nn.layers import Sampling, same_padding


def build_encoder(
    *,
    input_frames: int,
    input_features: int,
    conv_filters: int,
    conv_kernel: Tuple[int, int],
    bilstm_units: int,
    lstm_units: int,
    latent_dim: int,
    seed: Optional[int] = None,
    name: str = "encoder",
) -> keras.Model:
    """Builds the convolutional-recurrent encoder.

    ```
    (T, F, 1) -> Conv2D(relu, same) -> MaxPool (1, F) -> (T, filters)
              -> BiLSTM (sequences) -> LSTM (last state)
              -> Dense z_mean, Dense z_log_var -> Sampling -> z
    ```
    Pooling over the whole frequency axis keeps, per frame and filter, the strongest
    response at any frequency, so the recurrent layers see a pitch-tolerant summary
    of each frame. With the seed-v4 sizes (128 frames, 256 features, 256 filters 8x8,
    128 units everywhere, latent 128) the encoder has 641,024 parameters.

    Args:
        input_frames: int > 0. Window length T, in feature frames.
        input_features: int > 0. Number of features F per frame.
        conv_filters: int > 0. Filters of the Conv2D layer.
        conv_kernel: tuple of two ints > 0. Conv2D kernel, (frames, features).
        bilstm_units: int > 0. Units of each direction of the Bidirectional LSTM.
        lstm_units: int > 0. Units of the second LSTM, whose last state feeds z.
        latent_dim: int > 0. Size of the latent code.
        seed: int or None. Seed of the `Sampling` layer. Defaults to None.
        name: str. Model name. Defaults to "encoder".

    Returns:
        A functional `keras.Model` from windows `(batch, T, F, 1)` to the tuple
        `(z_mean, z_log_var, z)`, each `(batch, latent_dim)`. `z` equals `z_mean`
        unless called with `training=True`.
    """
    windows = keras.Input(shape=(input_frames, input_features, 1), name="windows")
    # 'same' padding made explicit (as TensorFlow pads: the odd cell after), then a
    # 'valid' convolution: the same numbers, but on some CPUs (AMD EPYC, AVX2)
    # TensorFlow's 'same' path for a kernel as tall as the spectrum ran 3x slower.
    x = layers.ZeroPadding2D(same_padding(conv_kernel), name="conv_padding")(windows)
    x = layers.Conv2D(
        conv_filters, tuple(conv_kernel), padding="valid", activation="relu", name="conv"
    )(x)
    x = layers.MaxPooling2D(pool_size=(1, input_features), name="frequency_pool")(x)
    x = layers.Reshape((input_frames, conv_filters), name="frames")(x)
    x = layers.Bidirectional(
        layers.LSTM(bilstm_units, return_sequences=True), name="bilstm"
    )(x)
    x = layers.LSTM(lstm_units, name="lstm")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling(seed=seed, name="sampling")((z_mean, z_log_var))
    return keras.Model(windows, (z_mean, z_log_var, z), name=name)
