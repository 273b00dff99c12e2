"""Training, bundles and export on the tiny preset and a few real clips."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from discovery import bundle, training
from discovery.cli import main
from discovery.config import PipelineConfig
from discovery.errors import ParameterError
from discovery.nn import get_preset
from discovery.frontend.recording import analyse

# Trains models end to end (tiny preset, several epochs).
pytestmark = pytest.mark.slow

TINY = get_preset("tiny")
DATA = Path(__file__).resolve().parent.parent / "data"


def _config(epochs=1, **training_values):
    return TINY.replace(training=TINY.training.replace(epochs=epochs, **training_values))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny bundle trained for two epochs on the sample digits and recording."""
    out = tmp_path_factory.mktemp("bundle")
    result = training.train([DATA / "fsdd", DATA / "recordings"], out, _config(epochs=2),
                            progress=False)
    return result


def _windows(path, config):
    return analyse(path, config).windows.values


def test_bundle_files_and_model_card(trained):
    out = trained.bundle_dir
    for name in ("model.keras", "config.json", "MODEL_CARD.md"):
        assert (out / name).is_file()
    values = json.loads((out / "config.json").read_text())
    assert values["versions"]["keras"] == keras.__version__
    assert bundle.load_config(out) == _config(epochs=2)
    card = (out / "MODEL_CARD.md").read_text()
    assert "11 recordings" in card and "silence_balanced_accuracy" in card
    assert len(trained.history["loss"]) == 2
    assert not list(out.rglob("*.tmp"))


def test_tensorboard_holds_scalars_images_and_projector(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = trained.bundle_dir / "logs"
    scalars = EventAccumulator(str(logs / "train")).Reload().Tags()["tensors"]
    for tag in ("epoch_loss", "epoch_reconstruction_loss", "epoch_kl_loss",
                "epoch_silence_loss", "epoch_silence_accuracy", "epoch_beta"):
        assert tag in scalars
    images = EventAccumulator(str(logs / "images")).Reload().Tags()["tensors"]
    assert any("reconstruction" in tag for tag in images)
    assert (logs / "projector" / "projector_config.pbtxt").is_file()
    # TensorBoard offers the projector only for folders that hold an event file.
    assert list((logs / "projector").glob("events.out.tfevents.*"))
    assert (logs / "projector" / "metadata.tsv").read_text().startswith("file\tstart_s")


def test_keras_round_trip_gives_identical_embeddings(trained, annotated_recording):
    model = bundle.load_model(trained.bundle_dir)
    windows = _windows(annotated_recording, bundle.load_config(trained.bundle_dir))[:50]
    z_mean, silence = model.embed(windows)
    again = bundle.load_model(trained.bundle_dir)
    z_again, silence_again = again.embed(windows)
    np.testing.assert_array_equal(z_mean, z_again)
    np.testing.assert_array_equal(silence, silence_again)
    z, _, _ = model.encoder(windows[..., None])
    assert z.shape == (50, TINY.model.latent_dim)


def test_savedmodel_loads_without_discovery(trained, annotated_recording, tmp_path):
    exported = tmp_path / "exported"
    assert main(["export", str(trained.bundle_dir), "--out", str(exported)]) == 0
    model = bundle.load_model(trained.bundle_dir)
    windows = _windows(annotated_recording, bundle.load_config(trained.bundle_dir))[:40]
    np.save(tmp_path / "windows.npy", windows)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "out = m.signatures['embed'](windows=tf.constant(np.load(sys.argv[2])))\n"
        "np.save(sys.argv[3], out['z_mean'].numpy())\n"
        "print(m.config_file.asset_path.numpy().decode())\n"
        "assert 'discovery' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script, str(exported),
                           str(tmp_path / "windows.npy"), str(tmp_path / "z.npy")],
                          check=True, cwd=tmp_path, capture_output=True, text=True)
    z_mean, _ = model.embed(windows)
    assert np.max(np.abs(np.load(tmp_path / "z.npy") - z_mean)) < 1e-4
    # The settings that build the input travel inside the SavedModel.
    asset = exported / "assets" / "config.json"
    assert Path(done.stdout.strip().splitlines()[-1]).resolve() == asset.resolve()
    shipped = json.loads(asset.read_text())
    original = json.loads((trained.bundle_dir / "config.json").read_text())
    assert set(shipped) == set(original)
    assert PipelineConfig.from_json(asset.read_text()) == bundle.load_config(
        trained.bundle_dir)
    readme = (exported / "assets" / "README.md").read_text()
    frames, features = TINY.input_frames, TINY.input_features
    assert f"shape (batch, {frames}, {features})" in readme and "[0, 1]" in readme


def test_keras_export(trained, tmp_path):
    assert main(["export", str(trained.bundle_dir), "--out", str(tmp_path / "m.keras"),
                 "--format", "keras"]) == 0
    exported = keras.saving.load_model(tmp_path / "m.keras")
    original = bundle.load_model(trained.bundle_dir)
    assert exported.count_params() == original.count_params() > 0
    for mine, theirs in zip(exported.get_weights(), original.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_interrupted_run_resumes_at_its_last_epoch(tmp_path, digit_clip):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    config = _config(epochs=2)
    with pytest.raises(KeyboardInterrupt):
        training.train([digit_clip.parent], tmp_path, config, progress=False,
                       callbacks=[Interrupt()])
    assert not (tmp_path / "model.keras").exists()
    # An interrupted run resumes only with the settings it started with.
    other = config.replace(model=config.model.replace(latent_dim=8))
    with pytest.raises(ParameterError, match=r"interrupted `train` with `model.latent_dim`"):
        training.train([digit_clip.parent], tmp_path, other, progress=False)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    result = training.train([digit_clip.parent], tmp_path, config, progress=False,
                            callbacks=[Record()])
    assert seen == [1]
    assert (result.bundle_dir / "model.keras").is_file()
    # The card and the history count the epochs of both runs.
    card = (result.bundle_dir / "MODEL_CARD.md").read_text()
    assert "Epochs run: 2 of 2 (resumed after epoch 1)" in card
    assert len(result.history["loss"]) == 2 and result.resumed_after == [1]


def test_overwrite_retrains_from_scratch_with_the_same_seed_same_model(tmp_path,
                                                                      digit_clip):
    first = training.train([digit_clip.parent], tmp_path, _config(epochs=1),
                           progress=False)
    stale = tmp_path / "logs" / "stale.txt"
    stale.write_text("from the run being replaced")
    second = training.train([digit_clip.parent], tmp_path, _config(epochs=1),
                            progress=False, overwrite=True)
    assert first.history["loss"] == second.history["loss"]
    assert not stale.exists() and (tmp_path / "model.keras").is_file()
    assert "Epochs run: 1 of 1;" in (tmp_path / "MODEL_CARD.md").read_text()


def test_info_reports_the_seed_encoder(capsys):
    assert main(["info", "--preset", "seed-v4"]) == 0
    assert "encoder parameters: 641,024" in capsys.readouterr().out


def test_finished_bundle_is_refused_without_overwrite(trained, capsys):
    out = trained.bundle_dir
    before = (out / "model.keras").stat().st_mtime_ns
    with pytest.raises(ParameterError, match="holds a trained model bundle already"):
        training.train([DATA / "fsdd"], out, _config(epochs=2), progress=False)
    assert main(["train", str(DATA / "fsdd"), "--out", str(out), "--preset", "tiny",
                 "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--overwrite" in error and str(out) in error
    assert (out / "model.keras").stat().st_mtime_ns == before


def test_overwrite_refuses_a_folder_with_other_files(tmp_path, capsys):
    (tmp_path / "model.keras").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["train", str(DATA / "fsdd"), "--out", str(tmp_path), "--preset",
                 "tiny", "--overwrite", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'notes.txt'" in error
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "model.keras").read_bytes() == b"old"


def test_unwritable_output_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["train", str(DATA / "fsdd"), "--out", str(blocker), "--preset",
                 "tiny", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{blocker}: is a file" in error
    with pytest.raises(ParameterError, match="cannot write here"):
        training.train([DATA / "fsdd"], blocker / "below", _config(), progress=False)


def test_cli_errors(tmp_path, capsys):
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "o"), "--preset",
                 "huge"]) == 2
    assert "preset" in capsys.readouterr().err
    assert main(["info", "--model", str(tmp_path / "nothing")]) == 2
    assert "no such model folder" in capsys.readouterr().err
