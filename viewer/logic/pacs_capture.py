"""Screenshots sent to a PACS as DICOM Secondary Capture: what File → Export → Send to PACS… does with a PNG or
JPEG screenshot the window exported. Qt-free.

A screenshot is remembered with the series it shows (:class:`ScreenshotSource`: the picture and one DICOM instance
of that series). Sending it writes a Secondary Capture (:mod:`viewer.export.secondary_capture`) in that study —
same StudyInstanceUID, patient ID and name — into a temporary folder, sends it with the other files
(:func:`viewer.logic.pacs.send`: C-STORE or STOW-RS) and removes the folder; the result names the picture, not
the temporary file. Its UIDs come from the picture's bytes and the study: sending the same screenshot again sends
the same instance (the PACS keeps one), and every screenshot of a study goes into one radview series.
Whatever the screenshot shows — the "AI result, not reviewed" stamp included — is in its pixels.

File → Export → Screenshot as DICOM Secondary Capture… saves the same file without sending it
(:func:`save_screenshot_sc`: the encoded picture's bytes in, a ``.dcm`` written atomically out); a PNG export of the
same view and that file have the same pixels and the same SOP Instance UID.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from radview_base.cancel import Cancelled
from viewer.net.errors import SettingsError
from viewer.net.nodes import DEFAULT_CALLING_AET
from viewer.net.results import SendResult

SCREENSHOT_SUFFIXES = (".png", ".jpg", ".jpeg")
SC_SUFFIX = ".dcm"  # a Secondary Capture saved as a file
SERIES_DESCRIPTION = "radview screenshots"
COMMENTS = ("Screenshot from radview (research viewer, not for clinical use); text burned into the image (AI stamp, "
            "measurements, legend) is part of it.")
ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ScreenshotSource:
    """A screenshot (``image_path``: PNG or JPEG) and one DICOM instance of the series it shows
    (``reference_file``), whose study and patient the Secondary Capture is filed under."""

    image_path: str
    reference_file: str
    series_description: str = ""  # of the series shown (for the send dialog's label)


def is_screenshot(path: str) -> bool:
    return str(path).lower().endswith(SCREENSHOT_SUFFIXES)


def read_picture(path_or_bytes: str | bytes) -> np.ndarray:
    """The picture's pixels (a file, or its encoded bytes) as (rows, columns, 3) uint8 RGB."""
    import io

    from PIL import Image

    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    with Image.open(source) as im:
        return np.asarray(im.convert("RGB"))


def sc_uids(study_uid: str, picture: bytes) -> tuple[str, str]:
    """(series UID, SOP instance UID) of a screenshot of the study: one series per study, one instance per picture."""
    from pydicom.uid import generate_uid

    digest = hashlib.sha256(picture).hexdigest()
    series_uid = generate_uid(entropy_srcs=["radview secondary capture series", study_uid])
    sop_uid = generate_uid(entropy_srcs=["radview secondary capture", study_uid, digest])
    return str(series_uid), str(sop_uid)


def write_screenshot_sc(source: ScreenshotSource, out_path: str, instance_number: int = 1) -> str:
    """Write ``source`` as a Secondary Capture at ``out_path``; OSError / ValueError (an ExportError) say why not."""
    with open(source.image_path, "rb") as fh:
        picture = fh.read()
    return write_picture_sc(picture, source.reference_file, out_path, source.series_description, instance_number,
                            name=source.image_path)


def write_picture_sc(picture: bytes, reference_file: str, out_path: str, series_description: str = "",
                     instance_number: int = 1, name: str = "") -> str:
    """Write the encoded picture (PNG or JPEG bytes) as a Secondary Capture in the study of ``reference_file`` (one
    DICOM instance of the series it shows) at ``out_path``, atomically (a temporary file beside it, then
    ``os.replace``). OSError / ValueError (an ExportError) say why not; nothing is left at ``out_path`` then.
    ``name``: the picture's file, for the messages."""
    import pydicom
    from PIL import UnidentifiedImageError
    from pydicom.errors import InvalidDicomError

    from viewer.export.secondary_capture import write_secondary_capture

    try:
        reference = pydicom.dcmread(reference_file, stop_before_pixels=True)
    except (OSError, ValueError, InvalidDicomError) as exc:
        raise ValueError(f"the series it shows cannot be read ({reference_file}): {exc}") from exc
    try:
        pixels = read_picture(bytes(picture))
    except (OSError, ValueError) as exc:  # PIL.UnidentifiedImageError is an OSError
        why = "neither PNG nor JPEG" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise ValueError(f"{name or 'the picture'} is not a picture radview can read: {why}") from exc
    series_uid, sop_uid = sc_uids(str(getattr(reference, "StudyInstanceUID", "") or ""), bytes(picture))
    what = series_description or str(getattr(reference, "SeriesDescription", "") or "")
    return write_secondary_capture(out_path, pixels, reference, series_uid=series_uid, sop_uid=sop_uid,
                                   instance_number=instance_number, series_description=SERIES_DESCRIPTION,
                                   comments=COMMENTS,
                                   derivation=f"Screenshot of {what}"[:1024] if what else "Screenshot")


def check_sc_path(path: str) -> str:
    """``path`` made absolute when it can name a Secondary Capture file (``.dcm``, not a folder); ValueError if not."""
    path = os.path.abspath(str(path))
    if not path.lower().endswith(SC_SUFFIX):
        raise ValueError(f"a DICOM Secondary Capture is saved as a .dcm file: give a name ending in .dcm, not "
                         f"“{os.path.basename(path)}”")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder")
    return path


def save_screenshot_sc(picture: bytes, reference_file: str, out_path: str, series_description: str = "") -> str:
    """File → Export → Screenshot as DICOM Secondary Capture…: :func:`write_picture_sc` to a ``.dcm`` path (checked
    by :func:`check_sc_path`). Returns the absolute path written."""
    path = check_sc_path(out_path)
    return write_picture_sc(picture, reference_file, path, series_description)


def send_with_screenshots(node, paths: Sequence[str] = (), screenshots: Sequence[ScreenshotSource] = (),
                          calling_aet: str = DEFAULT_CALLING_AET, progress: ProgressFn | None = None,
                          cancel: threading.Event | None = None, workdir: str | None = None) -> SendResult:
    """Send ``paths`` (DICOM files and folders) and each screenshot as a Secondary Capture to ``node`` (C-STORE, or
    STOW-RS for a DICOMweb node). A screenshot that cannot be made into one is in ``failed`` with the reason; the
    rest is sent. In the result a screenshot is named by its picture's path. SettingsError when there is nothing
    to send."""
    from viewer.logic import pacs

    if not paths and not screenshots:
        raise SettingsError("nothing to send")
    folder = tempfile.mkdtemp(prefix="radview-sc-", dir=workdir)
    try:
        made: dict[str, str] = {}  # SC file → picture
        failed: list[tuple[str, str]] = []
        for i, shot in enumerate(screenshots, 1):
            if cancel is not None and cancel.is_set():
                raise Cancelled("send cancelled")
            out = os.path.join(folder, f"screenshot-{i:03d}.dcm")
            try:
                made[write_screenshot_sc(shot, out, instance_number=i)] = shot.image_path
            except (OSError, ValueError) as exc:
                failed.append((shot.image_path, f"not made into a Secondary Capture: {exc}"))
        everything = tuple(paths) + tuple(made)
        if not everything:
            return SendResult(node.label, (), tuple(failed), 0.0)
        result = pacs.send(pacs.SendRequest(node, everything, calling_aet), progress, cancel)
        return SendResult(result.node, tuple(made.get(p, p) for p in result.sent),
                          tuple((made.get(p, p), why) for p, why in result.failed) + tuple(failed), result.seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["ScreenshotSource", "is_screenshot", "sc_uids", "write_screenshot_sc", "write_picture_sc", "check_sc_path",
           "save_screenshot_sc", "send_with_screenshots"]
