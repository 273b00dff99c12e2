"""The embedding store: windows (and segments) of many recordings as a Parquet dataset,
written shard by shard, read back as the tables a run clusters.

    STORE/                        e.g. OUT/embeddings/ (`discovery embed --engine ray`)
      part-<id>.parquet           one row per window: file, start_s, end_s, embedding,
                                  silence, valid_fraction; the windows of a few files
      _segments/part-<id>.parquet one row per segment: file, start_s, end_s, image,
                                  n_windows (each segment's spectrogram image, so a
                                  segment-level run needs no audio)
      _config.json                the bundle's settings (features, windows, model)
      _manifest.jsonl             one line per recording done: path, size, mtime_ns,
                                  shard, duration_s, reference_db, digital_silence

Parquet readers (pyarrow, pandas, Spark, DuckDB) skip names starting with "_", so
`pandas.read_parquet(STORE)` gives the window table alone.

A shard is written to a temporary name and renamed; its manifest lines are appended
after, by one process (the driver). A recording is done when the manifest lists it
with its current size and mtime; a shard no line names was in flight when a job was
killed, and is removed when the store is opened again. So a killed job loses at most
its shards in flight, and a rerun embeds only what is missing. A recording embedded
again (its file changed) gets a new line; the newest line wins, and rows of the
older shard are filtered out by their shard name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from discovery import files
from discovery.config import PipelineConfig
from discovery.embed import RecordingInfo, stack_windows
from discovery.errors import DiscoveryError, ParameterError
from discovery.segments import stack_segments

CONFIG_NAME = "_config.json"
MANIFEST_NAME = "_manifest.jsonl"
SEGMENTS_DIR = "_segments"
STORE_FORMAT = 1


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise ParameterError("the embedding store needs pyarrow: pip install pyarrow") \
            from None
    return pyarrow


def file_key(path) -> dict:
    """What identifies one version of a recording: its path, size and mtime."""
    stat = os.stat(path)
    return {"path": str(path), "size": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns)}


@dataclasses.dataclass
class ShardPart:
    """One recording's rows for a shard."""

    path: str
    start_s: np.ndarray
    end_s: np.ndarray
    embedding: np.ndarray       # (n, d) float32
    silence: np.ndarray         # (n,) float32
    valid_fraction: np.ndarray  # (n,) float64
    segments: tuple             # (start_s, end_s, image (s, D) float32, n_windows)


def _vectors(pa, matrix: np.ndarray, width: int):
    """An (n, width) float32 matrix as a Parquet fixed-size list column."""
    flat = pa.array(np.ascontiguousarray(matrix, np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, width)


def write_shard(store_dir, parts: Sequence[ShardPart], *, latent_dim: int,
                image_size: int) -> str:
    """Write the windows and segments of `parts` as one shard; return its name.

    The segment shard is renamed into place before the window shard, so a window
    shard on disk always has its segments beside it.
    """
    pa = _pyarrow()
    store_dir = Path(store_dir)
    name = f"part-{uuid.uuid4().hex}.parquet"

    def column(values, kind):
        return np.concatenate([np.asarray(v, kind) for v in values]) if values else \
            np.zeros(0, kind)

    def table(rows, matrix_name, width, extra):
        lengths = [len(start) for _, start, _, _, _ in rows]
        paths = np.repeat(np.asarray([p for p, *_ in rows], dtype=object), lengths)
        matrix = (np.concatenate([m for *_, m, _ in rows]) if rows
                  else np.zeros((0, width), np.float32))
        arrays = {"file": pa.array(paths.astype(str), pa.string()),
                  "start_s": pa.array(column([r[1] for r in rows], np.float64)),
                  "end_s": pa.array(column([r[2] for r in rows], np.float64)),
                  matrix_name: _vectors(pa, matrix.reshape(-1, width), width)}
        for key, kind, index in extra:
            arrays[key] = pa.array(column([r[4][index] for r in rows], kind))
        return pa.table(arrays)

    segment_rows = [(p.path, p.segments[0], p.segments[1], p.segments[2],
                     (p.segments[3],)) for p in parts]
    window_rows = [(p.path, p.start_s, p.end_s, p.embedding,
                    (p.silence, p.valid_fraction)) for p in parts]
    segments = table(segment_rows, "image", image_size, [("n_windows", np.int64, 0)])
    windows = table(window_rows, "embedding", latent_dim,
                    [("silence", np.float32, 0), ("valid_fraction", np.float64, 1)])
    for folder, data in ((store_dir / SEGMENTS_DIR, segments), (store_dir, windows)):
        with files.atomic_path(folder / name) as temporary:
            pa.parquet.write_table(data, temporary)
    return name


class Store:
    """An embedding store folder (see the module docstring).

    Attributes:
        path: the store folder.
        config: the `PipelineConfig` its windows were cut and embedded with.
        model: the model bundle it was embedded with, as recorded.
    """

    def __init__(self, path, config: PipelineConfig, model: Optional[str]):
        self.path = Path(path)
        self.config = config
        self.model = model

    # -- opening ------------------------------------------------------------------

    @classmethod
    def open(cls, path) -> "Store":
        """Open a store to read it.

        Raises:
            ParameterError: `path` is not a store (named, with what is missing).
        """
        path = Path(path)
        config_path = path / CONFIG_NAME
        if not config_path.is_file():
            raise ParameterError(f"{path}: not an embedding store (no {CONFIG_NAME}); "
                                 "expected the embeddings/ folder that `discovery embed "
                                 "--engine ray` writes.")
        try:
            saved = json.loads(config_path.read_text(encoding="utf-8"))
            config = PipelineConfig.from_dict(saved["pipeline"])
        except (ValueError, KeyError, TypeError, DiscoveryError) as error:
            raise ParameterError(f"{config_path}: unreadable store settings "
                                 f"({error}).") from None
        return cls(path, config, saved.get("model"))

    @classmethod
    def create(cls, path, config: PipelineConfig, *, model: str,
               overwrite: bool = False) -> "Store":
        """Open `path` to add to it, creating it if new.

        A store made with other settings is refused, unless `overwrite` (then it is
        emptied). Shards no manifest line names (in flight when a job was killed)
        are removed.

        Raises:
            ParameterError: the folder holds something else, or a store made with
                other settings.
        """
        path = Path(path)
        if path.exists() and any(path.iterdir()) and not (path / CONFIG_NAME).is_file():
            raise ParameterError(f"{path}: exists and is not an embedding store; choose "
                                 "a new folder.")
        record = {"format": STORE_FORMAT, "model": model, "pipeline": config.to_dict()}
        if (path / CONFIG_NAME).is_file():
            existing = cls.open(path)
            if overwrite:
                _empty(path)
            elif existing.config.to_dict() != config.to_dict():
                raise ParameterError(
                    f"{path}: holds embeddings made with other settings (model "
                    f"{existing.model}); choose a new folder, or pass --overwrite to "
                    "start it again.")
        (path / SEGMENTS_DIR).mkdir(parents=True, exist_ok=True)
        files.write_text(path / CONFIG_NAME, json.dumps(record, indent=2))
        store = cls(path, config, model)
        store._remove_orphans()
        return store

    def _remove_orphans(self) -> None:
        named = {entry["shard"] for entry in self._lines()}
        for folder in (self.path, self.path / SEGMENTS_DIR):
            for shard in folder.glob("part-*.parquet"):
                if shard.name not in named:
                    shard.unlink()

    # -- the manifest ---------------------------------------------------------------

    def _lines(self) -> List[dict]:
        manifest = self.path / MANIFEST_NAME
        if not manifest.is_file():
            return []
        lines = []
        for text in manifest.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue  # a line cut short by a kill: its files are embedded again
        return lines

    def entries(self) -> Dict[str, dict]:
        """path -> its newest manifest line."""
        return {entry["path"]: entry for entry in self._lines()}

    def paths(self) -> List[str]:
        """The stored recordings, sorted as `discovery run FOLDER` orders a folder's
        files (the order the workers finished in differs between runs, and
        clustering follows the order)."""
        return sorted(self.entries(), key=Path)

    def done(self, keys: Sequence[dict]) -> List[bool]:
        """Whether each recording (`file_key`) is in the store as it is now."""
        entries = self.entries()

        def same(key):
            entry = entries.get(key["path"])
            return entry is not None and all(entry[k] == key[k] for k in ("size", "mtime_ns"))
        return [same(key) for key in keys]

    def record(self, entries: Sequence[dict]) -> None:
        """Append manifest lines (one process writes them: the driver)."""
        if not entries:
            return
        with open(self.path / MANIFEST_NAME, "a", encoding="utf-8") as manifest:
            manifest.write("".join(json.dumps(entry) + "\n" for entry in entries))
            manifest.flush()
            os.fsync(manifest.fileno())

    # -- reading ----------------------------------------------------------------------

    def read(self, paths: Optional[Sequence[str]] = None) -> tuple:
        """The stored recordings as the tables a run clusters.

        Args:
            paths: the recordings to read, in this order; None for every recording in
                the store, sorted by path. A path not in the store is an error.

        Returns:
            (`WindowTable`, `RecordingInfo` per recording, `SegmentTable`).

        Raises:
            ParameterError: a path is not in the store, or a shard is missing.
        """
        pq = _pyarrow().parquet
        entries = self.entries()
        if paths is None:
            paths = self.paths()
        for path in paths:
            if str(path) not in entries:
                raise ParameterError(f"{path}: not in the embedding store {self.path}.")
        chosen = [entries[str(p)] for p in paths]
        windows, segments = {}, {}
        for shard in dict.fromkeys(e["shard"] for e in chosen):
            mine = {e["path"] for e in chosen if e["shard"] == shard}
            for folder, found in ((self.path, windows),
                                  (self.path / SEGMENTS_DIR, segments)):
                try:
                    table = pq.read_table(folder / shard)
                except (OSError, ValueError) as error:
                    raise ParameterError(f"{folder / shard}: unreadable shard "
                                         f"({error}).") from None
                _split_by_file(table, mine, found)
        infos, window_parts, segment_parts = [], [], []
        latent_dim, image_size = self.widths()
        for entry in chosen:
            rows = windows.get(entry["path"]) or _empty_rows("embedding", latent_dim)
            infos.append(RecordingInfo(
                path=entry["path"], duration_s=float(entry["duration_s"]),
                feature_config=self.config.features,
                reference_db=float(entry["reference_db"]),
                digital_silence=bool(entry["digital_silence"]),
                window_valid_fraction=rows["valid_fraction"]))
            window_parts.append((rows["start_s"], rows["end_s"], rows["embedding"],
                                 rows["silence"]))
            seg = segments.get(entry["path"]) or _empty_rows("image", image_size)
            segment_parts.append((seg["start_s"], seg["end_s"], seg["image"],
                                  seg["n_windows"]))
        names = [e["path"] for e in chosen]
        table = stack_windows(names, window_parts, latent_dim)
        return table, infos, stack_segments(names, segment_parts, width=image_size)

    def infos(self, paths: Sequence[str]) -> List[RecordingInfo]:
        """Each recording's `RecordingInfo` from the manifest alone (no shard is read,
        so no `window_valid_fraction`)."""
        entries = self.entries()
        return [RecordingInfo(path=path, duration_s=float(entries[path]["duration_s"]),
                              feature_config=self.config.features,
                              reference_db=float(entries[path]["reference_db"]),
                              digital_silence=bool(entries[path]["digital_silence"]))
                for path in paths]

    def widths(self) -> tuple:
        """(embedding width, segment image width) of this store's settings."""
        config = self.config
        return (config.model.latent_dim,
                config.input_frames * config.input_features)


def _empty_rows(matrix_name: str, width: int) -> dict:
    empty = np.zeros(0)
    return {"start_s": empty, "end_s": empty, matrix_name: np.zeros((0, width), np.float32),
            "silence": empty.astype(np.float32), "valid_fraction": empty,
            "n_windows": empty.astype(np.int64)}


def _split_by_file(table, wanted: set, found: dict) -> None:
    """Add the rows of each wanted file in `table` to `found[path]` as numpy columns."""
    pa = _pyarrow()
    file = np.asarray(table.column("file").to_numpy(zero_copy_only=False), dtype=object)
    columns = {}
    for name in table.column_names:
        if name == "file":
            continue
        column = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            width = column.type.list_size
            columns[name] = column.flatten().to_numpy().reshape(-1, width)
        else:
            columns[name] = column.to_numpy()
    for path in wanted:
        rows = np.flatnonzero(file == path)
        found[path] = {name: values[rows] for name, values in columns.items()}


def _empty(path: Path) -> None:
    for name in (MANIFEST_NAME,):
        (path / name).unlink(missing_ok=True)
    for folder in (path, path / SEGMENTS_DIR):
        for shard in folder.glob("part-*.parquet"):
            shard.unlink()
