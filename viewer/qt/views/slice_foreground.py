"""What a slice view paints over the image in the viewport's own pixels: corner text, orientation letters, the
scale bar and the active view's frame (``SliceView.drawForeground``), so all of it is in every screenshot.

Where each text goes is :func:`viewer.qt.views.corner_layout.layout_foreground`; the corner lines are the view's
``corner_texts()`` (which an export may replace for one drawing), the letters its plane's.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen

from viewer.qt.views.corner_layout import Placed, ScaleBar, layout_foreground, scale_bar

TEXT_COLOR = QColor(235, 235, 235)
LETTER_COLOR = QColor(255, 190, 80)
WARNING_COLOR = QColor(255, 215, 90)
ACTIVE_COLOR = QColor(80, 200, 255)
FONT_PX = 12


def foreground_font() -> QFont:
    font = QFont()
    font.setPixelSize(FONT_PX)
    return font


def view_scale_bar(view, fm: QFontMetricsF) -> ScaleBar | None:
    viewport = view.viewport()
    return scale_bar(fm, viewport.width(), viewport.height(), view.vb.viewPixelSize()[0])


def foreground_items(view, fm: QFontMetricsF | None = None) -> list[Placed]:
    """Every text ``view`` paints over its image, placed (the corner lines only while corner text is shown)."""
    if view.plane is None:
        return []
    fm = fm or QFontMetricsF(foreground_font())
    viewport = view.viewport()
    corners = view.corner_texts() if view.session.show_corner_text else {}
    return layout_foreground(fm, viewport.width(), viewport.height(), corners, view.plane.edge_letters(),
                             view_scale_bar(view, fm))


def shadow_text(painter: QPainter, x: float, y: float, text: str, color: QColor) -> None:
    painter.setPen(QColor(0, 0, 0))
    painter.drawText(QPointF(x + 1, y + 1), text)
    painter.setPen(color)
    painter.drawText(QPointF(x, y), text)


def paint_foreground(view, painter: QPainter, draw_text=shadow_text) -> None:
    """The view's foreground, in viewport pixels ("Loading…" while a preview shows); every text goes through
    ``draw_text(painter, x, baseline, text, color)``."""
    font = foreground_font()
    painter.save()
    try:
        painter.resetTransform()
        painter.setFont(font)
        fm = QFontMetricsF(font)
        if view.plane is None:
            if view.previewing:
                draw_text(painter, 6, 18, "Loading…", TEXT_COLOR)
            return
        for item in foreground_items(view, fm):
            color = LETTER_COLOR if item.kind == "letter" else WARNING_COLOR if item.kind == "warnings" else TEXT_COLOR
            draw_text(painter, item.x, item.baseline, item.text, color)
        bar = view_scale_bar(view, fm)
        if bar is not None:
            _paint_scale_bar(painter, bar, view.vb.viewPixelSize()[0])
        if view.active:
            w, h = view.viewport().width(), view.viewport().height()
            pen = QPen(ACTIVE_COLOR)
            pen.setWidth(2)
            painter.setPen(pen)
            painter.drawRect(1, 1, w - 2, h - 2)
    finally:
        painter.restore()


def _paint_scale_bar(painter: QPainter, bar: ScaleBar, mm_per_px: float) -> None:
    pen = QPen(TEXT_COLOR)
    pen.setWidth(1)
    painter.setPen(pen)
    x0, y0 = bar.x0, bar.y0
    painter.drawLine(QPointF(x0, y0), QPointF(x0 + bar.length_px, y0))
    tick_mm = 10 if bar.length_mm >= 20 else (1 if bar.length_mm <= 10 else 5)
    n_ticks = int(bar.length_mm / tick_mm)
    for i in range(n_ticks + 1):
        x = x0 + i * tick_mm / mm_per_px
        tall = 5 if i in (0, n_ticks) else 3
        painter.drawLine(QPointF(x, y0), QPointF(x, y0 - tall))
    painter.drawText(QPointF(x0 + bar.length_px + 4, y0 + 3), bar.label)
