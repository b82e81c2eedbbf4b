"""Where arriving instances go: a plain folder (``radview-cli pacs retrieve --out DIR``); the local database
(``viewer.net.study_db.StudyDatabase``) is the other sink and has the same two methods.

A sink files an instance at ``<root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` (names made
safe by :func:`~viewer.net.instance_header.safe_name`) and writes it atomically (:func:`write_atomic`): a reader
never sees half a file, an interrupted retrieve leaves only whole instances, and an instance already there is not
written again (``put`` answers ``new=False``), so a retry never duplicates one. Sinks are called from the writer
threads: ``put`` is thread-safe.

:func:`write_atomic` is ``radview_base.atomic_file``'s recipe (a hidden temporary name beside the file, its data
synced to disk, one rename) less the per-file sync of the folder: a retrieve writes hundreds of files into one
folder, and syncing it after each costs as much as the transfer. The folders written to are synced once, by
``flush()``, when a retrieve has drained. A crash before that can lose a rename — the instance is then absent and a
retry fetches it — but never leaves a file under its final name whose data is not on disk.
"""
from __future__ import annotations

import os
import secrets
import threading
from typing import Callable, Iterable, Protocol

from radview_base.atomic_file import TEMP_PREFIX, fsync_folder
from viewer.net.instance_header import InstanceHeader, safe_name
from viewer.net.records import InstanceRef
from viewer.net.results import StoredInstance

Writer = Callable[[str], None]  # writes the whole file at the path it is given


class InstanceSink(Protocol):
    """Anything instances can be written to."""

    def put(self, header: InstanceHeader, write: Writer) -> StoredInstance: ...

    def present(self, refs: Iterable[InstanceRef]) -> set[str]: ...

    def holds(self, study_uid: str, series_uid: str = "") -> bool: ...

    def location(self, study_uid: str, series_uid: str = "") -> str: ...

    def flush(self) -> None: ...


def write_atomic(path: str, write: Writer) -> str:
    """Write ``path`` through a temporary file (data synced before the rename); returns the folder to sync."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}-{name}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileNotFoundError:  # the first instance of its series: make the folder (not checked for every file)
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            (getattr(os, "fdatasync", None) or os.fsync)(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return folder


def sync_folders(folders: set[str]) -> None:
    """Make the renames in ``folders`` durable (the set is emptied)."""
    while folders:
        try:
            fsync_folder(folders.pop())
        except FileNotFoundError:  # removed since (a deleted study)
            pass


def relative_path(study_uid: str, series_uid: str, sop_uid: str) -> str:
    return os.path.join(safe_name(study_uid), safe_name(series_uid), safe_name(sop_uid) + ".dcm")


def bytes_writer(data: bytes) -> Writer:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return write


class FolderSink:
    """Instances written under ``root`` by study/series/instance; what is already there counts as present."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.path.abspath(os.fspath(root))
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._dirty: set[str] = set()

    def path_of(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return os.path.join(self.root, relative_path(study_uid, series_uid, sop_uid))

    def location(self, study_uid: str, series_uid: str = "") -> str:
        parts = [self.root, safe_name(study_uid)] + ([safe_name(series_uid)] if series_uid else [])
        return os.path.join(*parts)

    def holds(self, study_uid: str, series_uid: str = "") -> bool:
        """Whether any instance of the study (or series) is here."""
        for _folder, _dirs, names in os.walk(self.location(study_uid, series_uid)):
            if any(n.endswith(".dcm") and not n.startswith(".") for n in names):
                return True
        return False

    def present(self, refs: Iterable[InstanceRef]) -> set[str]:
        return {r.sop_uid for r in refs if os.path.isfile(self.path_of(r.study_uid, r.series_uid, r.sop_uid))}

    def put(self, header: InstanceHeader, write: Writer) -> StoredInstance:
        path = self.path_of(header.study_uid, header.series_uid, header.sop_uid)
        with self._lock:  # two copies of one instance arriving at once: only the first is written
            if os.path.isfile(path) or path in self._in_flight:
                return StoredInstance(header, path, new=False)
            self._in_flight.add(path)
        folder = None
        try:
            folder = write_atomic(path, write)
        finally:
            with self._lock:
                self._in_flight.discard(path)
                if folder:
                    self._dirty.add(folder)
        return StoredInstance(header, path, new=True)

    def flush(self) -> None:
        with self._lock:
            folders, self._dirty = self._dirty, set()
        sync_folders(folders)
