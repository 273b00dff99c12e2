"""The Parquet embedding store: shards in, tables out, resume bookkeeping (no Ray)."""

import json

import numpy as np
import pandas as pd
import pytest

from discovery.bundle import load_config, resolve_model_dir
from discovery.cli import main
from discovery.errors import ParameterError
from discovery.store import (
    MANIFEST_NAME,
    SEGMENTS_DIR,
    ShardPart,
    Store,
    write_shard,
)


@pytest.fixture(scope="module")
def config():
    return load_config(resolve_model_dir("default"))


def _part(path, n, rng, config, n_segments=2):
    d = config.model.latent_dim
    width = config.input_frames * config.input_features
    start = np.arange(n) * 0.08
    images = rng.normal(size=(n_segments, width)).astype(np.float32)
    segments = (np.arange(n_segments) * 0.5, np.arange(n_segments) * 0.5 + 0.3, images,
                np.full(n_segments, 3, np.int64))
    return ShardPart(str(path), start, start + 0.64, rng.normal(size=(n, d)).astype(np.float32),
                     rng.uniform(size=n).astype(np.float32), np.ones(n), segments)


def _entry(part, shard, **extra):
    return {"path": part.path, "size": 1, "mtime_ns": 1, "shard": shard, "duration_s": 2.0,
            "reference_db": -10.0, "digital_silence": False, **extra}


def test_shards_read_back_as_tables_in_the_asked_order(tmp_path, rng, config):
    store = Store.create(tmp_path / "embeddings", config, model="default")
    a, b, c = (_part(f"rec_{i}.wav", n, rng, config) for i, n in enumerate((5, 0, 7)))
    first = write_shard(store.path, [a, b], latent_dim=config.model.latent_dim,
                        image_size=a.segments[2].shape[1])
    second = write_shard(store.path, [c], latent_dim=config.model.latent_dim,
                         image_size=a.segments[2].shape[1])
    store.record([_entry(a, first), _entry(b, first), _entry(c, second)])

    windows, infos, segments = Store.open(store.path).read([c.path, a.path])
    assert windows.files == [c.path, a.path]
    assert [info.path for info in infos] == [c.path, a.path]
    np.testing.assert_array_equal(windows.embedding, np.concatenate([c.embedding,
                                                                     a.embedding]))
    np.testing.assert_array_equal(windows.silence, np.concatenate([c.silence, a.silence]))
    np.testing.assert_array_equal(windows.start_s, np.concatenate([c.start_s, a.start_s]))
    np.testing.assert_array_equal(segments.embedding, np.concatenate([c.segments[2],
                                                                      a.segments[2]]))
    assert segments.file.tolist() == [0, 0, 1, 1]
    # A recording with no windows still reads back, as an empty part.
    windows, infos, _ = Store.open(store.path).read([b.path])
    assert len(windows) == 0 and infos[0].duration_s == 2.0
    # Parquet readers skip the manifest, settings and segments: one row per window.
    table = pd.read_parquet(store.path)
    assert len(table) == 12 and set(table.columns) >= {"file", "start_s", "end_s",
                                                      "embedding", "silence"}


def test_newest_line_wins_and_shards_in_flight_are_removed(tmp_path, rng, config):
    store = Store.create(tmp_path / "s", config, model="default")
    old, new = _part("x.wav", 4, rng, config), _part("x.wav", 6, rng, config)
    width = old.segments[2].shape[1]
    shards = [write_shard(store.path, [p], latent_dim=config.model.latent_dim,
                          image_size=width) for p in (old, new)]
    store.record([_entry(old, shards[0]), _entry(new, shards[1], size=2)])
    orphan = write_shard(store.path, [old], latent_dim=config.model.latent_dim,
                         image_size=width)
    # A kill mid-line leaves a partial line: it is ignored.
    with open(store.path / MANIFEST_NAME, "a") as manifest:
        manifest.write('{"path": "y.wav", "si')

    reopened = Store.create(store.path, config, model="default")
    assert not (store.path / orphan).exists()
    assert not (store.path / SEGMENTS_DIR / orphan).exists()
    windows, _, _ = reopened.read()
    assert windows.files == ["x.wav"]
    np.testing.assert_array_equal(windows.embedding, new.embedding)
    assert reopened.done([{"path": "x.wav", "size": 2, "mtime_ns": 1},
                          {"path": "x.wav", "size": 1, "mtime_ns": 1},
                          {"path": "y.wav", "size": 1, "mtime_ns": 1}]) == [True, False,
                                                                            False]


def test_a_store_of_other_settings_is_refused(tmp_path, config):
    Store.create(tmp_path / "s", config, model="default")
    other = config.replace(windows=config.windows.replace(
        hop_seconds=2 * config.windows.hop_seconds))
    with pytest.raises(ParameterError, match="other settings"):
        Store.create(tmp_path / "s", other, model="default")
    Store.create(tmp_path / "s", other, model="default", overwrite=True)
    assert Store.open(tmp_path / "s").config.windows.hop_seconds == other.windows.hop_seconds
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="not an embedding store"):
        Store.create(tmp_path / "plain", config, model="default")


def test_run_refuses_a_folder_that_is_not_a_store(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    code = main(["run", "--embeddings", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "out"), "--quiet"])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "not an embedding store" in error and "\n" not in error


def test_run_needs_recordings_or_a_store_not_both(tmp_path, digit_clip, capsys):
    assert main(["run", "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "no recordings given" in capsys.readouterr().err
    assert main(["run", str(digit_clip), "--embeddings", str(tmp_path), "--out",
                 str(tmp_path / "b"), "--quiet"]) == 2
    assert "not both" in capsys.readouterr().err


def test_ray_options_need_the_ray_engine(tmp_path, digit_clip, capsys):
    assert main(["embed", str(digit_clip), "--out", str(tmp_path), "--workers", "2"]) == 2
    assert "only with --engine ray" in capsys.readouterr().err


def test_the_ray_engine_without_ray_says_how_to_install_it(tmp_path, digit_clip, capsys,
                                                          monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    for command in ("embed", "run"):
        code = main([command, str(digit_clip), "--out", str(tmp_path / command),
                     "--engine", "ray", "--quiet"])
        error = capsys.readouterr().err.strip()
        assert code == 2
        assert "pip install" in error and "[ray]" in error and "\n" not in error
        assert not (tmp_path / command / "embeddings").exists()


def test_manifest_lines_are_json(tmp_path, rng, config):
    store = Store.create(tmp_path / "s", config, model="default")
    part = _part("a.wav", 3, rng, config)
    shard = write_shard(store.path, [part], latent_dim=config.model.latent_dim,
                        image_size=part.segments[2].shape[1])
    store.record([_entry(part, shard)])
    lines = (store.path / MANIFEST_NAME).read_text().splitlines()
    assert [json.loads(line)["shard"] for line in lines] == [shard]
