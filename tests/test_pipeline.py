"""`discovery run` end to end on the sample recordings, with the shipped model."""

import csv
import json
import shutil

import numpy as np
import pytest

from discovery.cli import main
from discovery.config import ClusterConfig

# End-to-end runs of the main job on real recordings.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from pathlib import Path

    data = Path(__file__).resolve().parent.parent / "data"
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["run", str(data / "recordings"), str(data / "fsdd"), "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_every_output_is_written(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"units.csv", "embeddings.npz", "report.html", "run.json", "scores.json",
            "tables"} <= names
    assert (run_dir / "tables" / "recordings" / "rec_01.wav.selections.txt").is_file()
    assert (run_dir / "tables" / "fsdd" / "3_nicolas_0.wav.labels.txt").is_file()
    assert not [p for p in run_dir.rglob("*") if p.name.startswith(".")]


def test_units_csv_and_embeddings_agree(run_dir):
    with open(run_dir / "units.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "start_s", "end_s", "unit", "confidence"]
    with np.load(run_dir / "embeddings.npz") as arrays:
        assert {"file", "start_s", "end_s", "embedding", "silence", "unit"} <= set(arrays)
        windows = {name: arrays[name] for name in ("file", "start_s", "end_s", "unit")}
    with np.load(run_dir / "segments.npz") as arrays:
        segments = {name: arrays[name] for name in ("file", "start_s", "end_s", "unit")}
    units = windows["unit"]
    assert set(int(r["unit"]) for r in rows) == set(units[units >= 0].tolist())
    # At the segment level a window has the unit of the segment holding its centre,
    # and none outside every segment (silence lies outside them).
    centres = (windows["start_s"] + windows["end_s"]) / 2
    for index in np.flatnonzero(units >= 0):
        holder = ((segments["file"] == windows["file"][index])
                  & (segments["start_s"] <= centres[index])
                  & (centres[index] < segments["end_s"]))
        assert holder.sum() == 1 and segments["unit"][holder][0] == units[index]
    for row in rows:
        assert float(row["start_s"]) < float(row["end_s"])
        assert 0.0 <= float(row["confidence"]) <= 1.0


def test_run_json_and_scores(run_dir):
    info = json.loads((run_dir / "run.json").read_text())
    for stage in ("load_model_s", "features_and_embedding_s", "clustering_s", "map_s",
                  "scores_s", "report_s", "total_s"):
        assert info["timings_s"][stage] >= 0
    assert info["settings"]["versions"]["keras"]
    assert len(info["recordings"]) == 11
    scores = json.loads((run_dir / "scores.json").read_text())
    assert scores["n_annotated_recordings"] == 1
    # Per 10 ms frame, silence from 0.32 s windows is coarser than per window (the
    # model card's figure); both are reported, each under its own name.
    assert 0.0 <= scores["nmi"] <= 1.0
    assert scores["silence_balanced_accuracy_windows"] > 0.9
    assert scores["silence_balanced_accuracy_frames"] > 0.8


def test_existing_output_folder_is_never_mixed(run_dir, tmp_path, finch_song, capsys):
    out = tmp_path / "old"
    shutil.copytree(run_dir, out)
    (out / "stale.txt").write_text("from an older run")
    assert main(["run", str(finch_song), "--out", str(out), "--quiet"]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (out / "stale.txt").exists()
    # --overwrite replaces a run, never a file that the run did not write.
    assert main(["run", str(finch_song), "--out", str(out), "--quiet",
                 "--overwrite"]) == 2
    assert "stale.txt" in capsys.readouterr().err
    assert (out / "stale.txt").exists()
    (out / "stale.txt").unlink()
    assert main(["run", str(finch_song), "--out", str(out), "--quiet",
                 "--overwrite"]) == 0
    assert json.loads((out / "run.json").read_text())["recordings"] == [str(finch_song)]


def test_too_little_sound_is_a_clear_error(tmp_path, digit_clip, capsys):
    assert main(["run", str(digit_clip), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "too little sound to find units" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not list(tmp_path.iterdir())


def test_corrupt_file_among_good_ones(tmp_path, finch_song, digit_clip, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(finch_song, folder / "a.wav")
    shutil.copy(digit_clip, folder / "b.wav")
    (folder / "c.wav").write_bytes(b"RIFF\x00\x00garbage")
    out = tmp_path / "out"
    assert main(["run", str(folder), "--out", str(out), "--quiet", "--method", "kmeans",
                 "--clusters", "2"]) == 2
    assert "c.wav" in capsys.readouterr().err
    assert len(json.loads((out / "run.json").read_text())["recordings"]) == 2


def test_bad_arguments_exit_2(tmp_path, finch_song, capsys):
    assert main(["run", str(finch_song), "--out", str(tmp_path / "o"), "--method",
                 "kmeans", "--clusters", "1"]) == 2
    assert "n_clusters" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_reduction_option_reaches_the_clusterer(tmp_path, capsys):
    from pathlib import Path

    data = Path(__file__).resolve().parent.parent / "data"
    out = tmp_path / "pca"
    assert main(["run", str(data / "recordings"), "--out", str(out), "--reduction", "pca",
                 "--method", "kmeans", "--clusters", "5", "--quiet"]) == 0
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["run"]["reduction"] == "pca"
    with pytest.raises(SystemExit) as stopped:  # argparse rejects it, exit code 2
        main(["run", str(data / "recordings"), "--out", str(tmp_path / "x"),
              "--reduction", "tsne"])
    assert stopped.value.code == 2 and "tsne" in capsys.readouterr().err


def test_a_shipped_model_by_name(tmp_path, finch_song):
    out = tmp_path / "finch"
    assert main(["embed", str(finch_song), "--model", "birdsong", "--out", str(out),
                 "--quiet"]) == 0
    with np.load(out / "embeddings.npz") as arrays:
        # The birdsong bundle's windows: 25 frames of 16 ms every 8 ms (0.208 s), one
        # every 2 frames (16 ms); the default model's would be 0.335 s every 0.08 s.
        assert np.allclose(arrays["end_s"] - arrays["start_s"], 0.208, atol=1e-6)
        assert np.allclose(np.diff(arrays["start_s"][:5]), 0.016, atol=1e-6)


def test_discover_in_memory_writes_nothing(tmp_path, monkeypatch):
    from pathlib import Path

    from discovery.bundle import Bundle, default_model_dir
    from discovery.pipeline import RunConfig, discover
    from discovery.result import DiscoveryResult

    assert RunConfig is ClusterConfig
    data = Path(__file__).resolve().parent.parent / "data"
    monkeypatch.chdir(tmp_path)
    config = ClusterConfig(method="kmeans", n_clusters=4, reduction="pca")
    result = discover([data / "fsdd", tmp_path / "missing"], Bundle.load("default"), config,
                      progress=False)
    assert not list(tmp_path.iterdir())
    assert isinstance(result, DiscoveryResult)
    assert [f.path for f in result.failures] == [str(tmp_path / "missing")]
    windows = result.windows
    assert len(result.recordings) == len(windows.files) == 10
    assert result.unit.shape == result.probability.shape == (len(windows),)
    assert np.all(result.unit[windows.silence >= config.silence_threshold] == -1)
    assert result.n_units == 4 and len(result.occurrences) > 0
    assert result.occurrences.n_windows.sum() == np.sum(result.unit >= 0)
    # The map: the clustered (non-silent) windows, with the run's own reduction.
    assert result.map is not None and "PCA" in result.map.method
    assert result.map.xy.shape == (len(result.map.index), 2)
    assert np.all(windows.silence[result.map.index] < config.silence_threshold)
    assert result.settings["run"] == config.to_dict()
    assert result.settings["model"] == str(default_model_dir())


def test_pairs_writes_json_and_png(tmp_path):
    from pathlib import Path

    from discovery.bundle import default_model_dir
    from discovery.pipeline import pairs

    data = Path(__file__).resolve().parent.parent / "data"
    summary = pairs([data / "fsdd"], tmp_path, label_regex=r"^\d_([a-z]+)_", n_pairs=5,
                    progress=False)
    assert summary.n_files == 10 and not summary.failures
    written = json.loads((tmp_path / "pairs.json").read_text())
    assert written["model"] == str(default_model_dir())
    assert written["hop_seconds"] == 0.08  # the shipped model's own
    assert written["results"] == summary.results
    assert set(summary.results) == {"raw", "latent"}
    assert (tmp_path / "pairs.png").read_bytes().startswith(b"\x89PNG")


def test_pairs_embed_at_the_hop_asked_for(tmp_path):
    from pathlib import Path

    from discovery.errors import ParameterError
    from discovery.pipeline import pairs

    data = Path(__file__).resolve().parent.parent / "data"
    pairs([data / "fsdd"], tmp_path, label_regex=r"^\d_([a-z]+)_", n_pairs=5,
          hop_seconds=0.04, progress=False)
    assert json.loads((tmp_path / "pairs.json").read_text())["hop_seconds"] == 0.04
    with pytest.raises(ParameterError, match="hop_seconds.*0.015"):
        pairs([data / "fsdd"], tmp_path / "bad", label_regex=r"^\d_([a-z]+)_", n_pairs=5,
              hop_seconds=0.015, progress=False)
    assert not (tmp_path / "bad" / "pairs.json").exists()
