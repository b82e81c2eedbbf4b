"""One 2D image of a radiograph, mammogram, ultrasound, nuclear medicine or cine series, drawn with pyqtgraph.

Pixels go through :mod:`viewer.core.grayscale` (the DICOM display pipeline: bone bright on every radiograph);
letters come from the file (:mod:`viewer.io.planar_header`) and move with a flip; distances use the image's
own calibration and say which ("mm at detector", "px" …); a scale bar shows only where the image is
calibrated. Keys: wheel / Up / Down next and previous image (or frame of a cine), Left / Right frame step,
C play / pause at the acquired rate, I invert, H flip left–right, O overlay planes, S display shutter,
the measuring tools L / A / E / R / T (Esc back; :mod:`viewer.qt.overlays.planar_annotations`), Delete,
Space reset, F12 corner text, Shift+F12 patient data, 0 the file's first VOI, 1–9 the file's other VOIs.

Scene units are image pixels (x = column, y = row × row spacing / column spacing, so non-square pixels keep
their aspect).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace as dc_replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QFontMetricsF, QPainter, QPen, QTransform

from viewer.core import grayscale
from viewer.core.hanging import flipped_letters
from viewer.io.planar_header import VoiPreset
from viewer.qt.overlays.planar_annotations import PlanarAnnotations
from viewer.qt.views.corner_layout import layout_foreground, scale_bar, text_rect
from viewer.qt.views.planar_text import planar_corner_lines
from viewer.qt.views.slice_foreground import (
    ACTIVE_COLOR,
    LETTER_COLOR,
    TEXT_COLOR,
    WARNING_COLOR,
    foreground_font,
    shadow_text,
)

MEASURING_TOOLS = ("length", "angle", "ellipse", "rectangle", "arrow")
_TOOL_KEYS = {Qt.Key_L: "length", Qt.Key_A: "angle", Qt.Key_E: "ellipse", Qt.Key_R: "rectangle", Qt.Key_T: "arrow"}


class _PlanarViewBox(pg.ViewBox):
    def __init__(self, view: "PlanarView"):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.0)
        self._view = view

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        ev.accept()
        delta = ev.pos() - ev.lastPos()
        if ev.button() == Qt.LeftButton:
            if self._view.tool in MEASURING_TOOLS:
                self._view.measurements.drag(ev.buttonDownScenePos(), ev.scenePos(), ev.isFinish())
            else:
                self._view.drag_window(delta.x(), delta.y())
        elif ev.button() == Qt.MiddleButton:
            self._view.fitted = False
            shift = self.mapToView(ev.lastPos()) - self.mapToView(ev.pos())
            self.translateBy(x=shift.x(), y=shift.y())
        elif ev.button() == Qt.RightButton:
            self._view.fitted = False
            factor = math.exp(delta.y() * 0.01)
            self.scaleBy((factor, factor), center=self.mapToView(ev.buttonDownPos()))

    def mouseClickEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.LeftButton and self._view.measurements.click(ev.scenePos()):
            ev.accept()
        else:
            ev.ignore()

    def wheelEvent(self, ev, axis=None):  # noqa: N802
        ev.accept()
        steps = ev.delta() / 120.0 if hasattr(ev, "delta") else ev.angleDelta().y() / 120.0
        if ev.modifiers() & Qt.ControlModifier:
            self._view.fitted = False
            self.scaleBy((0.85 ** steps,) * 2, center=self.mapToView(ev.pos()))
        elif steps:
            self._view.step(-(int(round(steps)) or (1 if steps > 0 else -1)))


class PlanarView(pg.GraphicsView):
    """Shows ``series.images[image]`` frame ``frame``; ``position_changed`` after every image or frame change."""

    activated = Signal(object)
    position_changed = Signal(int, int)  # image, frame

    def __init__(self, session, parent=None, tools=None):
        super().__init__(parent)
        self.session = session
        self.tools = tools  # the layout's measuring tools (ToolState), shared with the Measure menu and toolbar
        self.setBackground("k")
        self.setMinimumSize(120, 120)
        self.setFocusPolicy(Qt.StrongFocus)
        self.vb = _PlanarViewBox(self)
        self.setCentralItem(self.vb)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(5)
        self.vb.addItem(self.image_item)
        self.vb.addItem(self.overlay_item)
        self.line_item = pg.PlotCurveItem(pen=pg.mkPen((255, 220, 60), width=2))
        self.line_item.setZValue(10)
        self.vb.addItem(self.line_item)
        self.series = None
        self.image, self.frame = 0, 0
        self.flip_h = False
        self.show_overlays = True
        self.show_shutter = True
        self.active = False
        self.fitted = True
        self.voi: VoiPreset | None = None
        self._table = None
        self.measurements = PlanarAnnotations(self, tools, session.annotations)
        self._cine = QTimer(self)
        self._cine.setSingleShot(True)
        self._cine.setTimerType(Qt.PreciseTimer)
        self._cine.timeout.connect(self._cine_tick)
        self._cine_due = 0.0
        self.frames_shown = 0
        self.frames_dropped = 0

    # --- what is shown -----------------------------------------------------------------------------------------
    def set_series(self, series, image: int = 0, flip_h: bool = False) -> None:
        self.stop_cine()
        self.series, self.image, self.frame, self.flip_h = series, max(0, image), 0, flip_h
        self.line_item.setData([], [])
        self._select_image()
        self.fitted = True
        self.reset_view()

    def clear(self) -> None:
        self.stop_cine()
        self.measurements.clear_preview()
        self.series = None
        self.image_item.clear()
        self.overlay_item.clear()
        self.line_item.setData([], [])
        self.measurements.redraw()
        self.viewport().update()

    def close(self) -> bool:
        """pyqtgraph's close clears the scene (its items are deleted): drop the series first, so nothing queued
        (a refit after a resize, a cine frame) touches them afterwards."""
        self.clear()
        self.measurements.disconnect()
        return super().close()

    @property
    def invert(self) -> bool:
        """The user's Invert (View → Invert, the toolbar, I): on top of the file's own polarity."""
        return self.session.invert

    @property
    def current(self):
        return None if self.series is None else self.series.images[self.image]

    def _select_image(self) -> None:
        image = self.current
        self.voi = grayscale.default_voi(image)
        self._table = None
        rows, cols = image.shape
        spacing = image.display.calibration.spacing_mm
        aspect = spacing[0] / spacing[1] if spacing else 1.0
        transform = QTransform()
        if self.flip_h:
            transform.translate(cols, 0)
            transform.scale(-1, aspect)
        else:
            transform.scale(1, aspect)
        self.image_item.setTransform(transform)
        self.overlay_item.setTransform(transform)
        self._render()

    def _render(self) -> None:
        image = self.current
        if image is None:
            return
        if self._table is None and not image.is_color:
            lo, hi = image.stored_range
            if np.issubdtype(image.frames.dtype, np.integer) and hi - lo < (1 << 16):
                self._table = grayscale.display_table(image, self.voi, self.invert)
        shown = grayscale.render(image, self.frame, self.voi, self.invert, self.show_shutter, self._table)
        self.image_item.setImage(shown, autoLevels=False, levels=(0, 255))
        self._render_overlays(image)
        self.measurements.redraw()
        self.position_changed.emit(self.image, self.frame)
        self.viewport().update()

    def _render_overlays(self, image) -> None:
        groups = image.display.overlay_groups if self.show_overlays else ()
        if not groups:
            self.overlay_item.clear()
            return
        rgba = np.zeros(image.shape + (4,), dtype=np.uint8)
        for group in groups:
            mask = image.overlay(group)
            if mask is not None:
                rgba[mask] = (255, 255, 80, 230)
        self.overlay_item.setImage(rgba, autoLevels=False, levels=(0, 255))

    def scene_to_pixel(self, scene_pos) -> tuple[float, float]:
        """(row, col) of the image pixel under a scene position."""
        p = self.image_item.mapFromScene(scene_pos)
        return float(p.y()), float(p.x())

    # --- navigation ------------------------------------------------------------------------------------------
    def positions(self) -> list[tuple[int, int]]:
        """Every (image, frame) in scroll order: a stack image by image, a cine frame by frame."""
        if self.series is None:
            return []
        return [(i, f) for i, im in enumerate(self.series.images) for f in range(im.n_frames)]

    def show_position(self, image: int, frame: int) -> None:
        if self.series is None:
            return
        image = int(np.clip(image, 0, len(self.series.images) - 1))
        frame = int(np.clip(frame, 0, self.series.images[image].n_frames - 1))
        changed_image = image != self.image
        self.image, self.frame = image, frame
        if changed_image:
            self.line_item.setData([], [])
            self._select_image()
        else:
            self._render()

    def step(self, n: int) -> None:
        """Next (n > 0) or previous image of a stack, frame of a cine."""
        positions = self.positions()
        if not positions:
            return
        k = positions.index((self.image, self.frame)) + n
        self.show_position(*positions[int(np.clip(k, 0, len(positions) - 1))])

    def step_frame(self, n: int) -> None:
        image = self.current
        if image is not None:
            self.show_position(self.image, (self.frame + n) % image.n_frames)

    def drag_window(self, dx: float, dy: float) -> None:
        image = self.current
        if image is None or image.is_color:
            return
        voi = self.voi if self.voi is not None and self.voi.width else grayscale.full_range_voi(image)
        scale = max(voi.width, 1.0) / 300.0
        width, center = max(1.0, voi.width + dx * scale), voi.center - dy * scale
        self.set_voi(VoiPreset("", center, width, voi.function if voi.lut_index is None else "LINEAR"))

    def set_voi(self, voi: VoiPreset) -> None:
        self.voi = voi
        self._table = None
        self._render()

    def set_voi_index(self, k: int) -> None:
        choices = grayscale.voi_choices(self.current) if self.current is not None else []
        if 0 <= k < len(choices):
            self.set_voi(choices[k])

    def reset_view(self) -> None:
        image = self.current
        if image is None:
            return
        self.fitted = True
        self.vb.setRange(self.image_item.mapRectToParent(self.image_item.boundingRect()), padding=0.0)
        self.viewport().update()

    def toggle_flip(self) -> None:
        self.flip_h = not self.flip_h
        self._select_image()
        self.reset_view()

    # --- cine ---------------------------------------------------------------------------------------------
    @property
    def cine_running(self) -> bool:
        return self._cine.isActive()

    def toggle_cine(self) -> None:
        if self.cine_running:
            self.stop_cine()
        elif self.current is not None and (self.current.n_frames > 1 or len(self.series.images) > 1):
            self.frames_shown = self.frames_dropped = 0
            self._cine_due = time.perf_counter()
            self._cine_tick()

    def stop_cine(self) -> None:
        self._cine.stop()

    def frame_interval_s(self) -> float:
        image = self.current
        ms = grayscale.frame_interval_ms(image.display, self.frame) if image is not None else None
        return (ms or 100.0) / 1000.0  # no rate in the file: 10 frames/s, and the corner says so

    def _cine_tick(self) -> None:
        """Show the frame due now; frames whose time has passed are dropped (counted), so time stays true."""
        image = self.current
        if image is None:
            return
        now = time.perf_counter()
        interval = self.frame_interval_s()
        late = int((now - self._cine_due) // interval) if now > self._cine_due + interval else 0
        self.frames_dropped += late
        if image.n_frames > 1:
            self.show_position(self.image, (self.frame + 1 + late) % image.n_frames)
        else:
            self.show_position((self.image + 1) % len(self.series.images), 0)
        self.frames_shown += 1
        self._cine_due += (late + 1) * interval
        self._cine.start(max(0, int(round((self._cine_due - time.perf_counter()) * 1000))))

    # --- measuring ---------------------------------------------------------------------------------------
    @property
    def tool(self) -> str:
        return self.tools.tool if self.tools is not None else ""

    def set_tool(self, tool: str) -> None:
        if self.tools is not None:
            self.tools.set_tool(tool)
        self.setCursor(Qt.CrossCursor if tool else Qt.ArrowCursor)

    # --- Qt events ---------------------------------------------------------------------------------------------
    def mousePressEvent(self, ev):  # noqa: N802
        self.activated.emit(self)
        super().mousePressEvent(ev)

    def keyPressEvent(self, ev):  # noqa: N802
        key, shift = ev.key(), bool(ev.modifiers() & Qt.ShiftModifier)
        actions = {
            Qt.Key_Down: lambda: self.step(10 if shift else 1), Qt.Key_Up: lambda: self.step(-10 if shift else -1),
            Qt.Key_Right: lambda: self.step_frame(1), Qt.Key_Left: lambda: self.step_frame(-1),
            Qt.Key_Home: lambda: self.show_position(0, 0), Qt.Key_C: self.toggle_cine, Qt.Key_Space: self.reset_view,
            Qt.Key_I: self._toggle_invert, Qt.Key_H: self.toggle_flip, Qt.Key_O: self._toggle_overlays,
            Qt.Key_S: self._toggle_shutter, Qt.Key_Escape: lambda: self.set_tool(""),
            Qt.Key_Delete: self._delete_selected,
        }
        actions.update({k: (lambda name=name: self.set_tool(name)) for k, name in _TOOL_KEYS.items()})
        if key == Qt.Key_F12:
            if shift:
                self.session.set_display(show_patient_data=not self.session.show_patient_data)
            else:
                self.session.set_display(show_corner_text=not self.session.show_corner_text)
        elif Qt.Key_0 <= key <= Qt.Key_9:
            self.set_voi_index(key - Qt.Key_0)
        elif key in actions:
            actions[key]()
        else:
            super().keyPressEvent(ev)

    def _delete_selected(self) -> None:
        selected = self.tools.selected if self.tools is not None else None
        if selected in self.session.annotations:
            self.session.annotations.delete(selected)
            self.tools.select(None)

    def _toggle_invert(self) -> None:
        self.session.set_display(invert=not self.session.invert)

    def display_changed(self) -> None:
        """The session's display options changed (Invert, corner text): redraw."""
        self._table = None
        self._render()

    def _toggle_overlays(self) -> None:
        self.show_overlays = not self.show_overlays
        self._render()

    def _toggle_shutter(self) -> None:
        self.show_shutter = not self.show_shutter
        self._render()

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        if getattr(self, "fitted", False):
            QTimer.singleShot(0, self, self.reset_view)  # with the view as context: never after it is deleted

    # --- foreground: corner text, letters, scale bar, measurement -----------------------------------------
    def corner_texts(self) -> dict[str, list[str]]:
        return planar_corner_lines(self)

    def edge_letters(self) -> dict | None:
        image = self.current
        return flipped_letters(image.display.orientation, self.flip_h) if image is not None else None

    def scale_bar(self, fm):
        """The scale bar, only on a calibrated image (never in pixels, never on an ultrasound image, whose
        calibration holds inside its region only); its label says what the millimetres are."""
        image = self.current
        cal = image.display.calibration if image is not None else None
        if cal is None or cal.spacing_mm is None or cal.region is not None:
            return None
        px_per_view = self.vb.viewPixelSize()[0]  # image columns per screen pixel
        viewport = self.viewport()
        bar = scale_bar(fm, viewport.width(), viewport.height(), px_per_view * cal.spacing_mm[1])
        if bar is None or cal.source == "PixelSpacing":
            return bar
        label = bar.label + (" at detector" if cal.source == "ImagerPixelSpacing" else " (÷ magnification)")
        rect = bar.rect.united(text_rect(fm, bar.x0 + bar.length_px + 4, bar.y0 + 3, label))
        return dc_replace(bar, label=label, rect=rect)

    def foreground_items(self, fm=None) -> list:
        """Every text painted over the image, placed so that none overlaps another (corner_layout)."""
        if self.current is None:
            return []
        fm = fm or QFontMetricsF(foreground_font())
        corners = dict(self.corner_texts()) if self.session.show_corner_text else {}
        letters = self.edge_letters()
        if not letters:
            corners["warnings"] = ["orientation not given"] + list(corners.get("warnings", []))
        viewport = self.viewport()
        return layout_foreground(fm, viewport.width(), viewport.height(), corners, letters or {}, self.scale_bar(fm))

    def drawForeground(self, painter: QPainter, rect) -> None:  # noqa: N802
        if self.current is None:
            return
        font = foreground_font()
        painter.save()
        try:
            painter.resetTransform()
            painter.setFont(font)
            fm = QFontMetricsF(font)
            for item in self.foreground_items(fm):
                color = (LETTER_COLOR if item.kind == "letter" else WARNING_COLOR if item.kind == "warnings"
                         else TEXT_COLOR)
                shadow_text(painter, item.x, item.baseline, item.text, color)
            bar = self.scale_bar(fm)
            if bar is not None:
                painter.setPen(QPen(TEXT_COLOR))
                painter.drawLine(QPointF(bar.x0, bar.y0), QPointF(bar.x0 + bar.length_px, bar.y0))
                for x in (bar.x0, bar.x0 + bar.length_px):
                    painter.drawLine(QPointF(x, bar.y0), QPointF(x, bar.y0 - 5))
                painter.drawText(QPointF(bar.x0 + bar.length_px + 4, bar.y0 + 3), bar.label)
            if self.active:
                w, h = self.viewport().width(), self.viewport().height()
                pen = QPen(ACTIVE_COLOR)
                pen.setWidth(2)
                painter.setPen(pen)
                painter.drawRect(1, 1, w - 2, h - 2)
        finally:
            painter.restore()
