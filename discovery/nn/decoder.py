"""Decoder ("one to many") and silence head, both reading the latent code."""

from __future__ import annotations

from typing import Tuple

import keras
from keras import layers

from discovery.nn.layers import same_padding


def build_decoder(
    *,
    input_frames: int,
    input_features: int,
    latent_dim: int,
    decoder_units: int,
    decoder_filters: int,
    conv_kernel: Tuple[int, int] = (3, 3),
    name: str = "decoder",
) -> keras.Model:
    """Builds the decoder: one latent code -> a whole window of features.

    ```
    z -> RepeatVector(T) -> LSTM (sequences) -> Dense(F * C, relu) -> (T, F, C)
      -> Conv2DTranspose(1, stride 1, same, sigmoid) -> (T, F, 1)
    ```
    The Dense layer already produces every feature of every frame, so the
    "deconvolution" runs at stride 1 with 'same' padding: the output shape is exactly
    `(T, F, 1)` for any T and F, odd ones included, with no cropping. The sigmoid
    matches the features, which are normalised to [0, 1].

    Args:
        input_frames: int > 0. Window length T, in feature frames.
        input_features: int > 0. Number of features F per frame.
        latent_dim: int > 0. Size of the latent code.
        decoder_units: int > 0. Units of the decoder LSTM.
        decoder_filters: int > 0. Channels C of the feature map fed to the
            Conv2DTranspose layer.
        conv_kernel: tuple of two ints > 0. Conv2DTranspose kernel, (frames,
            features); `build_vae` mirrors the encoder's kernel. Defaults to (3, 3).
        name: str. Model name. Defaults to "decoder".

    Returns:
        A functional `keras.Model` from `z` `(batch, latent_dim)` to the
        reconstruction `(batch, T, F, 1)` in [0, 1].
    """
    z = keras.Input(shape=(latent_dim,), name="z")
    x = layers.RepeatVector(input_frames, name="repeat")(z)
    x = layers.LSTM(decoder_units, return_sequences=True, name="lstm")(x)
    # Dense on a sequence acts frame by frame, like TimeDistributed(Dense).
    x = layers.Dense(input_features * decoder_filters, activation="relu",
                     name="frame_dense")(x)
    x = layers.Reshape((input_frames, input_features, decoder_filters),
                       name="feature_map")(x)
    # 'same' made explicit: a 'valid' deconvolution cropped as TensorFlow crops (the
    # odd cell after). The same numbers, but on some CPUs (AMD EPYC, AVX2) its
    # gradient ran 1.7x faster than the 'same' path with a kernel as tall as the
    # spectrum; the sigmoid follows the crop.
    x = layers.Conv2DTranspose(1, tuple(conv_kernel), padding="valid",
                               name="deconvolution")(x)
    x = layers.Cropping2D(same_padding(conv_kernel), name="crop")(x)
    reconstruction = layers.Activation("sigmoid", name="sigmoid")(x)
    return keras.Model(z, reconstruction, name=name)


def build_silence_head(
    *, latent_dim: int, silence_units: int, name: str = "silence_head"
) -> keras.Model:
    """Builds the silence detector: `z_mean` -> P(window is silence).

    Args:
        latent_dim: int > 0. Size of the latent code.
        silence_units: int > 0. Units of the hidden ReLU layer.
        name: str. Model name. Defaults to "silence_head".

    Returns:
        A functional `keras.Model` from `(batch, latent_dim)` to probabilities
        `(batch, 1)`; the output layer is named "silence".
    """
    z_mean = keras.Input(shape=(latent_dim,), name="z_mean")
    x = layers.Dense(silence_units, activation="relu", name="silence_hidden")(z_mean)
    silence = layers.Dense(1, activation="sigmoid", name="silence")(x)
    return keras.Model(z_mean, silence, name=name)
