"""The AI stamp of an exported picture, painted on its own opaque band below the image.

The band (:data:`BAND_COLOR`) is added under the picture, so it covers no pixel of the image and reads the
same over any image: one line per AI result in view — "AI result, not reviewed — not a diagnosis (model,
version)" in amber, or "reviewed by … at … — not a diagnosis" in white — then the legend of the labels shown
(a colour swatch and the name; a ring for AI findings). Text is sized from the picture's width and grows with
the export scale (a 2× export has a 2× band); long lines wrap, so nothing is cut at small sizes. What goes on
the band is decided without Qt (``viewer.logic.export_stamp``).
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen

from viewer.logic.export_stamp import ExportStamp, LegendEntry

BAND_COLOR = QColor(30, 32, 48)  # dark slate blue: never the black of an image background
WARNING_COLOR = QColor(255, 200, 80)
REVIEWED_COLOR = QColor(235, 235, 235)
LEGEND_TEXT = QColor(225, 225, 225)


def band_font_px(width_px: float, scale: float = 1.0) -> int:
    """Text size (device pixels) for a picture ``width_px`` device pixels wide exported at ``scale``."""
    logical = width_px / max(scale, 1e-6)
    return max(10, round(min(max(logical / 48.0, 11.0), 18.0) * scale))


def _font(px: int, bold: bool = False) -> QFont:
    font = QFont()
    font.setPixelSize(px)
    font.setBold(bold)
    return font


def _flags(width: float) -> int:
    return int(Qt.AlignLeft | (Qt.TextWrapAnywhere if width < 240 else Qt.TextWordWrap))


def _legend_rows(entries, fm: QFontMetricsF, width: float, swatch: float, gap: float):
    """Entries flowed into rows: ``[[(entry, x, text width), ...], ...]``."""
    rows, row, x = [], [], 0.0
    for entry in entries:
        text_w = min(fm.horizontalAdvance(entry.name), max(width - swatch - gap, 1.0))
        w = swatch + gap / 2 + text_w
        if row and x + w > width:
            rows.append(row)
            row, x = [], 0.0
        row.append((entry, x, text_w))
        x += w + 2 * gap
    if row:
        rows.append(row)
    return rows


def _swatch(painter: QPainter, entry: LegendEntry, x: float, y: float, size: float) -> None:
    color = QColor(*entry.color)
    if entry.kind == "marker":
        pen = QPen(color)
        pen.setWidthF(max(1.5, size / 7))
        painter.setPen(pen)
        painter.setBrush(Qt.NoBrush)
        painter.drawEllipse(QRectF(x + size * 0.1, y + size * 0.1, size * 0.8, size * 0.8))
        return
    painter.setPen(QPen(QColor(200, 200, 200), max(1.0, size / 12)))
    painter.setBrush(color)
    painter.drawRect(QRectF(x, y, size, size))


def with_band(image: QImage, stamp: ExportStamp) -> QImage:
    """``image`` with the stamp's band below it; ``image`` itself when the stamp is empty."""
    if stamp.empty:
        return image
    scale = image.devicePixelRatio() or 1.0
    width = image.width()
    px = band_font_px(width, scale)
    pad = max(4.0, px * 0.5)
    inner = max(width - 2 * pad, 1.0)
    title, body = _font(px, bold=True), _font(px)
    fm_title, fm_body = QFontMetricsF(title), QFontMetricsF(body)
    heights = [fm_title.boundingRect(QRectF(0, 0, inner, 1e6), _flags(inner), line).height() for line in stamp.lines]
    swatch, gap = fm_body.ascent(), px * 0.5
    rows = _legend_rows(stamp.legend, fm_body, inner, swatch, gap)
    row_h = fm_body.height() + px * 0.25
    band = pad + sum(heights) + (gap * 0.6 + len(rows) * row_h if rows else 0.0) + pad
    out = QImage(width, image.height() + int(round(band)), QImage.Format_RGB32)
    out.fill(BAND_COLOR)
    picture = QImage(image)
    picture.setDevicePixelRatio(1.0)
    painter = QPainter(out)
    try:
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setRenderHint(QPainter.TextAntialiasing, True)
        painter.drawImage(QPointF(0, 0), picture)
        y = image.height() + pad
        painter.setFont(title)
        for line, h, done in zip(stamp.lines, heights, stamp.reviewed + (False,) * len(stamp.lines)):
            painter.setPen(REVIEWED_COLOR if done else WARNING_COLOR)
            painter.drawText(QRectF(pad, y, inner, h + 1), _flags(inner), line)
            y += h
        painter.setFont(body)
        y += gap * 0.6 if rows else 0.0
        for row in rows:
            for entry, x, text_w in row:
                _swatch(painter, entry, pad + x, y + (fm_body.height() - swatch) / 2, swatch)
                painter.setPen(LEGEND_TEXT)
                shown = fm_body.elidedText(entry.name, Qt.ElideRight, text_w + 0.5)
                painter.drawText(QPointF(pad + x + swatch + gap / 2, y + fm_body.ascent()), shown)
            y += row_h
    finally:
        painter.end()
    out.setDevicePixelRatio(scale)
    return out
