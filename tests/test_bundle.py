"""Bundles: a broken one is one `ModelError` naming the file; output must be writable."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import keras
import pytest

from discovery import bundle
from discovery.cli import main
from discovery.errors import ModelError, ParameterError
from discovery.files import check_output_location
from discovery.nn import build_vae, get_preset
from discovery.nn.vae import LOAD_HINT

TINY = get_preset("tiny")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An untrained tiny bundle (loading needs no training)."""
    out = tmp_path_factory.mktemp("bundle")
    return bundle.save_bundle(build_vae(TINY), TINY, out, card="# Model card\n")


@pytest.fixture
def copy(saved, tmp_path):
    """A fresh copy of the saved bundle, to break."""
    return shutil.copytree(saved, tmp_path / "copy")


def test_saved_bundle_loads_with_its_settings(saved):
    loaded = bundle.Bundle.load(saved)
    assert loaded.config == TINY and loaded.path == saved
    assert loaded.model.count_params() == build_vae(TINY).count_params()
    assert json.loads((saved / bundle.CONFIG_FILE).read_text())["versions"]["keras"]


def test_bundle_saves_and_exports(saved, tmp_path):
    loaded = bundle.Bundle.load(saved)
    again = bundle.Bundle.load(loaded.save(tmp_path / "again", card="# Card\n"))
    assert again.config == TINY
    assert (again.path / bundle.CARD_FILE).read_text() == "# Card\n"
    assert loaded.export(tmp_path / "m.keras", format="keras") == tmp_path / "m.keras"
    assert keras.saving.load_model(tmp_path / "m.keras").count_params() > 0
    with pytest.raises(ParameterError, match="`format`"):
        loaded.export(tmp_path / "x", format="onnx")
    with pytest.raises(ParameterError, match="Invalid value for `config`"):
        bundle.Bundle(loaded.model, TINY.to_dict())


def _random_bytes(path):
    path.write_bytes(os.urandom(4000))


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _zip_without_config(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a model")


def _zip_without_weights(path):
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            if not name.startswith("model.weights"):
                archive.writestr(name, data)


@pytest.mark.parametrize("damage", [_random_bytes, _truncated, _zip_without_config,
                                    _zip_without_weights])
def test_corrupt_model_file_is_one_line_naming_it(copy, damage):
    damage(copy / bundle.MODEL_FILE)
    with pytest.raises(ModelError, match=r"model\.keras: not a readable Keras model "
                                         r"file \(.+\)\.$") as caught:
        bundle.load_model(copy)
    assert "\n" not in str(caught.value) and "File not found" not in str(caught.value)


def test_lambda_layer_is_refused_not_run(copy):
    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    keras.Model(inputs, outputs).save(copy / bundle.MODEL_FILE)
    with pytest.raises(ModelError, match=r"model\.keras: holds a Lambda layer \(arbitrary "
                                         r"code\); discovery does not load it"):
        bundle.load_model(copy)


def test_model_of_another_kind_is_refused(copy):
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(copy / bundle.MODEL_FILE)
    with pytest.raises(ModelError, match="not a discovery VAE"):
        bundle.load_model(copy)


@pytest.mark.parametrize("text, expected", [
    ("{not json", r"config\.json: Invalid config JSON"),
    (b"\xff\xfe\x00", r"config\.json: cannot read"),
    ('{"training": {"epochs": -1}}', r"config\.json: .*`epochs`.*-1"),
    ('{"training": {"epochz": 3}}', r"config\.json: Unknown setting `epochz`"),
])
def test_bad_config_is_one_line_naming_it(copy, text, expected):
    path = copy / bundle.CONFIG_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ModelError, match=expected):
        bundle.load_config(copy)


def test_config_that_does_not_match_the_model_is_refused(copy):
    path = copy / bundle.CONFIG_FILE
    values = json.loads(path.read_text())
    values["model"]["conv_filters"] += 1
    path.write_text(json.dumps(values))
    with pytest.raises(ModelError, match=r"model\.keras: does not match config\.json: "
                                         r"`conv_filters`"):
        bundle.load_model(copy)


def test_cli_reports_a_broken_bundle_on_one_line(copy, capsys):
    _truncated(copy / bundle.MODEL_FILE)
    assert main(["info", "--model", str(copy)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "model.keras: not a readable Keras model" in error


@pytest.mark.slow
def test_plain_keras_load_without_discovery_says_how(saved):
    script = ("import sys, keras\n"
              "try:\n"
              "    keras.saving.load_model(sys.argv[1])\n"
              "except Exception as error:\n"
              "    print(error)\n"
              "assert 'discovery' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script, str(saved / bundle.MODEL_FILE)],
                          capture_output=True, text=True, check=True, cwd=saved)
    assert "Could not locate class 'VAE'" in done.stdout
    assert LOAD_HINT in done.stdout


def test_card_documents_the_hint_and_config_round_trip_drops_it():
    from discovery.nn import VAE

    model = build_vae(TINY)
    config = model.get_config()
    assert config["how_to_load"] == LOAD_HINT
    assert VAE.from_config(config).get_config() == config


def test_writing_under_a_file_is_refused(saved, tmp_path):
    model = bundle.load_model(saved)
    assert not hasattr(model, "pipeline_config")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ParameterError, match="file"):
        bundle.export_keras(model, blocker / "model.keras")
    with pytest.raises(ParameterError, match=r"expected a path ending in \.keras"):
        bundle.export_keras(model, tmp_path / "model.h5")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_output_is_one_line(saved, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(ParameterError, match=r"locked: cannot write here"):
            check_output_location(locked, inputs=())
        for form, name in (("keras", "m.keras"), ("savedmodel", "exported")):
            assert main(["export", str(saved), "--out", str(locked / name),
                         "--format", form]) == 2
            error = capsys.readouterr().err
            assert error.count("\n") == 1 and "cannot write here" in error
        assert main(["train", str(saved), "--out", str(locked / "out"), "--preset",
                     "tiny", "--quiet"]) == 2
        assert "out: cannot write here" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)


def test_savedmodel_export_needs_the_settings(tmp_path):
    with pytest.raises(ParameterError, match="config"):
        bundle.export_savedmodel(build_vae(TINY), tmp_path / "exported")
