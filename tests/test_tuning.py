"""`discovery tune`: the Siamese stage end to end, on a tiny bundle and the sample data."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from discovery import bundle
from discovery.bundle import Bundle
from discovery.cli import main
from discovery.config import SiameseConfig
from discovery.errors import AudioError, ParameterError
from discovery.mining import MinedPairs
from discovery.nn import build_vae, get_preset
from discovery.tuning import (centred_windows, frame_embeddings, masked_share, tune,
                              tuning_card)

DATA = Path(__file__).resolve().parent.parent / "data"
TINY = get_preset("tiny")
QUICK = SiameseConfig(epochs=2, cross_voice_epochs=1, cross_voice_rounds=2, steps_per_epoch=3,
                      pair_batch_size=16, batch_size=8)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """An untrained tiny bundle: the stage runs the same on any weights."""
    import keras

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("base")
    bundle.save_bundle(build_vae(TINY), TINY, folder, card="# Model card\n\nbase stage\n")
    return folder


@pytest.fixture(scope="module")
def tuned(base, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned")
    return tune([DATA / "fsdd", DATA / "recordings"], out, bundle=base, settings=QUICK,
                progress=False, overwrite=True)


def test_centred_windows_pad_past_both_ends():
    features = [np.arange(10, dtype=np.float32)[:, None] + 1]
    windows = centred_windows(features, np.array([0, 0, 0]), np.array([0, 5, 9]), 4)
    assert windows.shape == (3, 4, 1)
    assert windows[0, :, 0].tolist() == [0, 0, 1, 2]
    assert windows[1, :, 0].tolist() == [4, 5, 6, 7]
    assert windows[2, :, 0].tolist() == [8, 9, 10, 0]


def test_frame_embeddings_embed_each_frames_centred_window(base, rng):
    model = Bundle.load(base).model
    features = [rng.random((30, TINY.input_features)).astype(np.float32),
                rng.random((12, TINY.input_features)).astype(np.float32)]
    full = frame_embeddings(model, features)
    assert [f.shape for f in full] == [(30, model.latent_dim), (12, model.latent_dim)]
    window = centred_windows(features, np.array([0]), np.array([7]), model.input_frames)
    np.testing.assert_allclose(full[0][7], model.embed(window).z_mean[0], atol=1e-5)
    # Only the segments' frames, the others left zero.
    part = frame_embeddings(model, features, [np.array([[5, 9], [20, 25]]), np.zeros((0, 2))])
    np.testing.assert_allclose(part[0][5:9], full[0][5:9], atol=1e-5)
    np.testing.assert_allclose(part[0][20:25], full[0][20:25], atol=1e-5)
    assert not part[0][:5].any() and not part[0][9:20].any() and not part[1].any()


@pytest.mark.slow
def test_tuned_bundle_loads_with_the_base_settings_and_new_weights(base, tuned):
    loaded = Bundle.load(tuned.bundle_dir)
    assert loaded.config == Bundle.load(base).config
    before, after = Bundle.load(base).model, loaded.model
    changed = [not np.array_equal(x, y) for x, y in
               zip(before.encoder.get_weights(), after.encoder.get_weights())]
    assert any(changed)
    card = (tuned.bundle_dir / "MODEL_CARD.md").read_text()
    assert "base stage" in card and "## Siamese stage" in card
    assert f"Mined: {len(tuned.mined)} segment pairs" in card
    assert (tuned.bundle_dir / "checkpoints" / "mined_pairs.npz").is_file()
    # Two epochs on the cepstral pairs, one more after each of two rounds across voices.
    assert len(tuned.history["siamese_loss"]) == 4
    assert tuned.cross is not None and "2 more rounds" in card
    assert (tuned.bundle_dir / "checkpoints" / "cross_voice_pairs.npz").is_file()
    # The model each earlier round ended with: loadable, and not the final one.
    for number in (1, 2):
        checkpoint = Bundle.load(tuned.bundle_dir / "checkpoints" / f"round-{number}")
        assert checkpoint.config == loaded.config
        assert not all(np.array_equal(x, y) for x, y in zip(
            checkpoint.model.encoder.get_weights(), after.encoder.get_weights()))
    assert not (tuned.bundle_dir / "checkpoints" / "round-3").exists()
    assert 0 <= tuned.history["val_pair_roc_auc"][-1] <= 1
    # The sample data's pairs are all linked into one group: masking them would leave
    # InfoNCE no negatives, so it is dropped, the card says so, and the term trains.
    assert "Linked pairs not masked in some rounds" in card and "round 3: 100%" in card
    assert min(tuned.history["siamese_loss"]) > 0
    # Tuning a tuned bundle keeps one Siamese section, the newest.
    again = tuning_card(card, settings=QUICK, inputs=["x"], mined=tuned.mined,
                        history=tuned.history, before=0.5, seconds=1, command="again")
    assert again.count("## Siamese stage") == 1 and "`again`" in again


@pytest.mark.slow
def test_tensorboard_gets_the_siamese_terms(tuned):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    names = ""
    for part in ("train", "validation"):  # Keras writes val_* under validation/
        tags = EventAccumulator(str(tuned.bundle_dir / "logs" / part)).Reload().Tags()
        names += f" {part}: " + " ".join(tags["tensors"] + tags["scalars"])
    for name in ("train: .*epoch_siamese_loss", "train: .*epoch_pair_accuracy",
                 "train: .*epoch_reconstruction_loss", "validation: .*epoch_pair_roc_auc"):
        assert re.search(name, names), name


@pytest.mark.slow
def test_tune_command_leaves_the_base_alone_and_refuses_a_second_run(base, tmp_path, capsys):
    model_bytes = (base / "model.keras").read_bytes()
    out = tmp_path / "tuned"
    assert main(["tune", str(DATA / "fsdd"), str(DATA / "recordings"), "--model", str(base),
                 "--out", str(out), "--epochs", "1", "--cross-voice-epochs", "0",
                 "--warp", "0.2", "--quiet"]) == 0
    assert (out / "model.keras").is_file()
    assert "frequency warp up to 0.2" in (out / "MODEL_CARD.md").read_text()
    assert not (out / "checkpoints" / "round-1").exists()  # one round: nothing to keep
    assert (base / "model.keras").read_bytes() == model_bytes
    assert main(["tune", str(DATA / "fsdd"), "--model", str(base), "--out", str(out),
                 "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err


class Killed(Exception):
    """Stands in for a kill: raised in the middle of `tune`."""


def kill(*args, **kwargs):
    raise Killed


@pytest.mark.slow
def test_a_killed_tune_resumes_where_it_stopped(base, tmp_path, monkeypatch):
    from discovery import tuning
    from discovery.nn.callbacks import PairSeparation

    # Three rounds of two epochs: round 1 is epochs 0-1, round 2 epochs 2-3, round 3 4-5.
    settings = SiameseConfig(epochs=2, cross_voice_epochs=2, cross_voice_rounds=2,
                             steps_per_epoch=2, pair_batch_size=16, batch_size=8)
    out, inputs = tmp_path / "tuned", [DATA / "fsdd"]
    checkpoints = out / "checkpoints"

    def run(kill_at=None, **patches):
        """One `tune` call, killed as epoch `kill_at` begins (the one before it backed
        up); the epochs it began."""
        begun = []

        def begin(self, epoch, logs=None):
            if epoch == kill_at:
                raise Killed
            begun.append(epoch)

        with monkeypatch.context() as patch:
            patch.setattr(PairSeparation, "on_epoch_begin", begin)
            for name, value in patches.items():
                patch.setattr(tuning, name, value)
            if kill_at is None and "mine_across_voices" not in patches:
                return begun, tune(inputs, out, bundle=base, settings=settings,
                                   progress=False)
            with pytest.raises(Killed):
                tune(inputs, out, bundle=base, settings=settings, progress=False)
        return begun, None

    assert run(kill_at=1)[0] == [0]
    assert tuning.interrupted(out)
    # Other settings do not resume it.
    with pytest.raises(ParameterError, match="interrupted `tune` with `epochs` = 2, not 3"):
        tune(inputs, out, bundle=base, settings=settings.replace(epochs=3), progress=False)

    # Round 1 goes on from its second epoch, on the pairs read back (not mined again),
    # and its model is kept; killed as the first round across voices begins.
    mined_again = []
    begun, _ = run(mine_pairs=lambda *args, **kwargs: mined_again.append(1),
                   mine_across_voices=kill)
    assert begun == [1] and not mined_again
    assert (checkpoints / "round-1" / "model.keras").is_file()
    before = json.loads((checkpoints / "tune_state.json").read_text())["before"]

    # Round 2 starts from round 1's model; killed after its first epoch.
    seen = []
    mine = tuning.mine_across_voices

    def mine_and_look(vae, *args, **kwargs):
        seen.append(vae.get_weights())
        return mine(vae, *args, **kwargs)

    assert run(kill_at=3, mine_across_voices=mine_and_look)[0] == [2]
    kept = Bundle.load(checkpoints / "round-1").model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(seen[0], kept))
    # Round 2 resumes at its second epoch, round 3 is killed after its first.
    assert run(kill_at=5)[0] == [3, 4]
    assert (checkpoints / "round-2" / "model.keras").is_file()
    # Two rounds finished: round 3 resumes at its second epoch, and the run ends.
    begun, result = run()
    assert begun == [5]
    assert len(result.history["siamese_loss"]) == 6 and result.cross is not None
    assert result.pair_roc_auc_before == before
    card = (out / "MODEL_CARD.md").read_text()
    assert "over 5 runs (resumed after a kill)" in card
    # Rounds run in earlier processes are told too.
    assert "(round 1: 100%, round 2: 100%, round 3: 100%)" in card
    assert not (checkpoints / "backup").exists() and not tuning.interrupted(out)
    Bundle.load(out)


def test_masked_share_is_the_chance_that_two_pairs_share_a_group():
    assert masked_share(np.zeros(10, np.int64)) == 1.0
    assert masked_share(np.arange(4)) == pytest.approx(0.25)
    assert masked_share(np.array([0, 0, 0, 1])) == pytest.approx(0.75 ** 2 + 0.25 ** 2)
    assert masked_share(np.zeros(0, np.int64)) == 0.0


def test_the_card_lists_unmasked_rounds_in_order():
    mined = MinedPairs(np.zeros((2, 3), np.int64), np.array([[0, 1]]), np.zeros(1),
                       np.zeros((0, 5), np.int64))
    card = tuning_card("# Model card\n", settings=QUICK, inputs=["x"], mined=mined,
                       history={}, before=0.5, seconds=1, command="c",
                       unmasked={"10": 0.5, "2": 1.0})
    assert "(round 2: 100%, round 10: 50%)" in card


def test_recordings_that_never_repeat_a_sound_are_a_clear_error(base, tmp_path):
    # One recording: nothing to match it with.
    with pytest.raises(AudioError, match="matching segment pairs"):
        tune([DATA / "fsdd" / "0_george_0.wav"], tmp_path / "t", bundle=base,
             settings=QUICK, progress=False)


@pytest.mark.parametrize("name, value", [
    ("pair_batch_size", 1), ("warp", 0.9), ("stretch", -0.1), ("level", 0.9),
    ("augment_both", "yes"), ("mask_linked", 1), ("cross_voice_epochs", -1), ("cross_voice_rounds", 0),
    ("max_voices", 1)])
def test_settings_are_checked(name, value):
    with pytest.raises(ParameterError, match=name):
        SiameseConfig(**{name: value})


def test_tune_command_refuses_a_warp_out_of_range(tmp_path, capsys):
    assert main(["tune", str(DATA / "fsdd"), "--out", str(tmp_path / "t"), "--warp", "0.7",
                 "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "warp" in error and "0.7" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()
