"""Tests of discovery.nn: layers, sub-models, the VAE, its callback and presets."""

import json

import keras
import numpy as np
import pytest

from discovery.config import ModelConfig, PipelineConfig
from discovery.errors import ModelError, ParameterError
from discovery.nn import (
    PRESETS,
    VAE,
    BetaWarmup,
    Sampling,
    WindowEmbedding,
    build_decoder,
    build_encoder,
    build_silence_head,
    build_vae,
    get_preset,
)

TINY = get_preset("tiny").model
FRAMES, FEATURES = get_preset("tiny").input_frames, get_preset("tiny").input_features
LATENT = TINY.latent_dim


def tiny_vae(**changes) -> VAE:
    keras.utils.set_random_seed(0)
    model = build_vae(TINY.replace(**changes.pop("model", {})), input_frames=FRAMES,
                      input_features=FEATURES, **changes)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2))
    return model


def tone_and_silence(n, seed):
    """`n` windows (n, T, F, 1): half bright stripes at random bands, half zeros.

    Returns the windows and their silence targets (1 = silence), float32.
    """
    rng = np.random.default_rng(seed)
    windows = np.zeros((n, FRAMES, FEATURES, 1), "float32")
    targets = np.ones(n, "float32")
    for index in range(0, n, 2):
        bands = rng.choice(FEATURES, size=2, replace=False)
        # A harmonic-like stripe with a sinusoidal level over time.
        level = 0.6 + 0.3 * np.sin(np.linspace(0, 2 * np.pi, FRAMES) + rng.uniform(0, 6))
        windows[index, :, bands, 0] = level
        targets[index] = 0.0
    windows += rng.uniform(0.0, 0.05, windows.shape).astype("float32")
    return windows, targets


@pytest.fixture
def batch():
    return tone_and_silence(16, seed=1)


def test_encoder_outputs_have_latent_shapes():
    encoder = build_encoder(input_frames=FRAMES, input_features=FEATURES,
                            conv_filters=4, conv_kernel=(3, 3), bilstm_units=8,
                            lstm_units=8, latent_dim=LATENT, seed=0)
    outputs = encoder(np.zeros((3, FRAMES, FEATURES, 1), "float32"))
    assert [tuple(output.shape) for output in outputs] == [(3, LATENT)] * 3
    assert encoder.get_layer("frames").output.shape == (None, FRAMES, 4)


@pytest.mark.parametrize("features, kernel", [(16, (3, 3)), (15, (4, 4)), (7, (8, 8))])
def test_decoder_output_shape_is_exact_for_any_feature_count(features, kernel):
    decoder = build_decoder(input_frames=FRAMES, input_features=features,
                            latent_dim=LATENT, decoder_units=8, decoder_filters=2,
                            conv_kernel=kernel)
    reconstruction = keras.ops.convert_to_numpy(decoder(np.ones((2, LATENT), "float32")))
    assert reconstruction.shape == (2, FRAMES, features, 1)
    assert reconstruction.min() >= 0.0 and reconstruction.max() <= 1.0


@pytest.mark.parametrize("features, kernel", [(16, (3, 16)), (15, (4, 5)), (7, (8, 8))])
def test_convolutions_compute_what_same_padding_computes(features, kernel):
    # The layers pad and crop explicitly (faster on some CPUs); the numbers must stay
    # those of Keras's 'same' layers, which the shipped models were trained with.
    rng = np.random.default_rng(0)
    encoder = build_encoder(input_frames=FRAMES, input_features=features,
                            conv_filters=4, conv_kernel=kernel, bilstm_units=8,
                            lstm_units=8, latent_dim=LATENT, seed=0)
    conv = encoder.get_layer("conv")
    same = keras.layers.Conv2D(4, kernel, padding="same", activation="relu")
    windows = rng.random((2, FRAMES, features, 1)).astype("float32")
    same.build(windows.shape)
    same.set_weights(conv.get_weights())
    padded = encoder.get_layer("conv_padding")(windows)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(conv(padded)),
                               keras.ops.convert_to_numpy(same(windows)), atol=1e-5)
    decoder = build_decoder(input_frames=FRAMES, input_features=features,
                            latent_dim=LATENT, decoder_units=8, decoder_filters=2,
                            conv_kernel=kernel)
    deconvolution = decoder.get_layer("deconvolution")
    maps = rng.random((2, FRAMES, features, 2)).astype("float32")
    same = keras.layers.Conv2DTranspose(1, kernel, padding="same", activation="sigmoid")
    same.build(maps.shape)
    same.set_weights(deconvolution.get_weights())
    ours = decoder.get_layer("sigmoid")(decoder.get_layer("crop")(deconvolution(maps)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours),
                               keras.ops.convert_to_numpy(same(maps)), atol=1e-5)


def test_silence_head_outputs_probabilities():
    head = build_silence_head(latent_dim=LATENT, silence_units=4)
    assert head.output.shape == (None, 1)
    assert head.get_layer("silence").activation is keras.activations.sigmoid


def test_seed_v4_encoder_has_641024_parameters():
    preset = get_preset("seed-v4")
    model = preset.model
    encoder = build_encoder(
        input_frames=preset.input_frames, input_features=preset.input_features,
        conv_filters=model.conv_filters, conv_kernel=model.conv_kernel,
        bilstm_units=model.bilstm_units, lstm_units=model.lstm_units,
        latent_dim=model.latent_dim, seed=model.seed)
    assert encoder.input.shape == (None, 128, 256, 1)
    assert encoder.count_params() == 641_024


def test_sampling_is_seeded_and_returns_the_mean_at_inference():
    z_mean = np.full((4, 3), 2.0, "float32")
    z_log_var = np.zeros((4, 3), "float32")
    first = Sampling(seed=7)((z_mean, z_log_var), training=True)
    second = Sampling(seed=7)((z_mean, z_log_var), training=True)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, z_mean)
    np.testing.assert_array_equal(Sampling(seed=7)((z_mean, z_log_var)), z_mean)


def test_sampling_config_round_trip():
    layer = Sampling(seed=3, name="sampling")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, Sampling)
    assert restored.get_config() == layer.get_config()


def test_encoder_and_decoder_config_round_trip():
    vae = tiny_vae()
    for model in (vae.encoder, vae.decoder, vae.silence_head):
        restored = keras.Model.from_config(model.get_config())
        # Compared as JSON: the restored config holds lists where the original has
        # tuples, and JSON is how a .keras file stores it.
        assert json.dumps(restored.get_config()) == json.dumps(model.get_config())
        assert restored.count_params() == model.count_params()


def test_vae_config_round_trip_gives_identical_outputs(batch):
    vae = tiny_vae(beta=0.5, silence_weight=2.0)
    restored = VAE.from_config(vae.get_config())
    assert restored.get_config() == vae.get_config()
    assert float(restored.beta.numpy()) == 0.5 and restored.silence_weight == 2.0
    restored.set_weights(vae.get_weights())
    np.testing.assert_array_equal(restored(batch[0])["z_mean"], vae(batch[0])["z_mean"])


def test_vae_call_returns_every_output_with_its_shape(batch):
    outputs = tiny_vae()(batch[0][:5])
    shapes = {name: tuple(value.shape) for name, value in outputs.items()}
    assert shapes == {"reconstruction": (5, FRAMES, FEATURES, 1), "z_mean": (5, LATENT),
                      "z_log_var": (5, LATENT), "silence": (5,)}


def test_vae_accepts_windows_without_channel_axis(batch):
    vae = tiny_vae()
    np.testing.assert_allclose(vae(batch[0][..., 0])["z_mean"], vae(batch[0])["z_mean"])


@pytest.mark.slow
def test_save_and_load_give_identical_outputs(tmp_path, batch):
    windows, targets = batch
    vae = tiny_vae(beta=0.1)
    vae.fit(windows, targets, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    vae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, VAE)
    expected, actual = vae(windows), loaded(windows)
    for name in ("z_mean", "reconstruction", "silence"):
        np.testing.assert_array_equal(actual[name], expected[name])
    np.testing.assert_array_equal(loaded.embed(windows)[0], vae.embed(windows)[0])
    assert float(loaded.beta.numpy()) == pytest.approx(0.1)


@pytest.mark.slow
def test_fit_lowers_the_loss_on_a_fixed_batch(batch):
    windows, targets = batch
    vae = tiny_vae()
    before = vae.evaluate(windows, targets, verbose=0, return_dict=True)["loss"]
    vae.fit(windows, targets, batch_size=16, epochs=8, verbose=0)
    after = vae.evaluate(windows, targets, verbose=0, return_dict=True)["loss"]
    assert after < 0.9 * before


@pytest.mark.slow
def test_fit_logs_every_term_and_its_validation_variant(batch):
    windows, targets = batch
    history = tiny_vae().fit(windows, targets, batch_size=8, epochs=1, verbose=0,
                             validation_data=(windows, targets))
    terms = ["loss", "reconstruction_loss", "kl_loss", "silence_loss",
             "silence_accuracy"]
    assert set(history.history) == set(terms) | {f"val_{term}" for term in terms}


@pytest.mark.parametrize("beta, silence_weight", [(0.0, 1.0), (1.0, 2.0)])
def test_loss_is_reconstruction_plus_weighted_terms(batch, beta, silence_weight):
    vae = tiny_vae(beta=beta, silence_weight=silence_weight)
    logs = vae.evaluate(*batch, verbose=0, return_dict=True)
    assert logs["kl_loss"] > 0.0  # beta = 0 leaves it out of the loss, not the logs
    expected = (logs["reconstruction_loss"] + beta * logs["kl_loss"]
                + silence_weight * logs["silence_loss"])
    assert logs["loss"] == pytest.approx(expected, rel=1e-6)


def test_sample_weights_give_a_weighted_mean(batch):
    windows, targets = batch
    vae = tiny_vae()
    plain = vae.evaluate(windows, targets, verbose=0, return_dict=True)
    ones = vae.evaluate(windows, targets, sample_weight=np.ones(16, "float32"),
                        verbose=0, return_dict=True)
    weights = np.r_[np.ones(8), np.zeros(8)].astype("float32")
    half = vae.evaluate(windows, targets, sample_weight=weights, verbose=0,
                        return_dict=True)
    first_half = vae.evaluate(windows[:8], targets[:8], verbose=0, return_dict=True)
    for name in plain:
        assert ones[name] == pytest.approx(plain[name], rel=1e-5)
        assert half[name] == pytest.approx(first_half[name], rel=1e-5)


@pytest.mark.slow
def test_windows_alone_train_without_the_silence_term(batch):
    vae = tiny_vae()
    logs = vae.fit(batch[0], batch_size=8, epochs=1, verbose=0).history
    assert logs["silence_loss"] == [0.0]


@pytest.mark.slow
def test_beta_warmup_raises_beta_linearly_per_epoch(batch):
    vae = tiny_vae()
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(float(vae.beta.numpy())))
    history = vae.fit(*batch, batch_size=16, epochs=4, verbose=0,
                      callbacks=[BetaWarmup(beta=0.5, warmup_epochs=2), record])
    assert seen == [0.0, 0.25, 0.5, 0.5]
    assert history.history["beta"] == seen


def test_beta_warmup_rejects_invalid_values():
    with pytest.raises(ParameterError, match="beta"):
        BetaWarmup(beta=-1.0)
    with pytest.raises(ParameterError, match="warmup_epochs"):
        BetaWarmup(beta=1.0, warmup_epochs=1.5)


@pytest.mark.slow
def test_silence_head_learns_tone_versus_silence():
    train_windows, train_targets = tone_and_silence(128, seed=2)
    test_windows, test_targets = tone_and_silence(64, seed=3)
    # The summed reconstruction error dwarfs a cross-entropy of weight 1 in a short
    # fit of a tiny model, whose codes barely differ yet; weight 10 makes it quick.
    vae = tiny_vae(silence_weight=10.0)
    vae.fit(train_windows, train_targets, batch_size=16, epochs=15, verbose=0)
    z_mean, silence = vae.embed(test_windows)
    assert z_mean.shape == (64, LATENT) and silence.shape == (64,)
    assert np.mean((silence > 0.5) == (test_targets == 1.0)) > 0.9


def test_embed_rejects_windows_of_another_shape():
    with pytest.raises(ModelError, match=f"expected shape \\(n, {FRAMES}, {FEATURES}\\)"):
        tiny_vae().embed(np.zeros((2, FRAMES, FEATURES + 1), "float32"))


def test_embed_of_no_windows_is_empty():
    z_mean, silence = tiny_vae().embed(np.zeros((0, FRAMES, FEATURES), "float32"))
    assert z_mean.shape == (0, LATENT) and silence.shape == (0,)


def test_embed_names_its_results(batch):
    vae = tiny_vae()
    embedded = vae.embed(batch[0], batch_size=5)
    assert isinstance(embedded, WindowEmbedding)
    z_mean, silence = embedded
    np.testing.assert_array_equal(embedded.z_mean, z_mean)
    np.testing.assert_array_equal(embedded.silence, silence)
    outputs = vae(batch[0])
    np.testing.assert_allclose(z_mean, outputs["z_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(silence, outputs["silence"], rtol=1e-5, atol=1e-6)


def test_warp_changes_the_training_windows_only(batch):
    """`warp` augments what `fit` trains on; evaluation and embeddings see the windows
    as they are."""
    windows, targets = batch
    plain = tiny_vae()
    warped = VAE.from_config({**plain.get_config(), "warp": 0.3})
    assert VAE.from_config(warped.get_config()).warp == 0.3
    warped.set_weights(plain.get_weights())
    warped.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2))
    evaluate = dict(verbose=0, return_dict=True)
    assert warped.evaluate(windows, targets, **evaluate) == plain.evaluate(
        windows, targets, **evaluate)
    np.testing.assert_array_equal(warped.embed(windows)[0], plain.embed(windows)[0])
    # The first step's loss is computed before the update, on the step's windows.
    trained = [model.train_on_batch(windows, targets, return_dict=True)["reconstruction_loss"]
               for model in (plain, warped)]
    assert trained[0] != pytest.approx(trained[1], rel=1e-3)


def test_build_vae_takes_the_warp_of_the_training_settings():
    config = get_preset("tiny")
    assert build_vae(config).warp == 0.0
    assert build_vae(config.replace(training=config.training.replace(warp=0.2))).warp == 0.2
    with pytest.raises(ParameterError, match="`warp`"):
        config.training.replace(warp=0.6)


def test_build_vae_reads_a_pipeline_config():
    config = get_preset("tiny")
    vae = build_vae(config)
    assert float(vae.beta.numpy()) == pytest.approx(config.training.beta)
    assert vae.silence_weight == config.training.silence_weight
    assert vae.encoder.input.shape == (None, FRAMES, FEATURES, 1)
    with pytest.raises(ParameterError, match="config"):
        build_vae({"latent_dim": 4})
    with pytest.raises(ParameterError, match="`input_frames`"):
        build_vae(config.model)
    with pytest.raises(ParameterError, match="`input_features`: a PipelineConfig derives"):
        build_vae(config, input_features=FEATURES)


@pytest.mark.parametrize("name, shape", [("seed-v4", (128, 256)), ("default", (32, 64)),
                                         ("birdsong", (25, 64)), ("tiny", (16, 16))])
def test_presets_are_valid_pipelines(name, shape):
    config = get_preset(name)
    assert isinstance(config, PipelineConfig) and isinstance(config.model, ModelConfig)
    assert (config.input_frames, config.input_features) == shape
    assert PipelineConfig.from_json(config.to_json()) == config
    assert set(PRESETS) == {"seed-v4", "default", "birdsong", "tiny"}


def test_unknown_preset_raises_listing_the_names():
    with pytest.raises(ParameterError, match=r"`preset`.*'seed-v4'.*'tiny'.*'nope'"):
        get_preset("nope")


def test_silence_confusion_matrix_is_sklearns(rng):
    """The callback's matrix is scikit-learn's (rows true sound, silence; columns said),
    and its balanced accuracy scikit-learn's where the truth holds both classes."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    from discovery.nn import callbacks

    for size, share in ((200, 0.5), (57, 0.1), (1000, 0.93)):
        truth = rng.random(size) < share
        guess = np.where(rng.random(size) < 0.8, truth, ~truth)
        matrix, balanced_accuracy = callbacks._confusion(truth, guess)
        np.testing.assert_array_equal(
            matrix, confusion_matrix(truth, guess, labels=[False, True]))
        assert balanced_accuracy == pytest.approx(balanced_accuracy_score(truth, guess),
                                                  rel=1e-12)


def test_silence_confusion_counts_a_class_absent_in_truth_as_recall_zero():
    """All windows sound in truth: the silence row is empty, its recall counts 0, so a
    detector right on every window scores 0.5 (scikit-learn would leave the class out)."""
    from sklearn.metrics import confusion_matrix

    from discovery.nn import callbacks

    truth = np.zeros(10, bool)
    guess = np.r_[np.zeros(8, bool), np.ones(2, bool)]
    matrix, balanced_accuracy = callbacks._confusion(truth, guess)
    np.testing.assert_array_equal(matrix, [[8, 2], [0, 0]])
    np.testing.assert_array_equal(matrix, confusion_matrix(truth, guess,
                                                           labels=[False, True]))
    assert balanced_accuracy == pytest.approx(0.4)
    assert callbacks._confusion(truth, truth)[1] == pytest.approx(0.5)


def test_silence_confusion_logs_the_balanced_accuracy(tmp_path):
    from sklearn.metrics import balanced_accuracy_score

    from discovery.nn.callbacks import SilenceConfusion

    class Detector:
        """Says silence for windows whose mean is below 0.3."""

        def predict(self, windows, **kwargs):
            return {"silence": (windows.mean(axis=(1, 2, 3)) < 0.3).astype("float32")}

    windows, targets = tone_and_silence(12, seed=4)
    windows[0] = 0.0  # a sound window the detector calls silence
    callback = SilenceConfusion(windows[..., 0], targets, log_dir=tmp_path)
    callback.set_model(Detector())
    logs = {}
    callback.on_epoch_end(0, logs)
    said = windows.mean(axis=(1, 2, 3)) < 0.3
    expected = balanced_accuracy_score(targets.astype(bool), said)
    assert expected < 1.0
    assert logs["silence_balanced_accuracy"] == pytest.approx(expected)
    assert callback.balanced_accuracy == logs["silence_balanced_accuracy"]
    assert list((tmp_path / "silence").glob("events.out.tfevents.*"))
