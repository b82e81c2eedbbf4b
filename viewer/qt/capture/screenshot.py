"""Screenshots of what the user sees: a view or the whole layout, as seen, into PNG or JPEG.

What is exported is the view as seen (``shared/CONVENTIONS.md``, Exports): the
image, label overlays, markers, measurements with their values, orientation
letters, scale bar and corner text, at the view's size or a chosen scale
(2× for print: the scene is drawn again at that resolution, text stays sharp).
The patient-identifying corner text (top right: name, ID, birth date, sex,
institution, study description and date; bottom right: acquisition date and
time) is left out unless ``include_patient_data`` is asked for. The blue frame
of the active view is UI, not content, and is left out too, and so is the
crosshair (the linked cursor's lines) unless ``include_crosshair`` is asked for.

A picture with an AI label or AI finding in view gets a band below the image
(``viewer.qt.capture.stamp``): the review state of each AI result shown — "AI
result, not reviewed — not a diagnosis" or "reviewed by … at …" — and a legend
of the labels shown. A picture without AI content has no band.

Nothing on screen changes: a 2D view is drawn into a ``QImage`` with
``QGraphicsView.render`` while the view's ``corner_texts`` is replaced for that
one call (an attribute of the view object, restored in ``finally``), so no
session event fires and the on-screen corner text stays exactly as it was,
even when the export fails. A 3D view (VTK) is read back with
``vtkWindowToImageFilter`` (``View3D.capture_image``; ``QWidget.grab`` of a VTK
widget returns garbage) and composited in its place.

Drawing happens on the GUI thread (widgets live there); encoding and writing
(100+ ms for a large PNG) can run anywhere: :func:`save_image` only touches
the ``QImage``. Files are written atomically (``radview_base.atomic_file``): a
failed export leaves no file.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from viewer.core.session import Session

#: file extension → Qt image format
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
LAYOUT_BACKGROUND = QColor(0x20, 0x20, 0x20)  # the layout's own background (the gaps between panes)
SCALES = (1.0, 2.0, 3.0)


@dataclass(frozen=True)
class ScreenshotOptions:
    include_patient_data: bool = False
    scale: float = 1.0  # 2.0: twice the view's size (print)
    quality: int = 95  # JPEG quality, 1-100 (PNG is lossless)
    include_crosshair: bool = False  # the linked cursor's lines: left out of exports unless asked for

    def __post_init__(self) -> None:
        if not 0.25 <= float(self.scale) <= 8.0:
            raise ValueError(f"scale {self.scale} is out of range (0.25-8)")
        if not 1 <= int(self.quality) <= 100:
            raise ValueError(f"JPEG quality {self.quality} is out of range (1-100)")


def image_format(path: str) -> str:
    """"PNG" or "JPEG" from the file name; ValueError for anything else."""
    ext = os.path.splitext(str(path))[1].lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise ValueError(f"screenshots are PNG or JPEG, not {ext or 'a file without extension'}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder")
    return fmt


# --- the corner text of an export ---------------------------------------------------------------
def export_corner_texts(view, include_patient_data: bool = False) -> dict[str, list[str]]:
    """The corner lines an exported picture of ``view`` shows: patient data and dates only when asked for."""
    from viewer.qt.views.corner_text import corner_lines
    from viewer.qt.views.planar_text import planar_corner_lines

    lines = planar_corner_lines if hasattr(view, "series") else corner_lines  # a 2D image view, or a slice view
    return lines(view, patient_data=include_patient_data, acquisition_date=include_patient_data)


@contextmanager
def exported_look(view, include_patient_data: bool = False, record: dict | None = None,
                  include_crosshair: bool = False):
    """While inside: ``view`` paints the export's corner text, no active frame and (unless asked for) no
    crosshair. Nothing is emitted; the view's own attributes are restored on the way out, whatever happens."""
    texts = export_corner_texts(view, include_patient_data)
    if record is not None:
        record[getattr(view, "view", "image")] = texts
    was_active = view.active
    lines = [] if include_crosshair else [line for line in (getattr(view, "hline", None),
                                                            getattr(view, "vline", None)) if line is not None]
    shown = [line.isVisible() for line in lines]
    view.corner_texts = lambda: texts  # shadows SliceView.corner_texts for this object only
    view.active = False
    try:
        for line in lines:
            line.setVisible(False)
        yield texts
    finally:
        for line, visible in zip(lines, shown):
            line.setVisible(visible)
        view.__dict__.pop("corner_texts", None)
        view.active = was_active


# --- drawing ----------------------------------------------------------------------------------------
def _blank(width: int, height: int, scale: float, color: QColor) -> QImage:
    image = QImage(max(1, round(width * scale)), max(1, round(height * scale)), QImage.Format_RGB32)
    image.setDevicePixelRatio(scale)
    image.fill(color)
    return image


def _is_3d(widget) -> bool:
    return hasattr(widget, "capture_image") and hasattr(widget, "vtk_widget")


def render_slice_view(view, scale: float = 1.0, include_patient_data: bool = False,
                      record: dict | None = None, include_crosshair: bool = False) -> QImage:
    """A 2D view as seen, drawn anew into an image ``scale`` × its size (the on-screen view is untouched)."""
    viewport = view.viewport()
    w, h = viewport.width(), viewport.height()
    image = _blank(w, h, scale, QColor(0, 0, 0))
    with exported_look(view, include_patient_data, record, include_crosshair):
        painter = QPainter(image)
        try:
            painter.setRenderHints(view.renderHints())
            view.render(painter, QRectF(0, 0, w, h), viewport.rect())
        finally:
            painter.end()
    return image


def render_view_at(view, size: tuple[int, int], include_patient_data: bool = False,
                   record: dict | None = None, scale: float = 1.0) -> QImage:
    """A 2D view as seen — same slice, window, overlays, markers, measurements, the part of the image the user
    looks at — drawn at another size (e.g. a report's key image), by a detached copy of the view.

    The copy is a hidden ``SliceView`` on a throwaway ``Session`` that shares the volume, the layers and a copy of
    the annotations and review table: no signal of the real session is connected or fired, the on-screen view is
    not touched. The copy is deleted before returning. ``scale``: the picture is ``scale`` × ``size`` pixels
    (text and lines grow with it).
    """
    from viewer.core.session import Session
    from viewer.qt.overlays.tool_state import ToolState
    from viewer.qt.views.slice_view import SliceView

    src = view.session
    if src.volume is None or view.plane is None:
        raise ValueError("the view shows no series")
    session = Session()
    session.volume = src.volume
    session.layers = list(src.layers)
    notes = src.annotations
    session.annotations.open_study(notes.study_uid, list(notes), notes.review, notes.extra)
    session.annotations.volume = src.volume
    for name in ("width", "level", "preset_name", "invert", "show_corner_text", "show_patient_data",
                 "overlays_visible"):
        setattr(session, name, getattr(src, name))
    session.cursor_lps = src.cursor_lps.copy()
    copy = SliceView(session, view.view, tools=ToolState())
    try:
        copy.setAttribute(Qt.WA_DontShowOnScreen, True)
        copy.resize(int(size[0]), int(size[1]))
        copy.show()  # delivers the resize: the copy lays itself out at ``size``
        copy.set_slice(view.k)
        rows, cols = view.plane.shape
        row_mm, col_mm = view.plane.pixel_spacing
        image_rect = QRectF(0, 0, cols * col_mm, rows * row_mm)
        (x0, x1), (y0, y1) = view.vb.viewRange()
        seen = image_rect.intersected(QRectF(x0, y0, x1 - x0, y1 - y0))
        if view.fitted or seen.isEmpty():
            copy.reset_view()
        else:  # zoomed or panned: the part of the image the user sees, as large as it fits
            copy.fitted = False
            copy.vb.setRange(seen, padding=0.0)
        copy.annotation_overlay.redraw()
        return render_slice_view(copy, scale, include_patient_data, record)
    finally:
        copy.fitted = False  # a pending re-fit (resize timer) finds nothing to do
        copy.close()
        copy.deleteLater()


def render_3d_view(view3d, scale: float = 1.0) -> QImage:
    """The 3D view's picture (vtkWindowToImageFilter), ``scale`` × the render widget's size."""
    picture = view3d.capture_image()
    target = view3d.vtk_widget
    w, h = max(1, round(target.width() * scale)), max(1, round(target.height() * scale))
    if (picture.width(), picture.height()) != (w, h):
        picture = picture.scaled(w, h, Qt.IgnoreAspectRatio, Qt.SmoothTransformation)
    picture = picture.convertToFormat(QImage.Format_RGB32)
    picture.setDevicePixelRatio(scale)
    return picture


def render_pane(widget: QWidget, scale: float = 1.0, include_patient_data: bool = False,
                record: dict | None = None, include_crosshair: bool = False) -> QImage:
    """One pane of the layout: a 2D view, the 3D view (its picture where its render widget is) or another widget."""
    from viewer.qt.views.planar_view import PlanarView
    from viewer.qt.views.slice_view import SliceView

    if isinstance(widget, (SliceView, PlanarView)):
        return render_slice_view(widget, scale, include_patient_data, record, include_crosshair)
    image = _blank(widget.width(), widget.height(), scale, QColor(0, 0, 0))
    painter = QPainter(image)
    try:
        if _is_3d(widget):
            at = widget.vtk_widget.mapTo(widget, QPoint(0, 0))
            painter.drawImage(QPointF(at), render_3d_view(widget, scale))
        else:
            widget.render(painter, QPoint(0, 0))
    finally:
        painter.end()
    return image


def render_layout(layout, scale: float = 1.0, include_patient_data: bool = False,
                  record: dict | None = None, include_crosshair: bool = False) -> QImage:
    """The reading layout as seen: every visible pane drawn in its place on the layout's background."""
    image = _blank(layout.width(), layout.height(), scale, LAYOUT_BACKGROUND)
    painter = QPainter(image)
    try:
        for pane in layout.visible_panes():
            if pane.isVisible() and pane.width() > 0 and pane.height() > 0:
                at = pane.mapTo(layout, QPoint(0, 0))
                painter.drawImage(QPointF(at), render_pane(pane, scale, include_patient_data, record,
                                                           include_crosshair))
    finally:
        painter.end()
    return image


def render(widget: QWidget, options: ScreenshotOptions | None = None, record: dict | None = None) -> QImage:
    """A view (2D or 3D) or the whole layout as seen, per ``options``, with the AI stamp band when AI content is
    in view (:func:`stamp_of`); ``record`` gets each 2D view's corner text."""
    from viewer.qt.capture.stamp import with_band
    from viewer.qt.views.planar_area import PlanarArea
    from viewer.qt.views.view_layout import ViewLayout

    options = options or ScreenshotOptions()
    if isinstance(widget, (ViewLayout, PlanarArea)):
        image = render_layout(widget, options.scale, options.include_patient_data, record, options.include_crosshair)
    elif _is_3d(widget):
        image = render_3d_view(widget, options.scale)
    else:
        image = render_pane(widget, options.scale, options.include_patient_data, record, options.include_crosshair)
    return with_band(image, stamp_of(widget))


def stamp_of(widget: QWidget):
    """What the picture of ``widget`` says about its AI content (``viewer.logic.export_stamp``): the slices its 2D
    views show, and every label when a 3D view is in it."""
    from viewer.logic.export_stamp import ExportStamp, export_stamp
    from viewer.qt.views.slice_view import SliceView
    from viewer.qt.views.view_layout import ViewLayout

    session = getattr(widget, "session", None)
    if session is None:
        return ExportStamp()
    panes = [p for p in widget.visible_panes() if p.isVisible()] if isinstance(widget, ViewLayout) else [widget]
    shown = [(p.plane, p.k) for p in panes if isinstance(p, SliceView) and p.plane is not None]
    return export_stamp(session, shown, everything=any(_is_3d(p) for p in panes))


def grab(widget: QWidget, session: Session | None = None, show_patient_data: bool = False,
         scale: float = 1.0, include_crosshair: bool = False) -> QImage:
    """:func:`render` with patient data shown or not (``session`` is kept for older callers; it is not changed)."""
    return render(widget, ScreenshotOptions(include_patient_data=show_patient_data, scale=scale,
                                            include_crosshair=include_crosshair))


# --- writing ---------------------------------------------------------------------------------------------
def encode_image(image: QImage, fmt: str, quality: int = 95) -> bytes:
    """The image as PNG or JPEG bytes (thread-safe: touches only ``image``)."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.WriteOnly)
    ok = image.save(buffer, fmt, int(quality) if fmt == "JPEG" else -1)
    buffer.close()
    if not ok or data.isEmpty():
        raise OSError(f"could not encode the image as {fmt}")
    return bytes(data.data())


def save_image(image: QImage, path: str, quality: int = 95) -> str:
    """Write ``image`` (PNG or JPEG, from the extension) atomically; ValueError / OSError on failure, no file left."""
    from radview_base.atomic_file import atomic_write_bytes

    path = os.path.abspath(str(path))
    fmt = image_format(path)
    return atomic_write_bytes(path, encode_image(image, fmt, quality))


# --- the dialog -----------------------------------------------------------------------------------------------
class ScreenshotDialog(QDialog):
    """File name, scale, JPEG quality and "include patient data" for one screenshot; ``dicom``: the file is a DICOM
    Secondary Capture (.dcm), with no JPEG quality."""

    def __init__(self, parent=None, path: str = "radview.png", include_patient_data: bool = False,
                 title: str = "Export screenshot", dicom: bool = False):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.file_filter = "DICOM Secondary Capture (*.dcm)" if dicom else "PNG (*.png);;JPEG (*.jpg *.jpeg)"
        form = QFormLayout(self)
        self.path_edit = QLineEdit(path)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.addRow("File (DICOM, .dcm)" if dicom else "File (PNG or JPEG)", row)
        self.scale_box = QComboBox()
        for s in SCALES:
            self.scale_box.addItem(f"{s:g}× the view's size" + (" (print)" if s == 2 else ""), s)
        form.addRow("Size", self.scale_box)
        self.quality_box = QSpinBox()
        self.quality_box.setRange(1, 100)
        self.quality_box.setValue(95)
        form.addRow("JPEG quality", self.quality_box)
        form.setRowVisible(self.quality_box, not dicom)
        self.patient_box = QCheckBox("Include patient data (name, ID, birth date, institution, dates)")
        self.patient_box.setChecked(include_patient_data)
        form.addRow(self.patient_box)
        self.crosshair_box = QCheckBox("Include the crosshair (the linked cursor's lines)")
        form.addRow(self.crosshair_box)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.path_edit.textChanged.connect(self._sync)
        self._sync()

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, self.windowTitle(), self.path_edit.text(), self.file_filter)
        if path:
            self.path_edit.setText(path)

    def _sync(self) -> None:
        self.quality_box.setEnabled(os.path.splitext(self.path_edit.text())[1].lower() in (".jpg", ".jpeg"))

    @property
    def path(self) -> str:
        return self.path_edit.text().strip()

    def options(self) -> ScreenshotOptions:
        return ScreenshotOptions(self.patient_box.isChecked(), float(self.scale_box.currentData()),
                                 self.quality_box.value(), self.crosshair_box.isChecked())
