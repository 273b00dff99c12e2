"""Augmentations of feature windows `(batch, T, F)` in [0, 1], drawn per window.

- `warp_frequency`: the mel axis stretched or squeezed (vocal tract length
  perturbation, Jaitly & Hinton 2013): another speaker's vocal tract;
- `stretch_time`: the time axis resampled about the centre: another speaking rate;
- `equalise`: a smooth level curve over the bands: another microphone and room.

The Siamese stage warps one window of each pair (nn/siamese.py); the VAE can warp
its training windows (`TrainConfig.warp`).
"""

from __future__ import annotations

import math

import tensorflow as tf


def _scale_axis(windows, spread: float, seed, axis: int, fixed_point: str):
    """Each window's `axis` (1: time, 2: frequency) resampled at positions scaled by a
    factor ~ U[1 - spread, 1 + spread] about its first index ("start") or its middle
    ("centre"), interpolated linearly between neighbours; positions past either end
    read the end."""
    n = tf.shape(windows)[axis]
    factor = tf.random.uniform((tf.shape(windows)[0], 1), 1.0 - spread, 1.0 + spread,
                               seed=seed)
    last = tf.cast(n - 1, tf.float32)
    about = 0.0 if fixed_point == "start" else 0.5 * last
    position = tf.clip_by_value(
        about + (tf.cast(tf.range(n), tf.float32)[None, :] - about) * factor, 0.0, last)
    low = tf.cast(tf.floor(position), tf.int32)
    high = tf.minimum(low + 1, n - 1)
    weight = position - tf.cast(low, tf.float32)
    weight = weight[:, :, None] if axis == 1 else weight[:, None, :]
    lower = tf.gather(windows, low, axis=axis, batch_dims=1)
    upper = tf.gather(windows, high, axis=axis, batch_dims=1)
    return lower * (1.0 - weight) + upper * weight


def warp_frequency(windows, max_warp: float, seed=None):
    """Each window's frequency axis resampled at `k * alpha`, alpha ~ U[1 - w, 1 + w].

    Args:
        windows: (batch, T, F) float tensor.
        max_warp: float in [0, 1). 0 returns the windows unchanged.

    Returns:
        (batch, T, F) float tensor; bins past the top read the top bin.
    """
    if max_warp <= 0:
        return windows
    return _scale_axis(windows, max_warp, seed, axis=2, fixed_point="start")


def stretch_time(windows, max_stretch: float, seed=None):
    """Each window's time axis resampled about its centre at rate beta,
    beta ~ U[1 - s, 1 + s] (another speaking rate).

    Args:
        windows: (batch, T, F) float tensor.
        max_stretch: float in [0, 1). 0 returns the windows unchanged.

    Returns:
        (batch, T, F) float tensor; frames past either end read the end frame.
    """
    if max_stretch <= 0:
        return windows
    return _scale_axis(windows, max_stretch, seed, axis=1, fixed_point="centre")


def equalise(windows, max_level: float, seed=None):
    """A smooth random level curve over each window's bands (another microphone and
    room): gain, tilt and one bend, each ~ U[-m, m] in normalised units (1 is the
    features' dynamic range). Silent cells (0) stay silent; values stay in [0, 1].

    Args:
        windows: (batch, T, F) float tensor.
        max_level: float >= 0. 0 returns the windows unchanged.
    """
    if max_level <= 0:
        return windows
    n_features = tf.shape(windows)[2]
    band = tf.cast(tf.range(n_features), tf.float32) / tf.cast(
        tf.maximum(n_features - 1, 1), tf.float32)
    basis = tf.stack([tf.ones_like(band), tf.cos(math.pi * band),
                      tf.cos(2.0 * math.pi * band)])  # (3, F)
    amounts = tf.random.uniform((tf.shape(windows)[0], 3), -max_level, max_level, seed=seed)
    curve = tf.matmul(amounts, basis)[:, None, :]
    return tf.where(windows > 0, tf.clip_by_value(windows + curve, 0.0, 1.0), windows)
