"""The bad-input corpus: what a careless or hostile user can do to the commands, built
in a temporary folder. Nothing may destroy an input, lose an output, pass silently
with a wrong result or end in a traceback: each case gets one line and exit code 2.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from discovery import files
from discovery.cli import main
from discovery.errors import ParameterError

# Each case runs a real command end to end.
pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent.parent / "data"


# k-means on PCA: the quickest clustering, for tests about files rather than units.
FAST = ["--method", "kmeans", "--clusters", "3", "--reduction", "pca", "--quiet"]


def _errors(text: str) -> list:
    return [line for line in text.splitlines() if line.startswith("discovery: error:")]


def _one_error(capsys, *expected: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = _errors(err)
    assert len(lines) == 1, err
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def recordings(tmp_path):
    """A folder of real speech: the ten spoken digits of data/fsdd."""
    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted((DATA / "fsdd").glob("*.wav")):
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- cases 1-4: the output folder --------------------------------------------------

def test_out_may_not_be_an_input(recordings, capsys):
    before = _snapshot(recordings)
    assert main(["run", str(recordings), "--out", str(recordings), "--overwrite", *FAST]) == 2
    _one_error(capsys, "would hold the input")
    assert _snapshot(recordings) == before


def test_out_may_not_hold_an_input(recordings, tmp_path, monkeypatch, capsys):
    (tmp_path / "mythesis.txt").write_text("three years")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "in", "--out", ".", "--overwrite", *FAST]) == 2
    _one_error(capsys, "would hold the input")
    assert (tmp_path / "mythesis.txt").read_text() == "three years"


def test_overwrite_refuses_a_folder_discovery_did_not_write(recordings, tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "mythesis.txt").write_text("three years")
    assert main(["run", str(recordings), "--out", str(out), "--overwrite", *FAST]) == 2
    _one_error(capsys, "replaces only a folder written by `discovery run`", "mythesis.txt")
    assert (out / "mythesis.txt").read_text() == "three years"


def test_out_dot_works_and_overwrite_replaces_only_a_run(recordings, tmp_path, monkeypatch,
                                                         capsys):
    here = tmp_path / "results"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["run", str(recordings), "--out", ".", *FAST]) == 0
    first = json.loads((here / "run.json").read_text())
    assert first["written_by"] == "discovery run"
    assert {"units.csv", "embeddings.npz", "report.html", "tables"} <= set(os.listdir(here))
    # Without --overwrite a second run is refused; with it, the run is replaced.
    assert main(["run", str(recordings), "--out", ".", *FAST]) == 2
    _one_error(capsys, "already holds files")
    assert main(["run", str(recordings), "--out", ".", "--overwrite", *FAST]) == 0
    assert os.getcwd() == str(here) and (here / "run.json").is_file()
    # Nothing but the run's own outputs is left behind: no staging, no lock.
    assert sorted(os.listdir(here)) == sorted(
        ["units.csv", "embeddings.npz", "segments.npz", "report.html", "tables",
         "run.json"])
    # A user's file added to a run folder makes it foreign: --overwrite refuses it.
    (here / "notes.txt").write_text("mine")
    assert main(["run", str(recordings), "--out", ".", "--overwrite", *FAST]) == 2
    _one_error(capsys, "notes.txt")
    assert (here / "notes.txt").read_text() == "mine"


def test_a_second_writer_is_refused(recordings, tmp_path, capsys):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / files.LOCK_NAME, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["run", str(recordings), "--out", str(out), *FAST]) == 2
        _one_error(capsys, "another discovery command is writing into this folder")
    assert not (out / "run.json").exists()


def test_stale_staging_of_a_killed_run_is_removed(recordings, tmp_path):
    out = tmp_path / "out"
    stale = out / f"{files.STAGING_PREFIX}99999-dead"
    stale.mkdir(parents=True)
    (stale / "units.csv").write_text("half")
    assert main(["run", str(recordings), "--out", str(out), *FAST]) == 0
    assert not stale.exists() and (out / "run.json").is_file()


def test_failure_inside_the_folder_leaves_no_staging(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with files.output_folder(out, inputs=[], overwrite=False, owned=("a",),
                                 marker="a", command="test") as staging:
            (staging / "a").write_text("x")
            raise KeyboardInterrupt
    assert not out.exists()  # it made the folder, so it takes it away again


def test_sigterm_cleans_up_like_ctrl_c(recordings, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "discovery.cli", "run", str(recordings), "--out", str(out),
         *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(files.STAGING_PREFIX + "*")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()


# -- case 5: names that never collide ------------------------------------------------

def test_equal_stems_keep_their_own_outputs(tmp_path, digit_clip, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    samples, rate = soundfile.read(digit_clip)
    soundfile.write(folder / "dup.wav", samples, rate)
    soundfile.write(folder / "dup.flac", samples[::-1], rate)
    assert main(["features", str(folder), "--out", str(tmp_path / "features")]) == 0
    assert "wrote 2 feature file(s)" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "features")) == ["dup.flac.npz", "dup.wav.npz"]
    out = tmp_path / "run"
    # Both files are too short alone; the digits bring enough sound.
    for path in sorted((DATA / "fsdd").glob("*.wav")):
        (folder / path.name).write_bytes(path.read_bytes())
    assert main(["run", str(folder), "--out", str(out), *FAST]) == 0
    tables = sorted(os.listdir(out / "tables"))
    assert "dup.flac.selections.txt" in tables and "dup.wav.selections.txt" in tables
    assert "dup.flac.labels.txt" in tables and "dup.wav.labels.txt" in tables


def test_features_refuses_to_replace_outputs_without_overwrite(tmp_path, digit_clip, capsys):
    out = tmp_path / "out"
    assert main(["features", str(digit_clip), "--out", str(out), "--quiet"]) == 0
    written = out / "0_george_0.wav.npz"
    stamp = written.stat().st_mtime_ns
    assert main(["features", str(digit_clip), "--out", str(out), "--quiet"]) == 2
    _one_error(capsys, "0_george_0.wav.npz: already exists")
    assert written.stat().st_mtime_ns == stamp
    assert main(["features", str(digit_clip), "--out", str(out), "--quiet",
                 "--overwrite"]) == 0


def test_embed_refuses_to_replace_outputs_without_overwrite(tmp_path, digit_clip, capsys):
    out = tmp_path / "out"
    assert main(["embed", str(digit_clip), "--out", str(out), "--quiet"]) == 0
    assert main(["embed", str(digit_clip), "--out", str(out), "--quiet"]) == 2
    _one_error(capsys, "embeddings.npz: already exists")


# -- cases 9, 13, 14: flags, settings, unreadable and missing inputs ----------------

@pytest.mark.parametrize("flags,expected", [
    (["--method", "hdbscan", "--clusters", "5"], "n_clusters` (--clusters)"),
    (["--method", "kmeans", "--min-cluster-size", "5"], "min_cluster_size"),
    (["--clusters", "1", "--method", "kmeans"], "n_clusters"),
    (["--min-cluster-size", "0"], "min_cluster_size"),
])
def test_flags_that_do_not_apply_are_refused_before_any_work(recordings, tmp_path, flags,
                                                             expected, capsys):
    out = tmp_path / "out"
    assert main(["run", str(recordings), "--out", str(out), "--quiet", *flags]) == 2
    _one_error(capsys, expected)
    assert not out.exists()


def test_a_bad_setting_in_a_config_is_one_line(tmp_path, digit_clip, capsys):
    from discovery.config import PipelineConfig

    values = json.loads(PipelineConfig().to_json())
    values["features"]["sample_rate"] = 10**12
    config = tmp_path / "config.json"
    config.write_text(json.dumps(values))
    assert main(["features", str(digit_clip), "--out", str(tmp_path / "out"),
                 "--config", str(config), "--quiet"]) == 2
    _one_error(capsys, "sample_rate")


def test_unwritable_output_is_one_line(recordings, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for argv in (["run", str(recordings), *FAST],
                 ["features", str(recordings), "--quiet"],
                 ["embed", str(recordings), "--quiet"]):
        assert main([*argv, "--out", str(blocker / "out")]) == 2
        _one_error(capsys, str(blocker))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_output_is_one_line(recordings, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["run", str(recordings), "--out", str(locked / "out"), *FAST]) == 2
        _one_error(capsys, "Permission denied")
    finally:
        locked.chmod(0o755)


def _bad_files(folder):
    """An empty file, text named .wav and a file of NaN samples: each has its reason."""
    (folder / "empty.wav").touch()
    (folder / "text.wav").write_text("not audio")
    nan = np.zeros(800, np.float32)
    nan[3] = np.nan
    soundfile.write(folder / "nan.wav", nan, 8000, subtype="FLOAT")
    return {"empty.wav": "the file is empty", "text.wav": "not a readable audio file",
            "nan.wav": "sample 3 is NaN"}


def test_run_names_each_unreadable_file_and_its_reason(tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    reasons = _bad_files(folder)
    assert main(["run", str(folder), "--out", str(tmp_path / "out"), *FAST]) == 2
    line = _one_error(capsys, "no readable recordings")
    for name, reason in reasons.items():
        assert f"{name}: {reason}" in line
    assert not (tmp_path / "out" / "run.json").exists()


def test_a_missing_input_is_listed_and_the_rest_processed(recordings, tmp_path, capsys):
    reasons = _bad_files(recordings)
    out = tmp_path / "out"
    assert main(["run", str(recordings), str(tmp_path / "missing.wav"), "--out", str(out),
                 *FAST]) == 2
    lines = _errors(capsys.readouterr().err)
    assert len(lines) == 1 + len(reasons)
    assert "missing.wav: no such file or folder" in lines[0]
    run = json.loads((out / "run.json").read_text())
    assert len(run["recordings"]) == 10 and len(run["failures"]) == 4
    units = (out / "units.csv").read_text()
    assert "empty.wav" not in units and "0_george_0.wav" in units


def test_a_bad_annotation_is_listed_and_the_run_goes_on(recordings, tmp_path, capsys):
    (recordings / "0_george_0.csv").write_text("start_s,end_s,label\n0.1,oops,zero\n")
    (recordings / "1_jackson_0.csv").write_text("start_s,end_s,label\n0.05,0.4,one\n")
    out = tmp_path / "out"
    assert main(["run", str(recordings), "--out", str(out), *FAST]) == 2
    _one_error(capsys, "0_george_0.csv", "without scores")
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_annotated_recordings"] == 1


# -- case 7: digital silence ---------------------------------------------------------

def test_digital_silence_is_silence_and_gets_no_unit(recordings, tmp_path):
    soundfile.write(recordings / "zeros.wav", np.zeros(16000, np.float32), 8000)
    hiss = np.random.default_rng(0).normal(0, 1e-6, 16000).astype(np.float32)
    soundfile.write(recordings / "hiss.wav", hiss, 8000, subtype="FLOAT")
    out = tmp_path / "out"
    assert main(["run", str(recordings), "--out", str(out), *FAST]) == 0
    with np.load(out / "embeddings.npz") as arrays:
        for name in ("zeros.wav", "hiss.wav"):
            mine = np.char.endswith(arrays["file"], name)
            assert mine.any()
            assert np.all(arrays["silence"][mine] == 1.0)
            assert np.all(arrays["unit"][mine] == -1)
    units = (out / "units.csv").read_text()
    assert "zeros.wav" not in units and "hiss.wav" not in units
    assert "digitally silent" in (out / "report.html").read_text()


def test_digital_silence_alone_is_refused_with_a_reason(tmp_path, capsys):
    path = tmp_path / "zeros.wav"
    soundfile.write(path, np.zeros(80000, np.float32), 8000)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), *FAST]) == 2
    _one_error(capsys, "too little sound")


def test_output_folder_checks_before_any_work():
    with pytest.raises(ParameterError, match="would hold the input"):
        files.check_output_location(DATA, [DATA / "fsdd"])


@pytest.mark.parametrize("option, value, name", [("--warp", "0.7", "warp"),
                                                 ("--window-seconds", "-1", "window_seconds"),
                                                 ("--window-hop-seconds", "0", "hop_seconds")])
def test_train_refuses_a_bad_window_or_warp_before_reading(recordings, tmp_path, capsys,
                                                           option, value, name):
    out = tmp_path / "model"
    assert main(["train", str(recordings), "--out", str(out), "--preset", "tiny", option,
                 value, "--quiet"]) == 2
    _one_error(capsys, f"`{name}`", value)
    assert not out.exists()


def test_train_may_not_write_into_its_inputs(recordings, capsys):
    before = _snapshot(recordings)
    assert main(["train", str(recordings), "--out", str(recordings), "--preset", "tiny",
                 "--epochs", "1", "--quiet"]) == 2
    _one_error(capsys, "would hold the input")
    assert _snapshot(recordings) == before
