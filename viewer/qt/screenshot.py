"""Screenshots of what the user sees: a view or the whole layout, overlays and corner text included.

The widgets render themselves (``QWidget.grab``), so the picture is the real
view. Patient data is hidden unless asked for. Files are written atomically.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager

from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget

from viewer.core.session import Session


@contextmanager
def patient_data_shown(session: Session, show: bool):
    previous = session.show_patient_data
    if previous != show:
        session.set_display(show_patient_data=show)
    try:
        yield
    finally:
        if session.show_patient_data != previous:
            session.set_display(show_patient_data=previous)


def grab(widget: QWidget, session: Session, show_patient_data: bool = False) -> QImage:
    with patient_data_shown(session, show_patient_data):
        QApplication.processEvents()
        return widget.grab().toImage()


def save_image(image: QImage, path: str) -> str:
    """Write ``image`` (PNG or JPEG, from the extension) atomically; raise OSError on failure."""
    path = os.path.abspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(ext)
    if fmt is None:
        raise ValueError(f"screenshots are PNG or JPEG, not {ext or 'no extension'}")
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".radview-", suffix=ext, dir=directory)
    os.close(fd)
    try:
        if not image.save(tmp, fmt, 95 if fmt == "JPEG" else -1):
            raise OSError(f"could not write {path}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
