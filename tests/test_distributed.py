"""The Ray engine: the same answers as the local path, resuming, and a real two-node
cluster on this machine. Skipped where the `ray` extra is not installed (the README's
test command installs it)."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

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

    assert main(["embed", *map(str, clips), "--out", str(out), "--engine", "ray",
                 "--workers", "2"]) == 0
    message = capsys.readouterr().err
    assert "embedded 2 recording(s)" in message and "1 already in the store" in message
    assert sorted(line["path"] for line in _lines(store_dir)) == sorted(map(str, clips))
    named = {line["shard"] for line in _lines(store_dir)}
    assert {p.name for p in store_dir.glob("part-*.parquet")} == named
    windows, infos, _ = Store.open(store_dir).read([str(c) for c in clips])
    assert len(infos) == 3 and len(windows) > 0


@pytest.mark.slow
def test_ray_run_gives_the_local_answers(tmp_path):
    """`discovery run data/` and `discovery run data/ --engine ray`: embeddings within
    1e-5 and the same units.csv; `run --embeddings` on the store, the same again."""
    local, ray_out, stored = tmp_path / "A", tmp_path / "B", tmp_path / "C"
    assert main(["run", str(DATA), "--out", str(local), "--quiet"]) == 0
    assert main(["run", str(DATA), "--engine", "ray", "--workers", "2", "--out",
                 str(ray_out), "--quiet"]) == 0
    units = (local / "units.csv").read_text()
    assert units.count("\n") > 20
    assert (ray_out / "units.csv").read_text() == units
    a, b = np.load(local / "embeddings.npz"), np.load(ray_out / "embeddings.npz")
    assert a["file"].tolist() == b["file"].tolist()
    np.testing.assert_allclose(b["embedding"], a["embedding"], atol=1e-5)
    np.testing.assert_allclose(b["silence"], a["silence"], atol=1e-5)
    np.testing.assert_array_equal(b["start_s"], a["start_s"])
    record = json.loads((ray_out / "run.json").read_text())
    assert record["engine"]["name"] == "ray" and record["engine"]["workers"] == 2
    assert record["timings_s"]["ray_embedding_s"] > 0

    assert main(["run", "--embeddings", str(ray_out / "embeddings"), "--out", str(stored),
                 "--quiet"]) == 0
    assert (stored / "units.csv").read_text() == units


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
