"""Files and folders: output paths checked before any work starts, one atomic write, one inter-process file lock.

A command that would fail writing its result fails first.

A command that runs a long job and only then finds that its ``--out`` is a file, or sits in a folder it cannot
write, has wasted the job and may have left half its outputs behind. These checks look at the file system
without leaving anything in it (a folder's writability is tried with a temporary file that is removed at once),
so that a refused command writes nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cartrisk.exceptions import ConfigError

__all__ = ["atomic_path", "check_output_file", "check_output_folder", "file_lock", "writable_folder", "write_table"]


def _nearest_existing(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate
    return None


def writable_folder(folder: str | Path) -> bool:
    """True when ``folder`` is, or could be created as, a folder this process can write files in.

    The nearest existing folder on the way up must be a folder in which a file can be created (tried with a
    temporary file, removed at once); nothing is created otherwise.
    """
    existing = _nearest_existing(Path(folder).absolute())
    if existing is None or not existing.is_dir():
        return False
    try:
        with tempfile.TemporaryFile(dir=existing):
            return True
    except OSError:
        return False


def check_output_file(path: str | Path, *, where: str, suffixes: Sequence[str] | None = None) -> Path:
    """Refuse an output file that cannot be written: a folder, a wrong suffix, an unwritable folder.

    Parameters
    ----------
    path : str or Path
        The file a command will write (an existing file is replaced).
    where : str
        The option that names it (``--out``), for the message.
    suffixes : sequence of str, optional
        The accepted suffixes (``.csv``, ``.parquet``...), compared case-insensitively.
    """
    path = Path(path)
    if path.is_dir():
        example = path / ("out" + (suffixes[0] if suffixes else ""))
        raise ConfigError(f"{where}: {path} is a folder; give a file name, e.g. {example}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{where}: {path}: the file name must end in {' or '.join(suffixes)}")
    if not writable_folder(path.parent):
        raise ConfigError(f"{where}: cannot write {path}: its folder {path.parent} cannot be written or created; "
                          "choose another path")
    return path


def check_output_folder(path: str | Path, *, where: str) -> Path:
    """Refuse an output folder that cannot be written: an existing file, or a place no folder can be made."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where}: {path} is a file, not a folder; give a folder (it is created if needed)")
    if not writable_folder(path):
        raise ConfigError(f"{where}: cannot write into {path}: it cannot be created or written; choose another folder")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    A failed write therefore leaves nothing half-written: neither a partial file nor the temporary one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_lock(path: str | Path, *, timeout: float = -1):
    """An exclusive lock between the processes of one host on the lock file ``path`` (``filelock``), as a context
    manager; ``timeout`` seconds (-1: wait as long as it takes). Its folder is created if missing."""
    from filelock import FileLock

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout)


def write_table(frame, path: str | Path) -> Path:
    """Write a DataFrame as CSV or Parquet by the path's suffix, atomically (without its index); returns the path."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"{path}: output must end in .csv or .parquet")
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path
