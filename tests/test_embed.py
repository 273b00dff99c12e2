import numpy as np
import pytest

from discovery import bundle, embed
from discovery.bundle import Bundle
from discovery.cli import main
from discovery.errors import ModelError, ParameterError


@pytest.fixture(scope="module")
def default():
    return Bundle.load()


def test_shipped_model_loads_with_its_settings(default):
    assert default.path == bundle.default_model_dir()
    config = default.config
    assert config.input_frames == 32 and config.input_features == 64
    assert default.model.encoder.count_params() > 0
    # The settings live in the bundle, not on the Keras model.
    assert not hasattr(default.model, "pipeline_config")


@pytest.mark.slow
def test_bundle_embed_gives_one_table(default, digit_clip, annotated_recording, tmp_path):
    table, recordings, failures = default.embed(
        [digit_clip, annotated_recording, tmp_path / "missing.wav"], progress=False)
    assert [f.path for f in failures] == [str(tmp_path / "missing.wav")]
    assert table.files == [r.path for r in recordings] == [str(digit_clip),
                                                          str(annotated_recording)]
    assert table.file.dtype == np.int64 and table.embedding.dtype == np.float32
    assert table.embedding.shape == (len(table), 32)
    assert table.silence.shape == (len(table),)
    long = table.rows(1)
    assert table.rows(0) == slice(0, 1) and long == slice(1, len(table))
    assert np.all(np.diff(table.start_s[long]) > 0)
    assert len(recordings[1].window_valid_fraction) == long.stop - long.start
    assert recordings[0].window_valid_fraction[0] < 1  # one padded window
    assert recordings[1].duration_s == pytest.approx(84.95, abs=0.01)
    assert not recordings[1].digital_silence and recordings[1].annotation is None
    arrays = table.to_arrays(unit=np.zeros(len(table)))
    assert arrays["file"][0] == str(digit_clip) and arrays["unit"].dtype == np.int32


def test_window_table_is_checked_when_made():
    good = dict(files=["a.wav"], file=[0, 0], start_s=[0.0, 0.1], end_s=[0.3, 0.4],
                embedding=np.zeros((2, 3)), silence=[0.0, 1.0])
    table = embed.WindowTable(**good)
    assert table.start_s.dtype == np.float64 and table.embedding.dtype == np.float32
    for change, match in (({"silence": [0.0]}, "`silence`: expected shape"),
                          ({"embedding": np.zeros(2)}, "`embedding`: expected shape"),
                          ({"file": [0, 1]}, "`file`: expected indices"),
                          ({"files": ["a", "b"], "file": [1, 0]}, "expected windows sorted"),
                          ({"start_s": ["x", "y"]}, "expected numeric")):
        with pytest.raises(ParameterError, match=match):
            embed.WindowTable(**{**good, **change})


@pytest.mark.slow
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


@pytest.mark.slow
def test_silence_probability_follows_the_annotation(default, annotated_recording):
    from discovery.frontend.annotations import find_annotation

    result = embed.embed_recording(annotated_recording, model=default.model,
                                   config=default.config)
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
    assert bundle.resolve_model_dir(None) == bundle.default_model_dir()
    assert bundle.resolve_model_dir("birdsong") == bundle.shipped_models_dir() / "birdsong"
    # A folder that exists wins over a shipped name.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    assert bundle.resolve_model_dir("default") == tmp_path.joinpath("default").relative_to(
        tmp_path)
    assert bundle.resolve_model_dir("nothing-here") == type(tmp_path)("nothing-here")


@pytest.mark.parametrize("name", ["default", "birdsong"])
def test_every_shipped_bundle_loads_and_embeds(name):
    loaded = Bundle.load(name)
    config = loaded.config
    windows = np.zeros((3, config.input_frames, config.input_features), np.float32)
    z_mean, silence = loaded.model.embed(windows)
    assert z_mean.shape == (3, config.model.latent_dim) and silence.shape == (3,)
    assert (bundle.shipped_models_dir() / name / bundle.CARD_FILE).is_file()
    # The low-level path: the Keras model alone.
    assert bundle.load_model(loaded.path).count_params() == loaded.model.count_params()
