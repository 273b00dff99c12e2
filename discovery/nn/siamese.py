"""Siamese fine-tuning of a trained VAE on aligned window pairs, without labels.

    pair (a, b): two windows centred on frames that DTW aligned between two different
    recordings' segments (`discovery.mining`), b's mel axis warped at random

    loss = VAE loss on a batch of ordinary windows (reconstruction, beta * KL,
           silence cross-entropy: the decoder and the silence head keep working)
         + siamese_weight * InfoNCE(z_mean(a), z_mean(b))

InfoNCE (van den Oord et al. 2018; the symmetric form of CLIP): within a batch of
pairs, each `a` must pick its own `b` among all the batch's `b`s by cosine similarity
over `temperature`, and each `b` its `a`. Every other pair of the batch is a negative,
so no negative has to be mined; pairs of one group (segments the mining linked,
directly or through others: `MinedPairs.groups`) are not each other's negatives, as
they are likely the same sound. Cosine, because the embeddings are compared by cosine
(ABX and DTW run on L2-normalised frames).

The warp stretches or squeezes the frequency axis by a factor drawn uniformly from
[1 - warp, 1 + warp] (vocal tract length perturbation, Jaitly & Hinton 2013): pairs
mined without labels are mostly of one speaker, and the warp stands in for another
speaker's vocal tract.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import tensorflow as tf
from keras import ops

from discovery.errors import ParameterError
from discovery.nn.augment import equalise, stretch_time, warp_frequency
from discovery.nn.vae import VAE

# InfoNCE (pull pairs together, push the batch's other pairs away) or the
# correspondence autoencoder's objective (decode each window into its partner).
OBJECTIVES = ("infonce", "correspondence")


def info_nce(z_a, z_b, temperature: float, groups=None):
    """Symmetric InfoNCE of paired rows, and the share of rows that find their pair.

    Args:
        z_a, z_b: (batch, d) float tensors; row i of each is a positive pair.
        temperature: float > 0.
        groups: (batch,) tensor or None. Rows of one group, other than the row's own
            pair, are left out of each other's negatives (likely the same sound).

    Returns:
        (loss, accuracy) scalar tensors.
    """
    z_a = tf.math.l2_normalize(tf.cast(z_a, tf.float32), axis=-1)
    z_b = tf.math.l2_normalize(tf.cast(z_b, tf.float32), axis=-1)
    logits = tf.matmul(z_a, z_b, transpose_b=True) / temperature
    n = tf.shape(logits)[0]
    if groups is not None:
        masked = tf.logical_and(tf.equal(groups[:, None], groups[None, :]),
                                tf.logical_not(tf.eye(n, dtype=tf.bool)))
        logits = tf.where(masked, tf.constant(-1e9, logits.dtype), logits)
    targets = tf.range(n)
    loss = 0.5 * (
        tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        + tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            targets, tf.transpose(logits))))
    found = tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), targets),
                    tf.float32)
    return loss, tf.reduce_mean(found)


def correspondence(decoder, z, own, partner):
    """Squared error of `decoder(z)` against the partner window, summed over cells and
    averaged over the batch (the VAE's reconstruction scale)."""
    del own  # the partner is the target; the window itself was the input
    decoded = ops.cast(decoder(z), "float32")[..., 0]
    return ops.mean(ops.sum(ops.square(decoded - ops.cast(partner, "float32")), axis=(1, 2)))


class SiameseVAE(keras.Model):
    """Trains a `VAE` with the Siamese term; the VAE itself is what gets saved.

    `fit` takes dict batches with "a", "b" (batch, T, F) aligned window pairs,
    optionally "group" (batch,) their groups, and "windows" (batch, T, F),
    "silence" (batch,) ordinary windows and their targets.

    Args:
        vae: the trained `VAE` to fine-tune (its weights change in place).
        siamese_weight: float >= 0. Weight of the InfoNCE term.
        temperature: float > 0. InfoNCE temperature.
        warp: float in [0, 1). Largest frequency warp of b during training.
        seed: int or None. Seeds the warp.
    """

    def __init__(self, vae: VAE, *, siamese_weight: float = 1.0, temperature: float = 0.1,
                 warp: float = 0.1, seed: Optional[int] = 0, objective: str = "infonce",
                 stretch: float = 0.0, level: float = 0.0, augment_both: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if objective not in OBJECTIVES:
            raise ParameterError(f"Invalid value for `objective`: expected one of "
                                 f"{OBJECTIVES}, received {objective!r}.")
        self.objective = objective
        self.vae = vae
        self.siamese_weight = float(siamese_weight)
        self.temperature = float(temperature)
        self.warp = float(warp)
        self.stretch = float(stretch)
        self.level = float(level)
        self.augment_both = bool(augment_both)
        self.seed = seed
        self.siamese_loss_tracker = keras.metrics.Mean(name="siamese_loss")
        self.pair_accuracy = keras.metrics.Mean(name="pair_accuracy")
        self.built = True

    @property
    def metrics(self) -> list:
        return self.vae.metrics + [self.siamese_loss_tracker, self.pair_accuracy]

    def call(self, windows, training: Optional[bool] = None):
        return self.vae(windows, training=training)

    def _augment(self, windows, side: int):
        # Ops sharing a seed draw the same numbers: one seed per augmentation and side.
        warp, stretch, level = ((None,) * 3 if self.seed is None
                                else range(6 * self.seed + 3 * side, 6 * self.seed + 3 * side + 3))
        windows = warp_frequency(windows, self.warp, seed=warp)
        windows = stretch_time(windows, self.stretch, seed=stretch)
        return equalise(windows, self.level, seed=level)

    def _terms(self, data, training: bool):
        windows, silence = data["windows"], data["silence"]
        outputs = self.vae(windows, training=training)
        losses = self.vae.compute_losses(windows, outputs, silence_targets=silence)
        a, b = data["a"], data["b"]
        if training:
            b = self._augment(b, 0)
            if self.augment_both:
                a = self._augment(a, 1)
        z_a, _, _ = self.vae.encoder(ops.expand_dims(a, -1), training=training)
        z_b, _, _ = self.vae.encoder(ops.expand_dims(b, -1), training=training)
        nce, accuracy = info_nce(z_a, z_b, self.temperature, data.get("group"))
        if self.objective == "infonce":
            siamese = nce
        else:  # each window's code decodes into its partner (Kamper et al. 2015)
            siamese = 0.5 * (correspondence(self.vae.decoder, z_a, data["a"], data["b"])
                             + correspondence(self.vae.decoder, z_b, b, data["a"]))
        losses["siamese_loss"] = siamese
        losses["loss"] = losses["loss"] + self.siamese_weight * siamese
        return windows, outputs, silence, losses, accuracy

    def _update(self, windows, outputs, silence, losses, accuracy) -> Dict[str, Any]:
        self.vae._update_metrics(windows, outputs, losses, silence, None)
        self.siamese_loss_tracker.update_state(losses["siamese_loss"])
        self.pair_accuracy.update_state(accuracy)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data) -> Dict[str, Any]:
        with tf.GradientTape() as tape:
            windows, outputs, silence, losses, accuracy = self._terms(data, True)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled_loss = self.optimizer.scale_loss(losses["loss"] / replicas)
        weights = self.vae.trainable_weights
        gradients = tape.gradient(scaled_loss, weights)
        self.optimizer.apply_gradients(
            [(g, w) for g, w in zip(gradients, weights) if g is not None])
        return self._update(windows, outputs, silence, losses, accuracy)

    def test_step(self, data) -> Dict[str, Any]:
        return self._update(*self._terms(data, False))
