"""The Siamese stage's pieces: InfoNCE, the augmentations, SiameseVAE, its callback."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from discovery.nn import build_vae, get_preset
from discovery.nn.callbacks import PairSeparation, pair_roc_auc
from discovery.nn.augment import equalise, stretch_time, warp_frequency
from discovery.nn.siamese import SiameseVAE, info_nce

TINY = get_preset("tiny")
FRAMES, FEATURES = TINY.input_frames, TINY.input_features


def test_info_nce_is_small_for_matched_rows_and_log_batch_for_blind_ones(rng):
    codes = np.eye(8, dtype="float32")
    loss, accuracy = info_nce(codes, codes, temperature=0.05)
    assert float(loss) < 1e-3 and float(accuracy) == 1.0
    # Every row alike: no row can find its pair, the loss is log(batch) and ties
    # resolve to the first row.
    same = np.ones((8, 4), "float32")
    loss, accuracy = info_nce(same, same, temperature=0.1)
    assert float(loss) == pytest.approx(np.log(8), rel=1e-5)
    assert float(accuracy) == pytest.approx(1 / 8)
    # Rows paired with the wrong partners score worse than the right ones.
    shuffled, _ = info_nce(codes, codes[::-1], temperature=0.05)
    assert float(shuffled) > 10


def test_info_nce_leaves_a_group_out_of_its_own_negatives():
    # Rows 0 and 1 hold one sound: unmasked, each is the other's perfect impostor.
    codes = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], "float32")
    blind, blind_accuracy = info_nce(codes, codes, temperature=0.1)
    masked, accuracy = info_nce(codes, codes, temperature=0.1,
                                groups=tf.constant([7, 7, 1, 2]))
    # Masked, every row finds its pair among the negatives that are left.
    assert float(accuracy) == 1.0 and float(blind_accuracy) < 1.0
    assert float(masked) < 1e-3 < float(blind)
    # Distinct groups mask nothing.
    distinct, _ = info_nce(codes, codes, temperature=0.1, groups=tf.constant([0, 1, 2, 3]))
    assert float(distinct) == pytest.approx(float(blind), rel=1e-6)


def test_warp_keeps_shape_and_flat_spectra_and_is_off_at_zero(rng):
    windows = tf.constant(rng.random((4, FRAMES, FEATURES)), tf.float32)
    assert warp_frequency(windows, 0.0) is windows
    warped = warp_frequency(windows, 0.2, seed=1)
    assert warped.shape == windows.shape
    assert not np.allclose(warped.numpy(), windows.numpy())
    # Interpolation between bins stays within their values; a flat spectrum stays flat.
    assert warped.numpy().min() >= windows.numpy().min() - 1e-6
    assert warped.numpy().max() <= windows.numpy().max() + 1e-6
    flat = tf.ones((2, FRAMES, FEATURES)) * 0.5
    np.testing.assert_allclose(warp_frequency(flat, 0.2, seed=1).numpy(), 0.5, atol=1e-6)
    # The lowest bin never moves (it is scaled by the factor, 0 * alpha = 0).
    np.testing.assert_allclose(warped.numpy()[:, :, 0], windows.numpy()[:, :, 0], atol=1e-6)


def test_stretch_keeps_the_centre_frame_and_steady_sounds_and_is_off_at_zero(rng):
    windows = tf.constant(rng.random((4, FRAMES, FEATURES)), tf.float32)
    assert stretch_time(windows, 0.0) is windows
    stretched = stretch_time(windows, 0.2, seed=1).numpy()
    assert stretched.shape == windows.shape
    assert not np.allclose(stretched, windows.numpy())
    assert stretched.min() >= windows.numpy().min() - 1e-6
    assert stretched.max() <= windows.numpy().max() + 1e-6
    # A sound that does not change over time is unchanged by any speaking rate.
    steady = tf.tile(tf.constant(rng.random((2, 1, FEATURES)), tf.float32), (1, FRAMES, 1))
    np.testing.assert_allclose(stretch_time(steady, 0.2, seed=1).numpy(), steady.numpy(),
                               atol=1e-6)
    # An odd-length window's middle frame is the fixed point of the stretch.
    odd = tf.constant(rng.random((3, 9, FEATURES)), tf.float32)
    np.testing.assert_allclose(stretch_time(odd, 0.3, seed=2).numpy()[:, 4], odd.numpy()[:, 4],
                               atol=1e-6)


def test_equalise_shifts_bands_smoothly_keeps_silence_and_range(rng):
    windows = rng.random((4, FRAMES, FEATURES)).astype("float32")
    windows[:, :3] = 0.0  # silent frames
    windows = tf.constant(windows)
    assert equalise(windows, 0.0) is windows
    shifted = equalise(windows, 0.1, seed=1).numpy()
    assert np.all(shifted[:, :3] == 0.0)
    assert shifted.min() >= 0.0 and shifted.max() <= 1.0
    # Away from the clipped ends, one window's shift is one curve for every frame,
    # at most 3 x 0.1 anywhere and changing little from band to band.
    middle = tf.fill((1, FRAMES, FEATURES), 0.5)
    curve = equalise(middle, 0.1, seed=3).numpy()[0] - 0.5
    np.testing.assert_allclose(curve, np.broadcast_to(curve[0], curve.shape), atol=1e-6)
    assert np.abs(curve).max() <= 0.3 + 1e-6
    assert np.abs(np.diff(curve[0])).max() < 0.3 * 2 * np.pi / (FEATURES - 1) + 1e-6


def test_pair_roc_auc_tells_matched_rows_from_mismatched(rng):
    first = rng.standard_normal((50, 6))
    shift = (np.arange(50) + 1) % 50
    assert pair_roc_auc(first, first + 0.01 * rng.standard_normal((50, 6)), shift) > 0.99
    assert 0.3 < pair_roc_auc(first, rng.standard_normal((50, 6)), shift) < 0.7


def _pairs(rng, n):
    """Pairs that share a stripe band (a made-up 'same sound'), b a little noisier."""
    a = np.zeros((n, FRAMES, FEATURES), "float32")
    bands = rng.integers(FEATURES, size=n)
    a[np.arange(n), :, bands] = 1.0
    b = np.clip(a + 0.1 * rng.random(a.shape), 0, 1).astype("float32")
    return a, b


def test_fine_tuning_pulls_pairs_together_and_keeps_the_vae_terms(rng):
    keras.utils.set_random_seed(0)
    vae = build_vae(TINY)
    a, b = _pairs(rng, 64)
    windows = rng.random((32, FRAMES, FEATURES)).astype("float32")
    silence = (rng.random(32) < 0.5).astype("float32")
    data = tf.data.Dataset.from_tensors(
        {"a": a[:32], "b": b[:32], "windows": windows, "silence": silence}).repeat()
    held_a, held_b = _pairs(rng, 40)
    separation = PairSeparation(held_a, held_b, seed=0)
    before = separation.score(vae)
    model = SiameseVAE(vae, siamese_weight=5.0, temperature=0.1, warp=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(data, epochs=3, steps_per_epoch=10, verbose=0, shuffle=False,
                        callbacks=[separation]).history
    for name in ("loss", "reconstruction_loss", "kl_loss", "silence_loss",
                 "siamese_loss", "pair_accuracy", "val_pair_roc_auc"):
        assert len(history[name]) == 3 and np.all(np.isfinite(history[name])), name
    assert history["siamese_loss"][-1] < history["siamese_loss"][0]
    # The weights that changed are the VAE's own: it embeds the held-out pairs closer.
    assert separation.score(vae) > before
    assert separation.score(vae) == pytest.approx(history["val_pair_roc_auc"][-1])


def test_the_two_windows_of_a_pair_draw_their_own_augmentations(rng):
    # Ops that share a seed draw the same numbers: a and b must not be warped alike,
    # or the pair teaches no invariance.
    model = SiameseVAE(build_vae(TINY), warp=0.2, stretch=0.2, level=0.1, augment_both=True)
    windows = tf.constant(rng.random((8, FRAMES, FEATURES)), tf.float32)
    first, second = model._augment(windows, 0).numpy(), model._augment(windows, 1).numpy()
    assert not np.allclose(first, second, atol=1e-3)


def test_correspondence_scores_the_partner_and_objectives_are_checked(rng):
    from discovery.errors import ParameterError
    from discovery.nn.siamese import correspondence

    partner = rng.random((3, FRAMES, FEATURES)).astype("float32")

    def decoder(z):  # decodes every code into the partner windows exactly
        return tf.constant(partner[..., None])

    assert float(correspondence(decoder, None, None, partner)) == pytest.approx(0.0)
    error = float(correspondence(decoder, None, None, partner + 0.5))
    assert error == pytest.approx(0.25 * FRAMES * FEATURES, rel=1e-5)
    with pytest.raises(ParameterError, match="objective"):
        SiameseVAE(build_vae(TINY), objective="triplet")
