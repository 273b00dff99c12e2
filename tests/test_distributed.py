"""The Ray engine: the same answers as the local path, resuming, and a real two-node
cluster on this machine. Skipped where the `ray` extra is not installed (the README's
test command installs it)."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from discovery.cli import main
from discovery.store import MANIFEST_NAME, Store

pytest.importorskip("ray.data", reason="the ray extra is not installed")

DATA = Path(__file__).resolve().parent.parent / "data"


def _lines(store_dir: Path) -> list:
    return [json.loads(line) for line in
            (store_dir / MANIFEST_NAME).read_text().splitlines()]


def test_embed_skips_what_is_stored_and_redoes_what_a_kill_lost(tmp_path, capsys):
    clips = sorted((DATA / "fsdd").glob("*.wav"))[:3]
    out = tmp_path / "out"
    assert main(["embed", *map(str, clips[:2]), "--out", str(out), "--engine", "ray",
                 "--workers", "2", "--quiet"]) == 0
    store_dir = out / "embeddings"
    assert sorted(line["path"] for line in _lines(store_dir)) == sorted(map(str, clips[:2]))
    # A kill after a shard was written but before the driver recorded it: the
    # manifest loses its line, the shard stays on disk.
    kept = _lines(store_dir)[:1]
    (store_dir / MANIFEST_NAME).write_text("".join(json.dumps(x) + "\n" for x in kept))

    # The rerun also meets a file that is not audio: it is reported (exit 2), the
    # others are stored.
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    assert main(["embed", *map(str, clips), str(broken), "--out", str(out), "--engine",
                 "ray", "--workers", "2"]) == 2
    message = capsys.readouterr().err
    assert "embedded 2 recording(s)" in message and "1 already in the store" in message
    assert "broken.wav" in message and "not a readable audio file" in message
    assert sorted(line["path"] for line in _lines(store_dir)) == sorted(map(str, clips))
    named = {line["shard"] for line in _lines(store_dir)}
    assert {p.name for p in store_dir.glob("part-*.parquet")} == named
    windows, infos, _ = Store.open(store_dir).read([str(c) for c in clips])
    assert len(infos) == 3 and len(windows) > 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`discovery run data/` on each engine, once for the tests below."""
    folder = tmp_path_factory.mktemp("runs")
    local, ray_out = folder / "A", folder / "B"
    assert main(["run", str(DATA), "--out", str(local), "--quiet"]) == 0
    assert main(["run", str(DATA), "--engine", "ray", "--workers", "2", "--out",
                 str(ray_out), "--quiet"]) == 0
    return local, ray_out


@pytest.mark.slow
def test_ray_run_gives_the_local_answers(runs):
    """`discovery run data/` and `discovery run data/ --engine ray`: embeddings within
    1e-5 and the same units.csv."""
    local, ray_out = runs
    units = (local / "units.csv").read_text()
    assert units.count("\n") > 20
    assert (ray_out / "units.csv").read_text() == units
    a = np.load(local / "embeddings.npz")
    files = list(dict.fromkeys(a["file"].tolist()))
    b, _, _ = Store.open(ray_out / "embeddings").read(files)
    assert np.asarray(b.files)[b.file].tolist() == a["file"].tolist()
    np.testing.assert_allclose(b.embedding, a["embedding"], atol=1e-5)
    np.testing.assert_allclose(b.silence, a["silence"], atol=1e-5)
    np.testing.assert_array_equal(b.start_s, a["start_s"])
    # Each window's unit, placed on the cluster, is the local engine's.
    placed = pd.concat([pd.read_parquet(p) for p in
                        sorted((ray_out / "embeddings" / "_units").glob("*.parquet"))])
    placed = placed.set_index(["file", "start_s"]).loc[list(zip(a["file"], a["start_s"]))]
    np.testing.assert_array_equal(placed["unit"].to_numpy(), a["unit"])
    record = json.loads((ray_out / "run.json").read_text())
    assert record["engine"]["name"] == "ray" and record["engine"]["workers"] == 2
    assert record["n_windows"] == len(a["file"])
    assert record["timings_s"]["features_and_embedding_s"] > 0
    assert not (ray_out / "embeddings.npz").exists()
    assert "<img" in (ray_out / "report.html").read_text()


@pytest.mark.slow
def test_a_stored_run_gives_the_local_units(runs, tmp_path):
    """`discovery run --embeddings STORE` clusters without the audio's features: the
    local engine's units at the segment level and, from the same store, the window
    level."""
    local, ray_out = runs
    store = str(ray_out / "embeddings")
    assert main(["run", "--embeddings", store, "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert (tmp_path / "s" / "units.csv").read_text() == (local / "units.csv").read_text()
    assert main(["run", str(DATA), "--out", str(tmp_path / "lw"), "--quiet", "--level",
                 "windows"]) == 0
    assert main(["run", "--embeddings", store, "--out", str(tmp_path / "sw"), "--quiet",
                 "--level", "windows"]) == 0
    # The store gives the clustering the local run's windows: the same files and times,
    # embeddings equal to float32 rounding (the Ray workers' threads sum in another
    # order). UMAP amplifies a 1e-7 difference over some 1,200 windows, so the units
    # are compared by agreement with a margin, far above what a wrong order would give.
    a, b = (np.load(tmp_path / name / "embeddings.npz") for name in ("lw", "sw"))
    assert a["file"].tolist() == b["file"].tolist()
    np.testing.assert_array_equal(a["start_s"], b["start_s"])
    np.testing.assert_allclose(b["embedding"], a["embedding"], atol=1e-5)
    np.testing.assert_allclose(b["silence"], a["silence"], atol=1e-5)
    assert adjusted_rand_score(a["unit"], b["unit"]) > 0.6


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Node:
    """`ray start --block` in its own process group, stopped with the group."""

    def __init__(self, args: list, env: dict):
        ray_cli = str(Path(sys.executable).with_name("ray"))
        self.process = subprocess.Popen(
            [ray_cli, "start", "--block", "--num-cpus", "1", "--disable-usage-stats",
             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.output, self.started = [], threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.started.wait(120):
            self.stop()
            raise AssertionError("ray start did not start:\n" + "".join(self.output))

    def _read(self):
        for line in self.process.stdout:
            self.output.append(line)
            if "Ray runtime started" in line:
                self.started.set()

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.mark.slow
def test_embed_on_a_two_node_cluster(tmp_path):
    """A head and a second node (`ray start --address`) on this machine, in temporary
    folders, one CPU each; `discovery embed --address` uses both."""
    # Ray's own session folder: a short path (its socket names must stay short).
    session = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    # Token authentication, as Ray advises for any cluster: every node and the driver
    # share the token.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = [_Node(["--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--temp-dir", session, "--include-dashboard", "false"], env)]
    try:
        nodes.append(_Node(["--address", address], env))
        out = tmp_path / "out"
        # As a user runs it, in its own process: Ray reads RAY_AUTH_MODE when imported.
        done = subprocess.run(
            [str(Path(sys.executable).with_name("discovery")), "embed", str(DATA / "fsdd"),
             "--out", str(out), "--engine", "ray", "--address", address],
            env=env, capture_output=True, text=True, timeout=600)
        message = done.stderr
        assert done.returncode == 0, message
        assert "on 2 Ray worker(s) across 2 node(s)" in message
        clips = sorted(str(p) for p in (DATA / "fsdd").glob("*.wav"))
        assert sorted(line["path"] for line in _lines(out / "embeddings")) == clips
        windows, _, _ = Store.open(out / "embeddings").read()
        assert len(windows) > 0 and np.all(np.isfinite(windows.embedding))
    finally:
        for node in reversed(nodes):
            node.stop()


@pytest.mark.slow
def test_windows_outside_the_fit_sample_are_placed_on_the_cluster(runs, tmp_path):
    """With a fit sample smaller than the windows, the driver fits on the sample alone
    (the same fit as the local clusterer's) and the workers place the rest."""
    import ray

    from discovery.distributed import connect
    from discovery.distributed_clustering import cluster_on_ray
    from discovery.units.clustering import UnitClusterer

    # A copy: placing writes the window units beside the store.
    shutil.copytree(runs[1] / "embeddings", tmp_path / "embeddings")
    store = Store.open(tmp_path / "embeddings")
    names = store.paths()
    connect(None, workers=2)
    try:
        prototype = UnitClusterer(max_fit_points=200, random_state=3)
        clusters = cluster_on_ray(store, names, prototype, level="windows",
                                  segment_features="image", silence_threshold=0.5,
                                  keep=names, progress=False)
    finally:
        ray.shutdown()
    windows, units, _, _, _, _, _ = clusters.sample
    local = UnitClusterer(max_fit_points=200, random_state=3).fit(
        windows.embedding, silence=windows.silence)
    sound = windows.silence < 0.5
    assert clusters.n_fit == 200 and clusters.n_windows == len(windows)
    assert np.all(units[~sound] == -1)
    # The fitted windows: the same units as the local clusterer's own fit.
    np.testing.assert_array_equal(units[local.fit_indices_], local.labels_[local.fit_indices_])
    # The placed ones: UMAP places each batch in one seeded optimisation, so a window
    # near a unit's edge may differ with the batch; nearly all agree.
    placed = np.setdiff1d(np.flatnonzero(sound), local.fit_indices_)
    assert len(placed) > 300
    assert np.mean(units[placed] == local.labels_[placed]) > 0.9
    occurrences = clusters.occurrences
    assert len(occurrences[0]) > 0 and np.all(np.diff(occurrences[0]) >= 0)


def test_a_cluster_address_where_nothing_answers_fails_at_once(tmp_path, digit_clip,
                                                                capsys):
    out = tmp_path / "out"
    for command in ("embed", "run"):
        code = main([command, str(digit_clip), "--out", str(out), "--engine", "ray",
                     "--address", f"127.0.0.1:{_free_port()}", "--quiet"])
        error = capsys.readouterr().err.strip()
        assert code == 2 and "no Ray cluster answers there" in error and "\n" not in error
        assert not out.exists()
    assert main(["embed", str(digit_clip), "--out", str(out), "--engine", "ray",
                 "--workers", "0"]) == 2
    assert "`workers`" in capsys.readouterr().err and not out.exists()
