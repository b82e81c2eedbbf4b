"""Open only regular files, and never read past their size.

A folder can hold things that are not files: a FIFO (opening it waits for a writer forever), a link to
``/dev/zero`` (endless zeros: a parser loops) or ``/dev/urandom`` (endless bytes: a parser grows memory without
bound), a socket, a block device. Every reader in ``viewer.io`` asks here first: the path is resolved and
``stat``-ed *before* it is opened, anything but a regular file is refused with a reason a user can read, and the
file is opened non-blocking and checked again on its descriptor (the path could change in between). Reads go
through :class:`BoundedFile`, which ends at the size the file had when it was opened.
"""
from __future__ import annotations

import io
import os
import stat

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)


class NotRegularFileError(OSError):
    """The path is not a regular file (or cannot be stat-ed); the message says what it is."""


def kind_of(mode: int) -> str:
    """What a ``st_mode`` describes, in words."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def not_regular_reason(path: str) -> str | None:
    """Why ``path`` (links followed) must not be read, or None for a regular file. Never opens it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "broken link or file removed" if os.path.islink(path) else "file not found"
    except OSError as exc:
        return f"cannot be examined ({exc.strerror or type(exc).__name__})"
    if stat.S_ISREG(st.st_mode):
        return None
    link = f"a link to {os.path.realpath(path)}: " if os.path.islink(path) else ""
    return f"{link}{kind_of(st.st_mode)}, not a regular file: not read"


def open_fd(path: str, stat_first: bool = True) -> tuple[int, int]:
    """(descriptor, size) of the regular file ``path``; :class:`NotRegularFileError` for anything else.

    Checked before opening (``stat``; ``stat_first=False`` where the caller has just done so, or where the file was
    examined when it was indexed), opened non-blocking (a FIFO swapped in meanwhile cannot block), and checked
    again on the descriptor.
    """
    if stat_first:
        reason = not_regular_reason(path)
        if reason:
            raise NotRegularFileError(f"{path}: {reason}")
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(f"{path}: {kind_of(st.st_mode)}, not a regular file: not read")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


class BoundedFile(io.RawIOBase):
    """A read-only, seekable view of a regular file that ends at its size when opened.

    Any parser handed this object (pydicom included) sees end-of-file at ``size``: a file that grows, or lies
    about its size, is never read further.
    """

    def __init__(self, path: str, stat_first: bool = True):
        super().__init__()
        self.name = path
        self._fd, self.size = open_fd(path, stat_first)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(f"{self.name}: negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        got = 0
        while got < n:
            r = os.preadv(self._fd, [view[got:n]], self._pos + got) if _HAVE_PREADV else self._pread(view[got:n])
            if not r:
                break
            got += r
        self._pos += got
        return got

    def _pread(self, view) -> int:  # no preadv (Windows)
        os.lseek(self._fd, self._pos, os.SEEK_SET)
        data = os.read(self._fd, len(view))
        view[:len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        buf = bytearray(max(0, min(size, self.size - self._pos)))
        got = self.readinto(buf)
        return bytes(buf[:got])

    def readall(self) -> bytes:
        return self.read(-1)

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


_HAVE_PREADV = hasattr(os, "preadv")


def open_bounded(path: str, stat_first: bool = True) -> io.BufferedReader:
    """A buffered :class:`BoundedFile` (what ``open(path, "rb")`` would give, for regular files only)."""
    return io.BufferedReader(BoundedFile(path, stat_first), buffer_size=65536)


def read_head(path: str, n: int, stat_first: bool = True) -> tuple[bytes, int]:
    """(the first ``n`` bytes of the regular file ``path`` — fewer when it is shorter —, its size)."""
    fd, size = open_fd(path, stat_first)
    try:
        want = min(n, size)
        data = os.pread(fd, want, 0) if hasattr(os, "pread") else _read_all(fd, want)
        while len(data) < want:  # a short read (signals, network file systems)
            more = os.pread(fd, want - len(data), len(data))
            if not more:
                break
            data += more
        return data, size
    finally:
        os.close(fd)


def _read_all(fd: int, n: int) -> bytes:
    return os.read(fd, n)
