import subprocess
import sys

import numpy as np
import pytest
import soundfile

from discovery import __version__
from discovery.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "discovery.cli", *map(str, args)],
                          capture_output=True, text=True)


def test_help_and_version():
    result = _run("--help")
    assert result.returncode == 0 and "features" in result.stdout
    result = _run("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_features_writes_one_npz_per_recording(tmp_path, annotated_recording, digit_clip):
    out = tmp_path / "out"
    code = main(["features", str(annotated_recording), str(digit_clip), "--out", str(out),
                 "--quiet"])
    assert code == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz"))
    assert written == ["fsdd/0_george_0.wav.npz", "recordings/rec_01.wav.npz"]
    with np.load(out / "recordings" / "rec_01.wav.npz") as arrays:
        assert arrays["features"].shape[1] == 64
        assert len(arrays["window_start_s"]) == len(arrays["window_silence"])
        assert 0.3 < arrays["window_silence"].mean() < 0.8
        assert '"sample_rate": 16000' in str(arrays["config"])
    assert not list(out.rglob("*.tmp"))


def test_feature_options_override_the_preset(tmp_path, digit_clip):
    code = main(["features", str(digit_clip), "--out", str(tmp_path), "--quiet",
                 "--features", "fbank26", "--fmax", "3000"])
    assert code == 0
    with np.load(tmp_path / "0_george_0.wav.npz") as arrays:
        assert arrays["features"].shape[1] == 26
        assert '"fmax": 3000.0' in str(arrays["config"])


@pytest.mark.slow
@pytest.mark.parametrize("make,expected", [
    (lambda d: d / "missing.wav", "missing.wav: no such file"),
    (lambda d: (d / "empty.wav").touch() or d / "empty.wav", "empty.wav: the file is empty"),
    (lambda d: (d / "x.wav").write_text("text") and d / "x.wav",
     "x.wav: not a readable audio file"),
])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, make, expected):
    path = make(tmp_path)
    result = _run("features", path, "--out", tmp_path / "out")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_bad_setting_gives_one_line_and_exit_2(tmp_path, digit_clip):
    result = _run("features", digit_clip, "--out", tmp_path, "--window-seconds", "-1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "discovery: error: Invalid value for `window_seconds`: expected a number in "
        "(0, 60], received -1.0."]


def test_folder_with_good_and_bad_files(tmp_path, digit_clip, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_bad.wav").write_text("not audio")
    samples, rate = soundfile.read(digit_clip)
    soundfile.write(folder / "b_good.flac", samples, rate)
    soundfile.write(folder / "c_good.wav", samples, rate)
    nan = np.zeros(800, np.float32)
    nan[3] = np.nan
    soundfile.write(folder / "d_nan.wav", nan, 8000, subtype="FLOAT")
    code = main(["features", str(folder), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_good.flac.npz",
                                                                    "c_good.wav.npz"]
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2
    assert "a_bad.wav" in errors[0] and "d_nan.wav: sample 3 is NaN" in errors[1]


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "features" in capsys.readouterr().out


@pytest.mark.slow
def test_train_takes_the_window_and_the_warp_from_the_command_line(tmp_path):
    from pathlib import Path

    from discovery.bundle import load_config, load_model

    data = Path(__file__).resolve().parent.parent / "data"
    out = tmp_path / "model"
    assert main(["train", str(data / "fsdd"), "--preset", "tiny", "--epochs", "1",
                 "--window-seconds", "0.24", "--window-hop-seconds", "0.04", "--warp",
                 "0.1", "--out", str(out), "--quiet"]) == 0
    config = load_config(out)
    assert (config.windows.window_seconds, config.windows.hop_seconds) == (0.24, 0.04)
    assert config.training.warp == 0.1
    model = load_model(out)
    assert model.warp == 0.1 and model.input_frames == config.input_frames == 24
    card = (out / "MODEL_CARD.md").read_text()
    assert "0.24 s (24 frames) every 0.04 s" in card and "warped by up to 0.1." in card


@pytest.mark.slow
def test_terminal_output_is_discovery_s_own(tmp_path):
    """No TensorFlow or absl lines; progress and logs on stderr, stdout left clean."""
    from pathlib import Path

    data = Path(__file__).resolve().parent.parent / "data"
    result = _run("train", data / "fsdd", "--preset", "tiny", "--epochs", "1", "--out",
                  tmp_path / "model")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "reconstruction_loss:" in result.stderr  # Keras's epoch line
    foreign = ("I0000", "W0000", "WARNING: All log messages", "oneDNN", "cpu_feature_guard",
               "tensorflow/")
    assert not [line for line in result.stderr.splitlines() if line.startswith(foreign)
                or any(word in line for word in foreign[2:])]
    quiet = _run("run", data / "fsdd", "--out", tmp_path / "run", "--quiet", "--method",
                 "kmeans", "--clusters", "3", "--reduction", "pca")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and quiet.stderr == ""
