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
from discovery.nn import get_preset
from discovery.recording import analyse

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
    windows = _windows(annotated_recording, model.pipeline_config)[:50]
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
    windows = _windows(annotated_recording, model.pipeline_config)[:40]
    np.save(tmp_path / "windows.npy", windows)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "out = m.signatures['embed'](windows=tf.constant(np.load(sys.argv[2])))\n"
        "np.save(sys.argv[3], out['z_mean'].numpy())\n"
        "assert 'discovery' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", script, str(exported),
                    str(tmp_path / "windows.npy"), str(tmp_path / "z.npy")],
                   check=True, cwd=tmp_path)
    z_mean, _ = model.embed(windows)
    assert np.max(np.abs(np.load(tmp_path / "z.npy") - z_mean)) < 1e-4


def test_keras_export(trained, tmp_path):
    assert main(["export", str(trained.bundle_dir), "--out", str(tmp_path / "m.keras"),
                 "--format", "keras"]) == 0
    assert keras.saving.load_model(tmp_path / "m.keras").count_params() > 0


def test_interrupted_run_resumes_at_its_last_epoch(tmp_path, digit_clip):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    config = _config(epochs=4)
    with pytest.raises(KeyboardInterrupt):
        training.train([digit_clip.parent], tmp_path, config, progress=False,
                       callbacks=[Interrupt()])
    assert not (tmp_path / "model.keras").exists()
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    result = training.train([digit_clip.parent], tmp_path, config, progress=False,
                            callbacks=[Record()])
    assert seen == [2, 3]
    assert (result.bundle_dir / "model.keras").is_file()


def test_same_seed_same_model(tmp_path, digit_clip):
    runs = [training.train([digit_clip.parent], tmp_path / str(i), _config(epochs=1),
                           progress=False) for i in range(2)]
    assert runs[0].history["loss"] == runs[1].history["loss"]


def test_info_reports_the_seed_encoder(capsys):
    assert main(["info", "--preset", "seed-v4"]) == 0
    assert "encoder parameters: 641,024" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "o"), "--preset",
                 "huge"]) == 2
    assert "preset" in capsys.readouterr().err
    assert main(["info", "--model", str(tmp_path / "nothing")]) == 2
    assert "no such model folder" in capsys.readouterr().err
