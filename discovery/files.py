"""File plumbing shared by the commands: output names, atomic writes, per-file errors.

Outputs are written to a temporary file in the destination folder and renamed into
place, so an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator, List, Sequence

import numpy as np
from tqdm.auto import tqdm

from discovery.errors import DiscoveryError


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        # mkstemp makes the file private (0600); give it the usual umask permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def save_npz(path, arrays: dict) -> None:
    """Write arrays to an `.npz` file atomically (readable with `numpy.load`).

    Written member by member rather than with `np.savez`, whose own first parameter is
    called `file` and so cannot take an array named "file".
    """
    with atomic_path(path) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as archive:
            for name, value in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value),
                                              allow_pickle=False)


def write_text(path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as temporary:
        Path(temporary).write_text(text, encoding="utf-8")


def output_paths(inputs: Sequence[Path], out_dir, suffix: str) -> List[Path]:
    """One output path per input file, mirroring the inputs' folders under `out_dir`.

    Paths are taken relative to the inputs' common folder, so `a/x.wav` and `b/x.wav`
    get different outputs (`out/a/x.npz`, `out/b/x.npz`).
    """
    if not inputs:
        return []
    resolved = [Path(p).resolve() for p in inputs]
    root = Path(os.path.commonpath([p.parent for p in resolved]))
    return [Path(out_dir) / p.relative_to(root).with_suffix(suffix) for p in resolved]


@dataclasses.dataclass
class Failure:
    """A file that could not be processed, with the one-line reason."""

    path: str
    message: str


def for_each_file(paths: Sequence[Path], work: Callable[[Path], object], *,
                  description: str, progress: bool = True) -> tuple:
    """Run `work` on every file, keeping going past files that fail.

    Returns:
        (results: list of (path, result) for files that worked, failures: list of
        `Failure`). Only `DiscoveryError`s count as a file's failure; anything else is a
        bug and propagates.
    """
    results, failures = [], []
    bar = tqdm(paths, desc=description, unit="file", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    for path in bar:
        try:
            results.append((path, work(path)))
        except DiscoveryError as error:
            # Reported together at the end; the bar shows the count meanwhile.
            failures.append(Failure(str(path), str(error)))
            bar.set_postfix(failed=len(failures))
    return results, failures
