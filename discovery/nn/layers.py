"""Custom layers of the discovery VAE.

Only what Keras lacks lives here: the reparameterisation step, and the cells that
'same' padding adds around a convolution (`same_padding`). Pooling over the whole
frequency axis is a plain `MaxPooling2D(pool_size=(1, n_features))` followed by a
`Reshape` (see `encoder.py`), which keeps the seed-v4 layer list recognisable.
"""

from __future__ import annotations

from typing import Optional, Tuple

import keras
from keras import layers, ops


def same_padding(kernel: Tuple[int, int]) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """The ((before, after), (before, after)) cells TensorFlow's 'same' padding adds
    around a stride-1 convolution with this kernel, the odd cell after; a 'valid'
    convolution transposed is cropped by as many to give 'same' back."""
    return tuple(((size - 1) // 2, size // 2) for size in kernel)


@keras.saving.register_keras_serializable(package="discovery")
class Sampling(layers.Layer):
    """Draws `z = z_mean + exp(z_log_var / 2) * epsilon`, `epsilon ~ N(0, I)`.

    The reparameterisation trick (Kingma & Welling, 2014, "Auto-Encoding Variational
    Bayes"): the noise is an input to the graph, so gradients flow to `z_mean` and
    `z_log_var`. Like `Dropout`, the layer is random only while training; at inference
    it returns `z_mean`, so `predict`, saved models and embeddings are deterministic.

    Args:
        seed: int or None. Seed of the layer's `keras.random.SeedGenerator`; the same
            seed gives the same sequence of noise draws. Defaults to None (random).
        **kwargs: Standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tuple `(z_mean, z_log_var)`, each a float tensor `(batch, latent_dim)`.
        training: bool or None. Sample when True; return `z_mean` otherwise.

    Returns:
        z: float tensor `(batch, latent_dim)`.

    Example:
        >>> z = Sampling(seed=0)((ops.zeros((2, 4)), ops.zeros((2, 4))), training=True)
        >>> tuple(z.shape)
        (2, 4)
    """

    def __init__(self, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training: Optional[bool] = None):
        z_mean, z_log_var = inputs
        if not training:
            return z_mean
        epsilon = keras.random.normal(
            ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator
        )
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"seed": self.seed})
        return config
