"""Reading a DICOMDIR (a patient's CD or DVD): its records, not a scan of every file on the medium.

A DICOMDIR lists patients → studies → series → images; each image record names its file by a ReferencedFileID
(path components relative to the DICOMDIR's folder). :func:`read_dicomdir` walks the records (through their
offsets, as the standard links them; in file order when the links are broken), skips inactive ones and
resolves every ReferencedFileID:

- case-insensitively (a CD's ``DICOM/IM0001`` is often mounted as ``dicom/im0001``, or with ISO 9660's ``;1``
  version suffix or a trailing period), exact names first;
- never outside the DICOMDIR's folder: ``..``, absolute components, separators inside a component and links
  that lead elsewhere are refused, each with a reason.

:func:`scan_dicomdir` reads the headers of the listed files (and of no other file) into a
:class:`~viewer.io.dicom_index.StudyIndex` whose root is the DICOMDIR's folder; files the DICOMDIR lists but
that cannot be found are skipped with their reason. Nothing is ever written: a read-only medium opens as it is.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Callable

from radview_base.cancel import Cancelled
from viewer.io.dicom_header import ImageFile, Skipped, read_header
from viewer.io.dicom_index import StudyIndex, build_index
from viewer.io.errors import LoadError

__all__ = ["DICOMDIR_SOP_CLASS", "DicomDirError", "DicomDirListing", "find_dicomdir", "is_dicomdir",
           "read_dicomdir", "resolve_file_id", "scan_dicomdir"]

#: Media Storage Directory Storage: the SOP class of a DICOMDIR
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
ProgressFn = Callable[[int, int, str], None]


class DicomDirError(LoadError):
    """A DICOMDIR that cannot be read, or a ReferencedFileID that cannot be resolved; one line for the user."""


@dataclass
class DicomDirListing:
    """What a DICOMDIR lists: ``files`` (resolved paths, in record order, each once) and the references that
    could not be resolved (``missing``: the path as written, with the reason)."""

    path: str  # the DICOMDIR file
    root: str  # its folder
    files: list[str] = field(default_factory=list)
    missing: list[Skipped] = field(default_factory=list)
    n_records: int = 0


def _normal(name: str) -> str:
    """A file name as ISO 9660 media may spell it: case-insensitive, without ``;1`` or a trailing period."""
    name = name.upper()
    if ";" in name:
        name = name.split(";", 1)[0]
    return name.rstrip(".")


def _is_dicomdir_name(name: str) -> bool:
    return _normal(name) == "DICOMDIR"


def find_dicomdir(folder: str) -> str | None:
    """The DICOMDIR file at ``folder``'s root (any case, ``DICOMDIR;1`` too), or None."""
    if not os.path.isdir(folder):
        return None
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    for name in sorted(names, key=lambda n: (n != "DICOMDIR", n)):  # the exact name first
        path = os.path.join(folder, name)
        if _is_dicomdir_name(name) and os.path.isfile(path):
            return path
    return None


def is_dicomdir(path: str) -> bool:
    """True when ``path`` is a DICOMDIR file (its File Meta Information says Media Storage Directory Storage)."""
    import pydicom

    if not os.path.isfile(path):
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["FileSetID"])
    except Exception:  # noqa: BLE001 - anything unreadable is "not a DICOMDIR"
        return False
    meta = getattr(ds, "file_meta", None)
    return str(getattr(meta, "MediaStorageSOPClassUID", "") or "") == DICOMDIR_SOP_CLASS


def _components(file_id) -> list[str]:
    if isinstance(file_id, (bytes, str)):
        value = file_id.decode("ascii", "replace") if isinstance(file_id, bytes) else file_id
        return value.split("\\")  # a value read without its VR keeps DICOM's multi-value separator
    return [str(v) for v in file_id]


class _Resolver:
    """ReferencedFileID → a path under ``root``, case-insensitively; directory listings are read once."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.real_root = os.path.realpath(self.root)
        self._listings: dict[str, dict[str, list[str]]] = {}

    def _listing(self, folder: str) -> dict[str, list[str]]:
        if folder not in self._listings:
            names: dict[str, list[str]] = {}
            try:
                for name in sorted(os.listdir(folder)):
                    names.setdefault(_normal(name), []).append(name)
            except OSError:
                pass
            self._listings[folder] = names
        return self._listings[folder]

    def resolve(self, file_id) -> str:
        parts = [p.strip() for p in _components(file_id)]
        written = "/".join(parts)
        if not parts or any(not p for p in parts):
            raise DicomDirError(f"ReferencedFileID {written!r} has an empty component")
        for part in parts:
            if part in (".", "..") or any(c in part for c in "/\\:\0") or os.path.isabs(part):
                raise DicomDirError(f"ReferencedFileID {written!r} points outside the DICOMDIR's folder")
        current = self.root
        for n, part in enumerate(parts):
            exact = os.path.join(current, part)
            if os.path.lexists(exact):
                current = exact
                continue
            names = self._listing(current)
            matches = names.get(_normal(part), [])
            if not matches:
                where = "/".join(parts[:n]) or "the DICOMDIR's folder"
                raise DicomDirError(f"listed in the DICOMDIR but not found: no {part!r} in {where}")
            current = os.path.join(current, matches[0])
        real = os.path.realpath(current)
        if os.path.commonpath([real, self.real_root]) != self.real_root:
            raise DicomDirError(f"ReferencedFileID {written!r} leads outside the DICOMDIR's folder (a link)")
        if not os.path.isfile(real):
            raise DicomDirError(f"ReferencedFileID {written!r} is not a file")
        return current


def resolve_file_id(root: str, file_id) -> str:
    """The file a ReferencedFileID names under ``root`` (see the module notes); :class:`DicomDirError` when it
    points outside ``root`` or cannot be found."""
    return _Resolver(root).resolve(file_id)


def _in_use(record) -> bool:
    flag = record.get("RecordInUseFlag")
    try:
        return flag is None or int(flag) != 0
    except (TypeError, ValueError):
        return True


def _records(ds) -> list:
    """The active directory records, parents before children, in the order the offsets link them (file order
    when the links do not lead anywhere)."""
    records = list(ds.get("DirectoryRecordSequence", []))
    by_offset = {}
    for record in records:
        tell = getattr(record, "seq_item_tell", None)
        if tell is not None:
            by_offset[int(tell)] = record
    seen: set[int] = set()

    def chain(offset: int) -> list:  # a record and its next siblings; a loop of offsets ends at a record seen
        items = []
        while offset and offset in by_offset and offset not in seen:
            seen.add(offset)
            items.append(by_offset[offset])
            offset = int(by_offset[offset].get("OffsetOfTheNextDirectoryRecord", 0) or 0)
        return items

    out: list = []
    first = int(ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity", 0) or 0)
    stack = [iter(chain(first))]
    while stack:  # depth first: each record, then its lower level, then its next sibling
        record = next(stack[-1], None)
        if record is None:
            stack.pop()
            continue
        if not _in_use(record):  # an inactive record hides its lower level too
            continue
        out.append(record)
        lower = int(record.get("OffsetOfReferencedLowerLevelDirectoryEntity", 0) or 0)
        if lower:
            stack.append(iter(chain(lower)))
    if out:
        return out
    return [r for r in records if _in_use(r)]


def read_dicomdir(path: str) -> DicomDirListing:
    """The files ``path`` (a DICOMDIR, or a folder with one at its root) lists; :class:`DicomDirError` when it is
    not a readable DICOMDIR."""
    import pydicom

    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        found = find_dicomdir(path)
        if found is None:
            raise DicomDirError(f"{path} has no DICOMDIR")
        path = found
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
        raise DicomDirError(f"{path}: not a readable DICOMDIR ({type(exc).__name__}: {str(exc)[:120]})") from exc
    sop_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
    if sop_class != DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" not in ds:
        raise DicomDirError(f"{path} is not a DICOMDIR (SOP class {sop_class or 'missing'})")
    root = os.path.dirname(path)
    listing = DicomDirListing(path, root)
    resolver = _Resolver(root)
    seen: set[str] = set()
    records = _records(ds)
    listing.n_records = len(records)
    for record in records:
        file_id = record.get("ReferencedFileID")
        if file_id is None or file_id == "":
            continue
        try:
            resolved = resolver.resolve(file_id)
        except DicomDirError as exc:
            written = os.path.join(root, *[p.strip() for p in _components(file_id) if p.strip()])
            listing.missing.append(Skipped(written, str(exc)))
            continue
        key = os.path.normcase(resolved)
        if key not in seen:
            seen.add(key)
            listing.files.append(resolved)
    return listing


def scan_dicomdir(path: str, progress: ProgressFn | None = None,
                  cancel: threading.Event | None = None) -> StudyIndex:
    """Index the files a DICOMDIR lists (headers only), rooted at its folder; no other file is read.

    ``progress(done, total, path)`` as files are read; setting ``cancel`` stops with :class:`Cancelled`.
    """
    listing = read_dicomdir(path)
    images: list[ImageFile] = []
    skipped: list[Skipped] = list(listing.missing)
    total = len(listing.files)
    for i, file in enumerate(listing.files):
        if cancel is not None and cancel.is_set():
            raise Cancelled("scan cancelled")
        result = read_header(file)
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            images.append(result)
        if progress is not None and (i % 64 == 0 or i == total - 1):
            progress(i + 1, total, file)
    return build_index(listing.root, images, skipped, total + len(listing.missing))
