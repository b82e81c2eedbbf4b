"""The one-page PDF report of the series on screen, painted with Qt: key images, tables, provenance.

Made with Qt only (``QPdfWriter`` + ``QPainter``; no new dependency), A4 portrait, always one page. Its content —
texts, study lines, the tables of AI detections, structures and measurements with their review notes, the
provenance of the AI results — comes from ``viewer.logic.report_content``; this module holds what needs Qt:

* the key images (:class:`KeyImage`, a ``QImage`` and its caption): the axial and coronal views as exported
  screenshots (GUI, :func:`report_from_views`: the views as seen, without patient data unless asked) or slices
  through the main finding (:func:`report_from_files`, for ``radview-cli export report``), then a close-up of the
  slice of each finding with its marker, labels as outlines, in the lung window for a lung finding
  (``viewer.qt.capture.closeups``);
* :class:`ReportData`, everything one report shows; each overlay with its own result's provenance (labels from
  one run and findings from another are two results, each named with its model and version:
  ``viewer.logic.report_sources``);
* the painting (:func:`paint_report`, :func:`render_pdf`), laid out by ``viewer.logic.report_layout``: the
  close-ups take the free space first; those that do not fit are named on a line, and table rows that do not
  fit are left out with a line saying how many (the full lists are in the JSON / DICOM SR exports);
* :func:`write_report` and the dialog (:class:`ReportDialog`: file name, "include patient data").

Gathering the data draws the key images (GUI thread); :func:`write_report` paints the PDF from ``QImage`` and
text only, so it runs on a worker thread, and writes it atomically (``radview_base.atomic_file``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from datetime import datetime
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
)

from viewer.export import AI_NOT_REVIEWED
from viewer.logic.report_content import (
    FOOTER,
    NOT_A_DIAGNOSIS,
    TITLE,
    Table,
    ai_results_from_classifications,
    ai_results_from_layers,
    detection_markers,
    overlay_caption,
    provenance_lines,
    report_tables,
    study_lines,
    window_text,
)
from viewer.logic.report_findings import not_shown_line
from viewer.logic.report_layout import COLUMN_CHOICES, GAP_MM, TableSize, crop_width, plan_page
from viewer.qt.capture.closeups import KeyImage, finding_images

KEY_IMAGE_PX = (1000, 800)  # key images: about 300 dpi across half the page
DPI = 300
ORANGE = QColor(190, 110, 0)
GREY = QColor(90, 90, 90)
BLACK = QColor(0, 0, 0)


# ------------------------------------------------------------------------------------------------ key images, gathering
@dataclass
class ReportData:
    study: list[tuple[str, str]]
    key_images: list[KeyImage] = field(default_factory=list)
    finding_images: list[KeyImage] = field(default_factory=list)  # close-ups, highest score first
    findings: list = field(default_factory=list)  # every finding in that order (report_findings.FindingRef)
    tables: list[Table] = field(default_factory=list)
    provenance: list[tuple[str, bool]] = field(default_factory=list)  # (line, not reviewed)
    notes: list[str] = field(default_factory=list)
    include_patient_data: bool = False
    created: str = ""
    title: str = TITLE
    #: the tables, when measuring them is slow (structures measured per piece): made where the PDF is painted,
    #: in the report's job, not on the GUI thread that gathers the rest
    tables_later: Any = None

    def with_tables(self) -> "ReportData":
        """This report with its tables made (``tables_later`` run); itself when they are."""
        if self.tables_later is None:
            return self
        return dc_replace(self, tables=list(self.tables_later()), tables_later=None)


def report_from_views(session, views, include_patient_data: bool = False) -> ReportData:
    """Everything the report shows, gathered on the GUI thread from the session and the reading views (``views``
    by name: the key images are the axial and coronal views as seen, drawn here)."""
    from viewer.core.window_presets import FROM_FILE
    from viewer.qt.capture.screenshot import render_view_at

    volume = session.volume
    if volume is None:
        raise ValueError("no series is open")
    review = getattr(session.annotations, "review", {}) or {}
    results, segmentations = ai_results_from_layers(session.layers, review, str(volume.meta.get("series_uid", "")))
    results += ai_results_from_classifications(getattr(session, "classifications", ()), review)
    label_layers = [layer for layer in session.label_layers() if layer.visible] if session.overlays_visible else []
    preset = session.preset_name or ""
    preset = "from file" if preset == FROM_FILE else preset
    overlay = overlay_caption([layer.name for layer in session.layers if layer.visible]
                              if session.overlays_visible else [], results)
    key_images = []
    for name in ("axial", "coronal"):  # each view as seen (slice, zoom, overlays, measurements), laid out anew
        view = views[name]
        image = render_view_at(view, (KEY_IMAGE_PX[0] // 2, KEY_IMAGE_PX[1] // 2), include_patient_data, scale=2.0)
        caption = (f"{name.capitalize()} {view.k + 1}/{view.plane.n_slices} (the view on screen); "
                   f"{window_text(session.width, session.level, preset)}" + (f"; {overlay}" if overlay else ""))
        key_images.append(KeyImage(image, caption))
    series_uid = str(volume.meta.get("series_uid", ""))
    annotations = [a for a in session.annotations if a.series_uid in (series_uid, "")]
    closeups = finding_images(volume, label_layers, results, session.width, session.level, preset)
    return _assemble(volume, include_patient_data, key_images, closeups, results, segmentations, annotations)


def report_from_images(session, views, include_patient_data: bool = False) -> ReportData:
    """The report of a 2D series (radiographs, mammograms, ultrasound, cine): the hanging's views as seen, as
    key images (each captioned with its image number, frame and window), the measurements drawn on its images
    (each with its image's calibration) and the classification models' answers with their provenance (the
    segmentation models read volumes)."""
    from viewer.logic.report_content import classification_table, image_study_lines, measurement_table
    from viewer.qt.views.planar_text import planar_corner_lines

    series = session.images
    if series is None or not views:
        raise ValueError("no series is open")
    key_images = []
    size = (KEY_IMAGE_PX[0] // 2, KEY_IMAGE_PX[1] // 2) if len(views) > 1 else KEY_IMAGE_PX
    for view in views[:4]:
        image = _render_planar_view(view, size, include_patient_data)
        top = planar_corner_lines(view, patient_data=False, acquisition_date=False)
        d = view.current.display
        side = " ".join(s for s in (d.laterality, d.view_position) if s)
        caption = "; ".join(s for s in (top["top_left"][0] if top["top_left"] else "", side,
                                        (top["bottom_left"] or [""])[0], "(the view on screen)") if s)
        key_images.append(KeyImage(image, caption))
    uids = {im.display.sop_instance_uid for im in series.images}
    annotations = [a for a in session.annotations if a.image is not None and a.image.sop_instance_uid in uids]
    review = getattr(session.annotations, "review", {}) or {}
    results = ai_results_from_classifications(getattr(session, "classifications", ()), review)
    tables = ([classification_table(results)] if results else []) + [measurement_table(annotations)]
    return ReportData(study=image_study_lines(series, include_patient_data), key_images=key_images,
                      finding_images=[], findings=[], tables=tables, provenance=provenance_lines(results),
                      notes=[], include_patient_data=include_patient_data,
                      created=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"))


def _render_planar_view(view, size, include_patient_data: bool):
    """A 2D image view as seen, drawn at ``size`` (scaled from the view's own picture: same image, zoom, marks)."""
    from PySide6.QtCore import Qt

    from viewer.qt.capture.screenshot import render_slice_view

    picture = render_slice_view(view, 2.0, include_patient_data)
    return picture.scaled(int(size[0] * 2), int(size[1] * 2), Qt.KeepAspectRatio, Qt.SmoothTransformation)


def _assemble(volume, include_patient_data, key_images, closeups, results, segmentations, annotations,
              notes=()) -> ReportData:
    found_images, findings = closeups
    return ReportData(study=study_lines(volume, include_patient_data), key_images=key_images,
                      finding_images=found_images, findings=findings,
                      tables_later=lambda: report_tables(results, segmentations, annotations, volume),
                      provenance=provenance_lines(results),
                      notes=list(notes), include_patient_data=include_patient_data,
                      created=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"))


def report_from_files(path: str, series: str | None = None, labels: str | None = None, findings: Any = None,
                      measurements: Any = None, preset: str | None = None,
                      include_patient_data: bool = False, findings_path: str | None = None) -> ReportData:
    """The report of a series on disk (no window): ``findings`` / ``measurements`` are parsed JSON (or None);
    ``findings_path`` is where the findings were read from (their run's label map lies beside them)."""
    from viewer.core.slicing import SlicePlane
    from viewer.core.window_presets import file_window, find_preset
    from viewer.io.series_loader import load_path
    from viewer.logic.label_source import load_label_layer
    from viewer.logic.report_sources import measurements_and_review, results_from_files
    from viewer.qt.views.slice_image import SliceRequest, render_slice

    volume = load_path(path, series)
    series_uid = str(volume.meta.get("series_uid", ""))
    made_on = str(((findings or {}).get("input") or {}).get("series_uid") or "")
    if made_on and series_uid and made_on != series_uid:
        raise ValueError(f"the findings were made on series {made_on}, not on the reported series {series_uid}")
    items, review = measurements_and_review(measurements)
    label_layer = load_label_layer(labels, volume) if labels else None
    layers = [label_layer] if label_layer is not None else []
    results, segmentations = results_from_files(volume, label_layer, findings, review, findings_path, labels)
    p = find_preset(preset) if preset else None
    if p is not None:
        width, level, wname = p.width, p.level, p.name
    else:
        (width, level), wname = file_window(volume.meta, volume.array), "from file"
    found = detection_markers(results)
    markers = [m for m, _r, _i in found]
    focus = None
    if found:
        focus = max(found, key=lambda t: t[0].score if t[0].score is not None else 0.0)[0].center_lps
    overlay = overlay_caption([layer.name for layer in layers] + [r.name for r in results if r.detections],
                              results)
    key_images = []
    for name in ("axial", "coronal"):
        req = SliceRequest(name, center_lps=focus, size=KEY_IMAGE_PX, width=width, level=level)
        image, k = render_slice(volume, req, layers, markers)
        total = SlicePlane.for_view(name, volume.geometry).n_slices
        where = " through the top-scoring finding" if focus is not None else " (middle slice)"
        key_images.append(KeyImage(image, f"{name.capitalize()} {k + 1}/{total}{where}; "
                                          f"{window_text(width, level, wname)}" + (f"; {overlay}" if overlay else "")))
    closeups = finding_images(volume, layers, results, width, level, wname)
    return _assemble(volume, include_patient_data, key_images, closeups, results, segmentations, items)


# ------------------------------------------------------------------------------------------------ painting
class _Page:
    """Millimetre layout on a painter whose device has ``DPI`` dots per inch."""

    def __init__(self, painter: QPainter, width_mm: float, height_mm: float):
        self.p = painter
        self.w, self.h = width_mm, height_mm
        self.k = DPI / 25.4

    def rect(self, x, y, w, h) -> QRectF:
        return QRectF(x * self.k, y * self.k, w * self.k, h * self.k)

    def font(self, pt: float, bold: bool = False) -> QFont:
        f = QFont()
        f.setPointSizeF(pt)
        f.setBold(bold)
        f.setFeature(QFont.Tag("liga"), 0)  # "fi", not a ligature glyph: the PDF's text stays searchable
        return f

    def line_h(self, font: QFont) -> float:
        self.p.setFont(font)
        return QFontMetricsF(font, self.p.device()).height() / self.k

    def text_h(self, text: str, font: QFont, width_mm: float) -> float:
        self.p.setFont(font)
        r = self.p.boundingRect(self.rect(0, 0, width_mm, 1000), Qt.TextWordWrap | Qt.AlignLeft, text)
        return r.height() / self.k

    def text(self, x, y, w, text: str, font: QFont, color=BLACK, flags=Qt.AlignLeft) -> float:
        """Wrapped text from (x, y); returns its height (mm)."""
        self.p.setFont(font)
        self.p.setPen(color)
        r = self.p.boundingRect(self.rect(x, y, w, 1000), Qt.TextWordWrap | flags, text)
        self.p.drawText(self.rect(x, y, w, r.height() / self.k + 1), Qt.TextWordWrap | flags, text)
        return r.height() / self.k

    def cell(self, x, y, w, h, text: str, font: QFont, color=BLACK, right: bool = False) -> None:
        self.p.setFont(font)
        self.p.setPen(color)
        pad = 0.8
        fm = QFontMetricsF(font, self.p.device())
        shown = fm.elidedText(text, Qt.ElideRight, (w - 2 * pad) * self.k)
        self.p.drawText(self.rect(x + pad, y, w - 2 * pad, h),
                        Qt.AlignVCenter | (Qt.AlignRight if right else Qt.AlignLeft), shown)

    def image(self, x, y, w, h, image: QImage) -> float:
        """``image`` fitted into the box (aspect kept, centred horizontally, top-aligned); its height (mm)."""
        if image.isNull():
            return 0.0
        aspect = image.height() / max(image.width(), 1)
        dw, dh = (w, w * aspect) if w * aspect <= h else (h / aspect, h)
        self.p.drawImage(self.rect(x + (w - dw) / 2, y, dw, dh), image)
        return dh


def paint_report(painter: QPainter, data: ReportData, width_mm: float, height_mm: float) -> None:
    """Lay out and paint the report on one page of ``width_mm`` × ``height_mm`` (inside the margins)."""
    page = _Page(painter, width_mm, height_mm)
    W = width_mm
    y = 0.0
    title_font, small, body, bold_body = page.font(15, True), page.font(7.5), page.font(8.5), page.font(8.5, True)
    table_font, table_bold, caption_font = page.font(7.5), page.font(7.5, True), page.font(7)
    y += page.text(0, y, W, data.title, title_font)
    y += page.text(0, y + 0.5, W, f"{NOT_A_DIAGNOSIS} Created {data.created} with radview. "
                   f"{'Patient data included on request.' if data.include_patient_data else 'De-identified.'}",
                   small, GREY) + 1.5
    painter.setPen(QPen(GREY, 0.3 * page.k))
    painter.drawLine(QPointF(0, y * page.k), QPointF(W * page.k, y * page.k))
    y += 1.5
    label_w = 28.0
    for label, value in data.study:
        h = page.text(label_w, y, W - label_w, value, body)
        page.text(0, y, label_w, label, bold_body)
        y += h + 0.3
    for note in data.notes:
        y += page.text(0, y, W, note, small, ORANGE) + 0.3
    y += 1.5

    # --- the space left (report_layout): close-ups first, then table rows, then larger key images ------------
    footer_h = page.text_h(FOOTER, small, W) + 2.0
    prov_h = 0.0
    if data.provenance:
        prov_h = page.line_h(bold_body) + 0.5 + sum(page.text_h(line, small, W) + 0.4 for line, _ in data.provenance)
        prov_h += 2.0
    row_h = page.line_h(table_font) + 0.9
    title_h = page.line_h(bold_body) + 0.6
    n_keys, key_gap = max(len(data.key_images), 1), 4.0
    box_w = (W - key_gap * (n_keys - 1)) / n_keys
    key_natural = max((box_w * k.image.height() / max(k.image.width(), 1) for k in data.key_images), default=0.0)
    key_caption_h = max((page.text_h(k.caption, caption_font, box_w) for k in data.key_images), default=0.0) + 2.5
    crop_caption_h = {cols: max((page.text_h(k.caption, caption_font, crop_width(W, cols))
                                 for k in data.finding_images), default=0.0) + 0.5 for cols in COLUMN_CHOICES}
    hidden_line = not_shown_line(data.findings)  # the longest the line can be
    note_h = page.text_h(hidden_line, small, W) if hidden_line else 0.0
    sizes = [TableSize(len(t.rows), sum(page.text_h(n, small, W) + 0.3 for n in t.notes)) for t in data.tables]
    avail = height_mm - footer_h - y - prov_h
    plan = plan_page(avail, W, len(data.finding_images), max(len(data.findings), len(data.finding_images)),
                     key_natural if data.key_images else 0.0, key_caption_h if data.key_images else 0.0,
                     crop_caption_h, note_h, sizes, row_h, title_h)

    # key images
    if data.key_images:
        heights = [page.image(i * (box_w + key_gap), y, box_w, plan.key_h, key.image)
                   for i, key in enumerate(data.key_images)]
        img_h = max(heights) if heights else 0.0
        for i, key in enumerate(data.key_images):
            page.text(i * (box_w + key_gap), y + img_h + 0.5, box_w, key.caption, caption_font, GREY)
        y += img_h + key_caption_h
    # close-ups, and a line naming the findings without one
    top = y
    for i, key in enumerate(data.finding_images[:plan.shown]):
        row, col = divmod(i, plan.cols)
        x, cy = col * (plan.crop_w + GAP_MM), top + row * (plan.crop_w + crop_caption_h[plan.cols] + GAP_MM)
        h = page.image(x, cy, plan.crop_w, plan.crop_w, key.image)
        page.text(x, cy + h + 0.5, plan.crop_w, key.caption, caption_font, GREY)
    rows = -(-plan.shown // plan.cols)
    y = top + rows * (plan.crop_w + crop_caption_h[plan.cols] + GAP_MM)
    hidden = not_shown_line(data.findings[plan.shown:])
    if hidden:
        y += page.text(0, y, W, hidden, small, ORANGE) + 1.0

    # tables: rows that do not fit are left out (counted)
    for table, n_rows in zip(data.tables, plan.table_rows):
        y = _paint_table(page, table, y, W, n_rows, row_h, title_h, table_font, table_bold, bold_body, small)
        y += 2.0

    # provenance
    if data.provenance:
        y += page.text(0, y, W, "Provenance of the AI results", bold_body) + 0.5
        for line, unreviewed in data.provenance:
            y += page.text(0, y, W, line, small, ORANGE if unreviewed else QColor(0, 0, 0)) + 0.4
    # footer, at the bottom of the page
    fy = height_mm - footer_h + 1.0
    painter.setPen(QPen(GREY, 0.3 * page.k))
    painter.drawLine(QPointF(0, (fy - 0.8) * page.k), QPointF(W * page.k, (fy - 0.8) * page.k))
    page.text(0, fy, W, FOOTER, small, GREY)


def _paint_table(page: _Page, table: Table, y: float, W: float, n_rows: int, row_h: float, title_h: float,
                 font: QFont, bold: QFont, title_font: QFont, small: QFont) -> float:
    p = page.p
    page.text(0, y, W, table.title + (f" ({len(table.rows)})" if table.rows else ""), title_font)
    y += title_h
    total = float(sum(table.widths))
    xs, x = [], 0.0
    for w in table.widths:
        xs.append((x, W * w / total))
        x += W * w / total
    p.fillRect(page.rect(0, y, W, row_h), QColor(225, 225, 225))
    for c, (cx, cw) in enumerate(xs):
        page.cell(cx, y, cw, row_h, table.columns[c], bold, right=c in table.right_aligned)
    y += row_h
    if not table.rows:
        page.cell(0, y, W, row_h, "none", font, GREY)
        return y + row_h
    shown = table.rows[:n_rows]
    for r, row in enumerate(shown):
        if r % 2:
            p.fillRect(page.rect(0, y, W, row_h), QColor(244, 244, 244))
        for c, (cx, cw) in enumerate(xs):
            text = row[c] if c < len(row) else ""
            color = ORANGE if c == table.status_column and AI_NOT_REVIEWED in text else QColor(0, 0, 0)
            page.cell(cx, y, cw, row_h, text, font, color, right=c in table.right_aligned)
        y += row_h
    if len(shown) < len(table.rows):
        page.cell(0, y, W, row_h, f"… {len(table.rows) - len(shown)} more not shown on this page (all are in the "
                  f"JSON and DICOM SR exports)", small, GREY)
        y += row_h
    p.setPen(QPen(GREY, 0.2 * page.k))
    p.drawLine(QPointF(0, y * page.k), QPointF(W * page.k, y * page.k))
    for note in table.notes:
        y += page.text(0, y + 0.3, W, note, small, GREY) + 0.3
    return y


def render_pdf(data: ReportData) -> bytes:
    """The report as PDF bytes (one A4 page). Uses QImage and text only: safe on a worker thread."""
    data = data.with_tables()
    buffer_data = QByteArray()
    buffer = QBuffer(buffer_data)
    buffer.open(QIODevice.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setResolution(DPI)
    margins = QMarginsF(14, 12, 14, 12)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.A4), QPageLayout.Portrait, margins, QPageLayout.Millimeter))
    writer.setTitle("radview report (research use, not for clinical use)")
    writer.setCreator("radview")
    painter = QPainter()
    if not painter.begin(writer):
        raise OSError("could not start the PDF")
    try:
        size = QPageSize(QPageSize.A4).size(QPageSize.Millimeter)
        paint_report(painter, data, size.width() - margins.left() - margins.right(),
                     size.height() - margins.top() - margins.bottom())
    finally:
        ok = painter.end()
        buffer.close()
    if not ok:
        raise OSError("could not finish the PDF")
    out = bytes(buffer_data.data())
    if not out.startswith(b"%PDF"):
        raise OSError("the PDF writer produced no PDF")
    return out


def write_report(data: ReportData, path: str) -> str:
    """Paint the report and write it to ``path`` atomically (no file is left when anything fails)."""
    from radview_base.atomic_file import atomic_write_bytes

    path = os.path.abspath(str(path))
    if not path.lower().endswith(".pdf"):
        raise ValueError("the report is a PDF file: give a name ending in .pdf")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder")
    return atomic_write_bytes(path, render_pdf(data.with_tables()))


# ------------------------------------------------------------------------------------------------ the dialog
class ReportDialog(QDialog):
    """File name and "include patient data" for the PDF report."""

    def __init__(self, parent=None, path: str = "radview-report.pdf", include_patient_data: bool = False):
        super().__init__(parent)
        self.setWindowTitle("Export report (PDF)")
        form = QFormLayout(self)
        self.path_edit = QLineEdit(path)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.addRow("File (PDF)", row)
        self.patient_box = QCheckBox("Include patient data (name, ID, birth date, institution, dates)")
        self.patient_box.setChecked(include_patient_data)
        form.addRow(self.patient_box)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export report", self.path_edit.text(), "PDF (*.pdf)")
        if path:
            self.path_edit.setText(path)

    @property
    def path(self) -> str:
        return self.path_edit.text().strip()

    @property
    def include_patient_data(self) -> bool:
        return self.patient_box.isChecked()
