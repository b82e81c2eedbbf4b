"""Write a file atomically: everything goes to a temporary name in the destination folder, then one rename.

Every exporter and the autosave stores write through here, so a reader (a PACS import folder, another
program, the user) never sees a half-written file, and a failed or interrupted
export leaves the destination exactly as it was (absent, or the previous
version)::

    from radview_base.atomic_file import atomic_write, atomic_path

    atomic_write("out/seg.dcm", lambda tmp: dataset.save_as(tmp))   # writer gets a path

    with atomic_path("out/report.json") as tmp:                      # the same, as a context manager
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)

    atomic_write_bytes("out/notes.txt", b"...")                      # bytes (or text) in one call

The temporary file is ``.radview-tmp-<random>-<file name>`` beside the
destination: hidden (folder scans skip dot files), on the same file system
(so the rename is atomic), and ending in the destination's own name, so
writers that pick the format from the extension (SimpleITK's ``.nii.gz``)
still do. It is created with the usual permissions (0666 less the umask).
After the writer returns, the file is flushed to disk (fsync) and renamed
over the destination with :func:`os.replace`; the folder is then fsynced so
the rename survives a crash. If the writer raises (anything, including
KeyboardInterrupt), the temporary file is removed and the exception goes on.

Qt-free and torch-free: standard library only.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["atomic_write", "atomic_path", "atomic_write_bytes", "fsync_folder", "TEMP_PREFIX"]

#: Temporary files start with this (and are hidden): a folder holding one is an interrupted export.
TEMP_PREFIX = ".radview-tmp-"


def _fsync_path(path: str, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some platforms (Windows) cannot open a folder: best effort
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _new_temp(folder: str, name: str, mode: int = 0o666) -> str:
    """Create an empty temporary file in ``folder`` (exclusively, ``mode`` less the umask); return its path."""
    for _ in range(100):
        tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}-{name}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file in {folder}")


@contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o666) -> Iterator[str]:
    """Yield a temporary path to write ``path``'s content to; on a clean exit it becomes ``path``.

    The destination's folder is created when missing. ``mode``: the new file's permissions (less the umask);
    0o600 keeps it private to the user. On an exception in the
    ``with`` body the temporary file is removed and ``path`` is left untouched.
    """
    dest = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(dest)
    if not name:
        raise IsADirectoryError(f"{path}: a file name is needed, not a folder")
    if os.path.isdir(dest):
        raise IsADirectoryError(f"{dest} is a folder")
    os.makedirs(folder, exist_ok=True)
    tmp = _new_temp(folder, name, mode)
    try:
        yield tmp
        if not os.path.isfile(tmp):
            raise FileNotFoundError(f"the writer removed its temporary file {tmp}")
        _fsync_path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_folder(folder)


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make renames and removals in ``folder`` durable (best effort where a folder cannot be opened)."""
    _fsync_path(os.fspath(folder), directory=True)


def atomic_write(path: str | os.PathLike, writer_fn: Callable[[str], Any]) -> str:
    """Call ``writer_fn(temporary_path)`` to write the file, then move it to ``path`` atomically.

    ``writer_fn`` must write the whole file at the path it is given (e.g.
    ``dataset.save_as``, ``sitk.WriteImage``, ``lambda p: open(p, "wb").write(data)``).
    Returns ``path`` as an absolute path. Any exception from ``writer_fn``
    propagates after the temporary file is removed; ``path`` is then unchanged.
    """
    with atomic_path(path) as tmp:
        writer_fn(tmp)
    return os.path.abspath(os.fspath(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes | str, encoding: str = "utf-8") -> str:
    """Write ``data`` (bytes, or text encoded with ``encoding``) to ``path`` atomically."""
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(payload)

    return atomic_write(path, write)
