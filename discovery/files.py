"""File plumbing shared by the commands: output names, atomic writes, per-file errors.

Outputs are written to a temporary file in the destination folder and renamed into
place, so an interrupted run never leaves a half-written file under the final name.
Output folders are guarded (`output_folder`, `check_output_location`): an output may
never be, or hold, one of the inputs; a folder is replaced only when discovery wrote
it; one writer at a time holds a folder's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Collection, Iterator, List, Sequence

try:  # POSIX advisory locks; released by the kernel when the process dies, even by kill -9
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, the other guards still hold
    fcntl = None

import numpy as np
from tqdm.auto import tqdm

from discovery.errors import DiscoveryError, ParameterError

LOCK_NAME = ".discovery.lock"
STAGING_PREFIX = ".discovery-staging-"


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

    Paths are taken relative to the inputs' common folder and keep the input's whole
    name, extension included, so neither `a/x.wav` and `b/x.wav` nor `x.wav` and
    `x.flac` collide (`out/a/x.wav.npz`, `out/x.flac.npz`).
    """
    if not inputs:
        return []
    resolved = [Path(p).resolve() for p in inputs]
    root = Path(os.path.commonpath([p.parent for p in resolved]))
    return [Path(out_dir) / (str(p.relative_to(root)) + suffix) for p in resolved]


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def check_output_location(out, inputs: Sequence) -> Path:
    """Refuse an output that is, or holds, an input; create it; check it is writable.

    Args:
        out: the output folder.
        inputs: the input files and folders, as given.

    Returns:
        `out` as a `Path`, now an existing, writable folder.

    Raises:
        ParameterError: `out` is an input, holds one, is a file, or cannot be written.
    """
    out = Path(out)
    target = out.resolve()
    for entry in inputs:
        source = Path(entry).resolve()
        if source == target or target in source.parents:
            raise ParameterError(f"{out}: the output folder would hold the input {entry}; "
                                 "choose an output folder outside the inputs.")
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{out}: is a file; expected a folder to write into.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise ParameterError(f"{out}: cannot write here ({_os_reason(error)}).") from None
    return out


def refuse_existing(paths: Sequence[Path], *, overwrite: bool) -> None:
    """Refuse to replace existing output files unless `overwrite`.

    Raises:
        ParameterError: naming the first output that exists.
    """
    if overwrite:
        return
    for path in paths:
        if Path(path).exists():
            raise ParameterError(f"{path}: already exists; choose a new output folder or "
                                 "pass --overwrite to replace it.")


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    """Hold `folder`'s writer lock, or refuse at once when another process holds it."""
    path = folder / LOCK_NAME
    try:
        handle = open(path, "a+")
    except OSError as error:
        raise ParameterError(f"{folder}: cannot write here ({_os_reason(error)}).") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ParameterError(
                    f"{folder}: another discovery command is writing into this folder; "
                    "wait for it to finish or choose another output folder.") from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
    finally:
        handle.close()


@contextlib.contextmanager
def output_folder(out, *, inputs: Sequence, overwrite: bool, owned: Collection[str],
                  marker: str, command: str) -> Iterator[Path]:
    """A staging folder whose contents replace `out`'s when the block succeeds.

    The guards, in order: `out` may not be an input or hold one; `out` is created and
    locked, so a second writer is refused at once (the lock dies with its process);
    staging folders left by killed runs are removed; an `out` that holds files is
    refused unless `overwrite`, and even then unless it holds `marker` and nothing but
    the names in `owned` (a previous run's outputs). The results are staged inside
    `out` and moved into place entry by entry at the end, `marker` last, so a folder
    with `marker` is always a whole run, and `out` may be the current folder.

    Args:
        out: the output folder.
        inputs: the input files and folders, as given.
        overwrite: bool. Replace a previous run's outputs.
        owned: names of the entries a run writes into `out`.
        marker: the entry that marks a finished run (e.g. "run.json").
        command: the command that writes such folders, for messages ("discovery run").

    Yields:
        The staging folder to write into.

    Raises:
        ParameterError: one of the guards refused `out`.
    """
    created = not Path(out).exists()
    out = check_output_location(out, inputs)
    try:
        with _lock(out):
            yield from _staged(out, overwrite=overwrite, owned=owned, marker=marker,
                               command=command)
    except BaseException:
        if created:  # a failed run leaves no empty folder of its own behind
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


def _staged(out: Path, *, overwrite: bool, owned: Collection[str], marker: str,
            command: str) -> Iterator[Path]:
    """The body of `output_folder`, under the lock."""
    for stale in out.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    present = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
    if present and not overwrite:
        raise ParameterError(f"{out}: the output folder already holds files; choose a "
                             "new folder or pass --overwrite to replace it.")
    if present:
        foreign = [name for name in present if name not in owned]
        if marker not in present or foreign:
            what = f"holds {foreign[0]}" if foreign else f"has no {marker}"
            raise ParameterError(
                f"{out}: --overwrite replaces only a folder written by `{command}`, "
                f"and this one {what}; choose another output folder.")
    staging = out / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        yield staging
        _commit(staging, out, replaced=present, marker=marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _commit(staging: Path, out: Path, *, replaced: Sequence[str], marker: str) -> None:
    """Move the staged entries into `out`, after removing the run they replace."""
    if marker in replaced:  # the old run is incomplete from here on: drop its marker first
        (out / marker).unlink()
    for name in replaced:
        old = out / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    entries = sorted(staging.iterdir(), key=lambda p: p.name == marker)
    for entry in entries:
        os.replace(entry, out / entry.name)


@dataclasses.dataclass
class Failure:
    """A file that could not be processed, with the one-line reason."""

    path: str
    message: str


def find_inputs(inputs: Sequence) -> tuple:
    """Expand files and folders into audio files, listing the entries that fail.

    A missing path, or a folder without audio, does not stop the others: it becomes
    a `Failure`, reported with the files that could not be read.

    Returns:
        (paths: list of `Path`, in order and without duplicates; failures: list of
        `Failure`).
    """
    from discovery.frontend import audio

    paths, failures, seen = [], [], set()
    for entry in inputs:
        try:
            found = audio.find_audio_files([entry])
        except DiscoveryError as error:
            failures.append(Failure(str(entry), str(error)))
            continue
        for path in found:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                paths.append(path)
    return paths, failures


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
