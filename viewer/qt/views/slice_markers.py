"""A marker layer's markers in a slice view: a circle (a sphere's cut) or a box, with its text and review state.

Scene units are millimetres in the view's plane (``slice_view``); a marker shows on the slices its sphere or box
reaches, in any plane, oblique ones included.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsRectItem

from viewer.core import review

REJECTED_COLOR = (150, 150, 150)


def marker_items(plane, k: int, marker, state: str | None = None) -> list:
    """The graphics items (in plane mm) of ``marker`` on slice ``k`` of ``plane``; none where it does not reach."""
    mk, row, col = plane.from_world(marker.center_lps)
    dist = abs(mk - k) * plane.slice_spacing
    right, down = plane.screen_vectors()
    size = np.asarray(marker.size_mm, dtype=float)
    normal = np.cross(right, down)
    half_depth = float(np.abs(normal) @ size) / 2
    if dist > half_depth + 1e-6:
        return []
    row_mm, col_mm = plane.pixel_spacing
    cx, cy = (col + 0.5) * col_mm, (row + 0.5) * row_mm
    color = REJECTED_COLOR if state == review.REJECTED else marker.color
    pen = QPen(QColor(*color))
    pen.setCosmetic(True)
    pen.setWidthF(1.5)
    if state == review.REJECTED:
        pen.setStyle(Qt.DashLine)
    if marker.kind == "box":
        w, h = float(np.abs(right) @ size), float(np.abs(down) @ size)
        item = QGraphicsRectItem(QRectF(cx - w / 2, cy - h / 2, w, h))
        top = cy - h / 2
    else:
        radius = math.sqrt(max(half_depth ** 2 - dist ** 2, 0.0))
        radius = max(radius, 1.5 * max(row_mm, col_mm))
        item = QGraphicsEllipseItem(QRectF(cx - radius, cy - radius, 2 * radius, 2 * radius))
        top = cy - radius
    item.setPen(pen)
    item.setZValue(15)
    items = [item]
    label = marker.text + (f" {marker.score:.2f}" if marker.score is not None else "")
    if state in review.STATES and label.strip():
        label = ("✓ " if state == review.ACCEPTED else "✗ ") + label.strip()
    if label.strip():
        text = pg.TextItem(label.strip(), color=color, anchor=(0.5, 1.0))
        text.setPos(cx, top)
        text.setZValue(16)
        items.append(text)
    return items
