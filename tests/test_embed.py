import numpy as np
import pytest

from discovery import bundle, embed
from discovery.cli import main
from discovery.errors import ModelError


@pytest.fixture(scope="module")
def model():
    return bundle.load_model(embed.default_model_dir())


def test_shipped_model_loads_with_its_settings(model):
    config = model.pipeline_config
    assert config.model.input_frames == 32 and config.model.input_features == 64
    assert model.encoder.count_params() > 0


def test_embed_command_writes_one_row_per_window(tmp_path, digit_clip, annotated_recording):
    assert main(["embed", str(digit_clip), str(annotated_recording), "--out",
                 str(tmp_path), "--quiet"]) == 0
    with np.load(tmp_path / "embeddings.npz") as arrays:
        assert set(arrays) == {"file", "start_s", "end_s", "embedding", "silence"}
        n = len(arrays["file"])
        assert arrays["embedding"].shape == (n, 32)
        short = arrays["file"] == str(digit_clip)
        # A clip shorter than one window still gets its padded window.
        assert short.sum() == 1 and arrays["start_s"][short][0] == 0.0
        recording = arrays["file"] == str(annotated_recording)
        assert np.all(np.diff(arrays["start_s"][recording]) > 0)
        assert arrays["end_s"][recording].max() <= 84.95 + 1e-6


def test_silence_probability_follows_the_annotation(model, annotated_recording):
    from discovery.frontend.annotations import find_annotation

    result = embed.embed_recording(model, annotated_recording)
    annotation = find_annotation(annotated_recording)
    coverage = annotation.coverage(result.recording.windows.start_s,
                                   result.recording.windows.end_s)
    assert result.silence[coverage == 0].mean() > 0.8
    assert result.silence[coverage > 0.9].mean() < 0.2


def test_missing_model_is_one_line_exit_2(tmp_path, digit_clip, capsys):
    assert main(["embed", str(digit_clip), "--out", str(tmp_path), "--model",
                 str(tmp_path / "none")]) == 2
    assert "no such model folder" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    with pytest.raises(ModelError, match="not a model bundle"):
        bundle.load_model(tmp_path / "half")


def test_model_names_resolve_to_shipped_bundles(tmp_path, monkeypatch):
    assert embed.resolve_model_dir(None) == embed.default_model_dir()
    assert embed.resolve_model_dir("birdsong") == embed.shipped_models_dir() / "birdsong"
    # A folder that exists wins over a shipped name.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    assert embed.resolve_model_dir("default") == tmp_path.joinpath("default").relative_to(
        tmp_path)
    assert embed.resolve_model_dir("nothing-here") == type(tmp_path)("nothing-here")


@pytest.mark.parametrize("name", ["default", "birdsong"])
def test_every_shipped_bundle_loads_and_embeds(name):
    model = bundle.load_model(embed.resolve_model_dir(name))
    config = model.pipeline_config
    windows = np.zeros((3, config.model.input_frames, config.model.input_features),
                       np.float32)
    z_mean, silence = model.embed(windows)
    assert z_mean.shape == (3, config.model.latent_dim) and silence.shape == (3,)
    assert (embed.shipped_models_dir() / name / bundle.CARD_FILE).is_file()
