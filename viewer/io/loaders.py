"""What a path can be opened as, in the spirit of 3D Slicer's DICOM plugins: examine → candidates → load.

Each loader *examines* a path and, when it can open it, answers a :class:`Loadable` with a confidence
(0–1) and warnings; the best candidate is loaded. The GUI (``MainWindow.open_path``, in a worker), the CLI
and :func:`viewer.io.series_loader.load_path` all open paths through here, so a kind of file is recognised
the same way everywhere. A new kind of image (a radiograph, a cine, a DICOMDIR) is one more loader in
:data:`LOADERS`.

A DICOM folder (or a single DICOM file) loads as a :class:`~viewer.io.dicom_index.StudyIndex`: its series
are then chosen and loaded one by one (:func:`viewer.io.series_loader.load_series`); its DICOM SEG files are
kept as segmentations of the series they reference (:func:`viewer.io.seg_file.with_segmentations`). A DICOMDIR
(the file, or a folder with one at its root, as on a patient's CD) loads the same way through its records
(:mod:`viewer.io.dicomdir`): only the files it lists are read. Every other kind loads as one
:class:`~viewer.io.volume.Volume`.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

from viewer.io.errors import LoadError

#: the kinds of :class:`Loadable`
IMAGE_FILE, DICOM_SEG, DICOM_FILES = "image file", "DICOM SEG", "DICOM files"
#: how DICOM files are found: a DICOMDIR's records (a candidate's ``via``; the plain scan has none)
DICOMDIR = "DICOMDIR"


@dataclass(frozen=True)
class Loadable:
    """One way to open ``path``: the loader's ``kind`` (what it loads as), how sure it is, and what the user should
    know; ``via`` names the loader when several load the same kind (DICOM files through a DICOMDIR)."""

    kind: str
    path: str
    confidence: float
    warnings: tuple[str, ...] = ()
    via: str = ""


class Loader(Protocol):
    kind: str

    def examine(self, path: str) -> Loadable | None: ...

    def load(self, loadable: Loadable, progress: Callable | None = None,
             cancel: threading.Event | None = None): ...


class ImageFileLoader:
    """NIfTI, NRRD and MetaImage files, through SimpleITK (:mod:`viewer.io.image_io`)."""

    kind = IMAGE_FILE

    def examine(self, path: str) -> Loadable | None:
        from viewer.io.image_io import is_image_file

        return Loadable(self.kind, path, 1.0) if is_image_file(path) else None

    def load(self, loadable: Loadable, progress=None, cancel=None):
        from viewer.io.image_io import read_image

        return read_image(loadable.path)


class SegFileLoader:
    """A DICOM Segmentation file opened on its own grid (:func:`viewer.io.seg_file.seg_volume`)."""

    kind = DICOM_SEG

    def examine(self, path: str) -> Loadable | None:
        from viewer.io.seg_file import is_seg_file

        return Loadable(self.kind, path, 0.9) if os.path.isfile(path) and is_seg_file(path) else None

    def load(self, loadable: Loadable, progress=None, cancel=None):
        from viewer.io.seg_file import seg_volume

        return seg_volume(loadable.path)


class DicomDirLoader:
    """A DICOMDIR, or a folder with one at its root (a patient's CD): DICOM files (kind ``DICOM files``, ``via``
    ``DICOMDIR``) indexed through its records, so that only the files it lists are read
    (:func:`viewer.io.dicomdir.scan_dicomdir`). More confident than a scan of the folder; a DICOMDIR that cannot be
    read is not a candidate (the folder is then scanned)."""

    kind, name = DICOM_FILES, DICOMDIR

    def examine(self, path: str) -> Loadable | None:
        from viewer.io.dicomdir import find_dicomdir, is_dicomdir

        if os.path.isfile(path):
            return Loadable(self.kind, path, 0.95, via=self.name) if is_dicomdir(path) else None
        found = find_dicomdir(path)
        if found is None or not is_dicomdir(found):
            return None
        return Loadable(self.kind, path, 0.8, (f"read through its DICOMDIR ({os.path.basename(found)}): files it "
                                               "does not list are not read",), via=self.name)

    def load(self, loadable: Loadable, progress=None, cancel=None):
        """The :class:`~viewer.io.dicom_index.StudyIndex` (with its SEG files as segmentations);
        ``progress(done, total, path)``."""
        from viewer.io.dicomdir import scan_dicomdir
        from viewer.io.seg_file import with_segmentations

        return with_segmentations(scan_dicomdir(loadable.path, progress=progress, cancel=cancel))


class DicomFilesLoader:
    """A folder of DICOM files (recursively) or one DICOM file: indexed into patients → studies → series."""

    kind = DICOM_FILES

    def examine(self, path: str) -> Loadable | None:
        return Loadable(self.kind, path, 0.5) if os.path.isdir(path) or os.path.isfile(path) else None

    def load(self, loadable: Loadable, progress=None, cancel=None):
        """The :class:`~viewer.io.dicom_index.StudyIndex` (with its SEG files as segmentations of the series they
        reference); ``progress(done, total, path)``."""
        from viewer.io.dicom_index import scan
        from viewer.io.seg_file import with_segmentations

        return with_segmentations(scan(loadable.path, progress=progress, cancel=cancel))


#: the loaders, asked in this order; the most confident answer wins (ties: the first asked)
LOADERS: tuple[Loader, ...] = (ImageFileLoader(), SegFileLoader(), DicomDirLoader(), DicomFilesLoader())
_BY_NAME = {getattr(loader, "name", loader.kind): loader for loader in LOADERS}


def examine(path: str) -> list[Loadable]:
    """Every way ``path`` can be opened, best first; ``LoadError`` when it does not exist or nothing can open it."""
    path = str(path)
    if not os.path.exists(path):
        raise LoadError(f"{path} does not exist")
    found = [c for c in (loader.examine(path) for loader in LOADERS) if c is not None]
    if not found:
        raise LoadError(f"{path}: not a file or folder radview can open")
    return sorted(found, key=lambda c: -c.confidence)


def load(loadable: Loadable, progress: Callable | None = None, cancel: threading.Event | None = None):
    """Open ``loadable`` with its loader: a :class:`~viewer.io.volume.Volume`, or a ``StudyIndex`` for DICOM files."""
    return _BY_NAME[loadable.via or loadable.kind].load(loadable, progress=progress, cancel=cancel)
