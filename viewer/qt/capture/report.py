"""The one-page PDF report of the series on screen, painted with Qt: key images, tables, provenance.

Made with Qt only (``QPdfWriter`` + ``QPainter``; no new dependency), A4 portrait, always one page. Its content —
texts, study lines, the tables of AI detections, structures and measurements with their review notes, the
provenance of the AI results — comes from ``viewer.logic.report_content``; this module holds what needs Qt:

* the key images (:class:`KeyImage`, a ``QImage`` and its caption): the axial and coronal views as exported
  screenshots (GUI, :func:`report_from_views`: the views as seen, without patient data unless asked) or slices
  through the main finding (:func:`report_from_files`, for ``radview-cli export report``), then a close-up of the
  slice of each finding (up to four) with its marker (:func:`finding_images`);
* :class:`ReportData`, everything one report shows;
* the painting (:func:`paint_report`, :func:`render_pdf`): rows that do not fit on the page are left out with a
  line saying how many (the full lists are in the JSON / DICOM SR exports);
* :func:`write_report` and the dialog (:class:`ReportDialog`: file name, "include patient data").

Gathering the data draws the key images (GUI thread); :func:`write_report` paints the PDF from ``QImage`` and
text only, so it runs on a worker thread, and writes it atomically (``radview_base.atomic_file``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

import numpy as np
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
    MAX_FINDING_IMAGES,
    NOT_A_DIAGNOSIS,
    TITLE,
    Table,
    ai_result_from_findings,
    ai_results_from_layers,
    detection_markers,
    finding_caption,
    overlay_caption,
    provenance_lines,
    report_tables,
    study_lines,
    window_text,
)

KEY_IMAGE_PX = (1000, 800)  # key images: about 300 dpi across half the page
DPI = 300
ORANGE = QColor(190, 110, 0)
GREY = QColor(90, 90, 90)
BLACK = QColor(0, 0, 0)


# ------------------------------------------------------------------------------------------------ key images, gathering
@dataclass
class KeyImage:
    image: QImage
    caption: str


@dataclass
class ReportData:
    study: list[tuple[str, str]]
    key_images: list[KeyImage] = field(default_factory=list)
    finding_images: list[KeyImage] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    provenance: list[tuple[str, bool]] = field(default_factory=list)  # (line, not reviewed)
    notes: list[str] = field(default_factory=list)
    include_patient_data: bool = False
    created: str = ""
    title: str = TITLE


def finding_images(volume, layers, results, width: float, level: float, px: int = 520) -> list[KeyImage]:
    """A close-up of the axial slice of each finding (highest score first, at most four), its marker drawn."""
    from viewer.core.slicing import SlicePlane
    from viewer.qt.views.slice_image import SliceRequest, render_slice

    found = detection_markers(results)
    markers = [m for m, _r, _i in found]
    found.sort(key=lambda t: -(t[0].score if t[0].score is not None else 0.0))
    out = []
    for marker, res, i in found[:MAX_FINDING_IMAGES]:
        det = res.detections[i]
        crop = float(np.clip(max(float(det.get("diameter_mm") or 10.0) * 4.0, 40.0), 40.0, 120.0))
        req = SliceRequest("axial", center_lps=marker.center_lps, crop_mm=crop, size=(px, px), width=width,
                           level=level, letters=False, font_px=px // 20)
        image, k = render_slice(volume, req, layers, markers)
        total = SlicePlane.for_view("axial", volume.geometry).n_slices
        out.append(KeyImage(image, finding_caption(i, det, k, total)))
    return out


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
    return _assemble(volume, include_patient_data, key_images,
                     finding_images(volume, label_layers, results, session.width, session.level),
                     results, segmentations, annotations)


def _assemble(volume, include_patient_data, key_images, found_images, results, segmentations, annotations,
              notes=()) -> ReportData:
    return ReportData(study=study_lines(volume, include_patient_data), key_images=key_images,
                      finding_images=found_images, tables=report_tables(results, segmentations, annotations, volume),
                      provenance=provenance_lines(results),
                      notes=list(notes), include_patient_data=include_patient_data,
                      created=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"))


def report_from_files(path: str, series: str | None = None, labels: str | None = None, findings: Any = None,
                      measurements: Any = None, preset: str | None = None,
                      include_patient_data: bool = False) -> ReportData:
    """The report of a series on disk (no window): ``findings`` / ``measurements`` are parsed JSON (or None)."""
    from radview_base.geometry import require_same_grid
    from viewer.core.layers import LabelLayer
    from viewer.core.slicing import SlicePlane
    from viewer.core.window_presets import file_window, find_preset
    from viewer.io.image_io import read_label_map
    from viewer.io.series_loader import load_path
    from viewer.qt.views.slice_image import SliceRequest, render_slice

    volume = load_path(path, series)
    series_uid = str(volume.meta.get("series_uid", ""))
    made_on = str(((findings or {}).get("input") or {}).get("series_uid") or "")
    if made_on and series_uid and made_on != series_uid:
        raise ValueError(f"the findings were made on series {made_on}, not on the reported series {series_uid}")
    results = []
    review = {}
    items = []
    if measurements is not None:
        if isinstance(measurements, Mapping):
            items, review = list(measurements.get("measurements") or []), dict(measurements.get("review") or {})
        else:
            items = list(measurements)
    if findings:
        results.append(ai_result_from_findings(findings, review=review, series_uid=series_uid))
    layers, segmentations = [], []
    if labels:
        label_map = read_label_map(labels)
        require_same_grid(volume.geometry, label_map.geometry, what=f"label map {os.path.basename(labels)}")
        ai_name = results[0].name if results and results[0].structures else ""
        layer = LabelLayer(label_map, name=ai_name or os.path.basename(labels))
        layers.append(layer)
        if not ai_name:
            segmentations.append((layer.name, [(layer.label_name(k), v) for k, v in sorted(layer.volumes_ml.items())]))
    if preset:
        p = find_preset(preset)
        width, level, wname = (p.width, p.level, p.name) if p is not None else (*file_window(volume.meta,
                                                                                            volume.array), "from file")
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
    return _assemble(volume, include_patient_data, key_images, finding_images(volume, layers, results, width, level),
                     results, segmentations, items)


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


def _table_height(table: Table, n_rows: int, row_h: float, title_h: float) -> float:
    return title_h + row_h * (1 + max(n_rows, 1))


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

    # --- the space left: footer, provenance and tables first, the key images get the rest ----------------
    footer_h = page.text_h(FOOTER, small, W) + 2.0
    prov_h = 0.0
    if data.provenance:
        prov_h = page.line_h(bold_body) + 0.5 + sum(page.text_h(line, small, W) + 0.4 for line, _ in data.provenance)
        prov_h += 2.0
    row_h = page.line_h(table_font) + 0.9
    title_h = page.line_h(bold_body) + 0.6
    caption_h = page.line_h(caption_font) * 2 + 0.8
    crops = data.finding_images[:MAX_FINDING_IMAGES]
    crop_w = (W - 3 * 3.0) / 4
    crops_h = (crop_w + caption_h + 2.0) if crops else 0.0
    avail = height_mm - footer_h - y - prov_h
    tables_full = sum(_table_height(t, len(t.rows), row_h, title_h) + 2.0 for t in data.tables)
    main_h = float(np.clip(avail - crops_h - tables_full - caption_h - 2.0, 45.0, 78.0))
    if avail - main_h - caption_h - 2.0 - crops_h - sum(_table_height(t, 3, row_h, title_h) + 2.0
                                                         for t in data.tables) < 0 and crops:
        crops, crops_h = crops[:0], 0.0  # too little room: the close-ups go first
    main_h = float(np.clip(avail - crops_h - tables_full - caption_h - 2.0, 40.0, 78.0))

    # key images
    if data.key_images:
        n = len(data.key_images)
        gap = 4.0
        box_w = (W - gap * (n - 1)) / n
        heights = []
        for i, key in enumerate(data.key_images):
            heights.append(page.image(i * (box_w + gap), y, box_w, main_h, key.image))
        img_h = max(heights) if heights else 0.0
        for i, key in enumerate(data.key_images):
            page.text(i * (box_w + gap), y + img_h + 0.5, box_w, key.caption, caption_font, GREY)
        y += img_h + caption_h + 2.0
    if crops:
        for i, key in enumerate(crops):
            x = i * (crop_w + 3.0)
            h = page.image(x, y, crop_w, crop_w, key.image)
            page.text(x, y + h + 0.5, crop_w, key.caption, caption_font, GREY)
        y += crops_h

    # tables: rows that do not fit are left out (counted)
    room = height_mm - footer_h - prov_h - y
    budget = _row_budget(data.tables, room, row_h, title_h)
    for table, n_rows in zip(data.tables, budget):
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


def _row_budget(tables: list[Table], room: float, row_h: float, title_h: float) -> list[int]:
    """How many rows of each table fit in ``room`` mm (a "… n more" line counts as a row)."""
    wanted = [len(t.rows) for t in tables]
    fixed = sum(title_h + row_h + 2.0 for _t in tables)  # titles and header rows
    rows_room = max(int((room - fixed) // row_h), 0)
    empty_rows = sum(1 for n in wanted if n == 0)  # "none" line
    if sum(wanted) + empty_rows <= rows_room:
        return wanted
    budget = [0] * len(tables)
    left = rows_room - empty_rows - sum(1 for n in wanted if n)  # one line each for "… n more"
    # share round-robin, so each table shows its first rows
    while left > 0 and any(b < n for b, n in zip(budget, wanted)):
        for i, n in enumerate(wanted):
            if left > 0 and budget[i] < n:
                budget[i] += 1
                left -= 1
    return [min(b + (1 if b + 1 == n else 0), n) for b, n in zip(budget, wanted)]


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
    return y


def render_pdf(data: ReportData) -> bytes:
    """The report as PDF bytes (one A4 page). Uses QImage and text only: safe on a worker thread."""
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
    return atomic_write_bytes(path, render_pdf(data))


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
