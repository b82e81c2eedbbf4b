"""A slice drawn into a ``QImage`` without any window: image, label overlays, markers, orientation letters, scale bar.

For exports made with no view on screen (the PDF report, ``radview-cli export report``):
the same slicing (``viewer.core.slicing.SlicePlane``: radiological orientation)
and label colours (``viewer.core.layers.render_labels``: each layer's colours,
opacity, outline mode and hidden labels) as the reading views, window/level
applied here. Only ``QImage`` and ``QPainter`` are used, so it runs under Qt's
offscreen platform and on worker threads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen

from viewer.core.layers import LabelLayer, Marker, render_labels
from viewer.core.slicing import SlicePlane
from viewer.io.volume import Volume

LETTER_COLOR = QColor(255, 190, 80)  # as in the reading views
TEXT_COLOR = QColor(235, 235, 235)


@dataclass(frozen=True)
class SliceRequest:
    view: str = "axial"  # axial | coronal | sagittal
    slice_index: int | None = None  # None: the slice through ``center_lps`` (or the middle one)
    center_lps: tuple[float, float, float] | None = None  # also the centre of a crop
    crop_mm: float | None = None  # a square of this side around ``center_lps`` (None: the whole slice)
    size: tuple[int, int] = (800, 640)  # pixels (width, height)
    width: float = 400.0  # window
    level: float = 40.0
    letters: bool = True
    scale_bar: bool = True
    font_px: int | None = None  # letters, marker text, scale bar; None: 1/32 of the width


def window_to_uint8(values: np.ndarray, width: float, level: float) -> np.ndarray:
    lo = level - width / 2.0
    out = (np.asarray(values, dtype=np.float32) - lo) * (255.0 / max(float(width), 1e-6))
    return np.clip(out, 0, 255).astype(np.uint8)


def slice_rgb(volume: Volume, plane: SlicePlane, k: int, width: float, level: float,
              layers: list[LabelLayer] = ()) -> np.ndarray:
    """``(rows, cols, 3)`` uint8: the windowed slice with the label layers blended over it, as the views show them."""
    img = plane.extract(volume.array, k)
    if img.ndim == 3:  # colour series: shown as stored
        rgb = np.ascontiguousarray(img[..., :3]).astype(np.float32)
    else:
        grey = window_to_uint8(img, width, level).astype(np.float32)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    for layer in layers:
        if not layer.visible:
            continue
        rgba = render_labels(layer, plane.extract(layer.label_map.array, k)).astype(np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgb * (1.0 - alpha) + rgba[..., :3] * alpha
    return np.ascontiguousarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))


def _qimage(rgb: np.ndarray) -> QImage:
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


def _shadow_text(painter: QPainter, x: float, y: float, text: str, color: QColor) -> None:
    painter.setPen(QColor(0, 0, 0))
    painter.drawText(QPointF(x + 1, y + 1), text)
    painter.setPen(color)
    painter.drawText(QPointF(x, y), text)


def render_slice(volume: Volume, req: SliceRequest, layers: list[LabelLayer] = (),
                 markers: list[Marker] = ()) -> tuple[QImage, int]:
    """The slice as a ``req.size`` RGB image (black around it) and the slice number drawn."""
    plane = SlicePlane.for_view(req.view, volume.geometry)
    if req.slice_index is not None:
        k = int(np.clip(req.slice_index, 0, plane.n_slices - 1))
    elif req.center_lps is not None:
        k = plane.slice_of(req.center_lps)
    else:
        k = plane.n_slices // 2
    picture = _qimage(slice_rgb(volume, plane, k, req.width, req.level, layers))
    rows, cols = plane.shape
    row_mm, col_mm = plane.pixel_spacing
    # the part of the slice shown, in mm of the plane (x right, y down; pixel centres at (i + 0.5) * spacing)
    if req.crop_mm and req.center_lps is not None:
        _k, r, c = plane.from_world(req.center_lps)
        cx, cy = (c + 0.5) * col_mm, (r + 0.5) * row_mm
        half = req.crop_mm / 2.0
        src_mm = QRectF(cx - half, cy - half, 2 * half, 2 * half)
    else:
        src_mm = QRectF(0, 0, cols * col_mm, rows * row_mm)
    out_w, out_h = int(req.size[0]), int(req.size[1])
    px_per_mm = min(out_w / src_mm.width(), out_h / src_mm.height())
    shown_w, shown_h = src_mm.width() * px_per_mm, src_mm.height() * px_per_mm
    ox, oy = (out_w - shown_w) / 2.0, (out_h - shown_h) / 2.0

    def to_px(x_mm: float, y_mm: float) -> QPointF:
        return QPointF(ox + (x_mm - src_mm.left()) * px_per_mm, oy + (y_mm - src_mm.top()) * px_per_mm)

    image = QImage(out_w, out_h, QImage.Format_RGB32)
    image.fill(QColor(0, 0, 0))
    painter = QPainter(image)
    try:
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setRenderHint(QPainter.SmoothPixmapTransform, True)
        target = QRectF(ox, oy, shown_w, shown_h)
        source = QRectF(src_mm.left() / col_mm, src_mm.top() / row_mm, src_mm.width() / col_mm,
                        src_mm.height() / row_mm)
        painter.setClipRect(target)
        painter.drawImage(target, picture, source)
        font = QFont()
        font_px = int(req.font_px or max(12, round(out_w / 32)))
        font.setPixelSize(font_px)
        painter.setFont(font)
        right, down = plane.screen_vectors()
        normal = np.cross(right, down)
        for marker in markers:
            mk, r, c = plane.from_world(marker.center_lps)
            dist = abs(mk - k) * plane.slice_spacing
            size = np.asarray(marker.size_mm, dtype=float)
            half_depth = float(np.abs(normal) @ size) / 2.0
            if dist > half_depth + 1e-6:
                continue
            radius_mm = max(math.sqrt(max(half_depth ** 2 - dist ** 2, 0.0)), 1.5 * max(row_mm, col_mm))
            centre = to_px((c + 0.5) * col_mm, (r + 0.5) * row_mm)
            radius = radius_mm * px_per_mm + 3
            pen = QPen(QColor(*marker.color))
            pen.setWidthF(max(2.0, font_px / 8))
            painter.setPen(pen)
            painter.setBrush(Qt.NoBrush)
            painter.drawEllipse(centre, radius, radius)
            label = (marker.text.split(" ")[0] if marker.text else "") + (
                f" {marker.score:.2f}" if marker.score is not None else "")
            if label.strip():
                fm = painter.fontMetrics()
                _shadow_text(painter, centre.x() - fm.horizontalAdvance(label.strip()) / 2,
                             centre.y() - radius - 4, label.strip(), QColor(*marker.color))
        painter.setClipping(False)
        fm = painter.fontMetrics()
        margin = 6
        if req.letters:
            for edge, text in plane.edge_letters().items():
                tw = fm.horizontalAdvance(text)
                if edge == "left":
                    x, y = margin, out_h / 2 + fm.ascent() / 2
                elif edge == "right":
                    x, y = out_w - margin - tw, out_h / 2 + fm.ascent() / 2
                elif edge == "top":
                    x, y = (out_w - tw) / 2, margin + fm.ascent()
                else:
                    x, y = (out_w - tw) / 2, out_h - margin - fm.descent() - 3 * fm.height() / 4
                _shadow_text(painter, x, y, text, LETTER_COLOR)
        if req.scale_bar:
            _scale_bar(painter, out_w, out_h, px_per_mm, max(1.5, font_px / 10))
    finally:
        painter.end()
    return image, k


def _scale_bar(painter: QPainter, w: int, h: int, px_per_mm: float, line_px: float = 1.5) -> None:
    target_mm = w * 0.25 / px_per_mm
    length_mm = max((n for n in (1, 2, 5, 10, 20, 50, 100, 200, 500) if n <= target_mm), default=None)
    if length_mm is None:
        return
    length_px = length_mm * px_per_mm
    x0, y0 = (w - length_px) / 2.0, h - 4.0 - 3 * line_px
    pen = QPen(TEXT_COLOR)
    pen.setWidthF(line_px)
    painter.setPen(pen)
    painter.drawLine(QPointF(x0, y0), QPointF(x0 + length_px, y0))
    tick_mm = 10 if length_mm >= 20 else (1 if length_mm <= 10 else 5)
    n_ticks = int(length_mm / tick_mm)
    for i in range(n_ticks + 1):
        x = x0 + i * tick_mm * px_per_mm
        painter.drawLine(QPointF(x, y0), QPointF(x, y0 - line_px * (5 if i in (0, n_ticks) else 3)))
    label = f"{length_mm // 10} cm" if length_mm >= 10 else f"{length_mm} mm"
    painter.drawText(QPointF(x0 + length_px + 6, y0 + 4), label)
