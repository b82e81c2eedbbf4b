"""Measurements on a 2D image view: drawing them with the shared tools and showing those of the image shown.

The tools are the layout's (:class:`~viewer.qt.overlays.tool_state.ToolState`: the Measure menu, the toolbar,
L / A / E / R / T, Esc); the measurements live in the session's :class:`~viewer.core.annotations.AnnotationSet`
(undo, autosave, JSON, SR, report) with an :class:`~viewer.core.image_ref.ImageRef` naming the image, the frame
and the image's calibration, so each value says what it is ("12.3 mm at detector", "50.0 px (no calibration)").

Length, ellipse and rectangle: a drag from one end (corner) to the other. Angle: a drag along the first arm to
the vertex, then a click at the end of the second arm. Text arrow: a drag from the tip to the tail, then its
text. A click near a measurement selects it (Delete removes it, Ctrl+Z brings it back).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF

from viewer.core import measurements as m
from viewer.core.annotations import display_text, new_image_annotation
from viewer.core.image_ref import ImageRef

_COLOUR, _SELECTED = (255, 220, 60), (80, 200, 255)
_PICK_PX = 8.0  # screen pixels


class PlanarAnnotations:
    def __init__(self, view, tools, annotations):
        self.view, self.tools, self.annotations = view, tools, annotations
        self._items: list = []
        self._pending: np.ndarray | None = None  # an angle's first arm, waiting for the third point
        for signal in (annotations.annotation_added, annotations.annotation_changed,
                       annotations.annotation_removed):
            signal.connect(self._changed)
        annotations.annotations_reset.connect(self.redraw)
        if tools is not None:
            tools.selection_changed.connect(self._selection)
            tools.tool_changed.connect(self._cancel)
        self.connected = True

    def disconnect(self) -> None:
        """Stop following the annotations and the tools (the view is going away)."""
        if not self.connected:
            return
        self.connected = False
        for signal in (self.annotations.annotation_added, self.annotations.annotation_changed,
                       self.annotations.annotation_removed):
            signal.disconnect(self._changed)
        self.annotations.annotations_reset.disconnect(self.redraw)
        if self.tools is not None:
            self.tools.selection_changed.disconnect(self._selection)
            self.tools.tool_changed.disconnect(self._cancel)

    def _selection(self, _ident) -> None:
        self.redraw()

    @property
    def tool(self) -> str:
        return self.tools.tool if self.tools is not None else ""

    def ref(self) -> ImageRef | None:
        image = self.view.current
        return None if image is None else ImageRef.of(image.display, self.view.frame + 1)

    def shown(self) -> list:
        """The measurements of the image and frame on screen."""
        ref = self.ref()
        return [] if ref is None else self.annotations.for_image(ref.sop_instance_uid, ref.frame)

    # --- drawing a new one -----------------------------------------------------------------------------
    def add(self, kind: str, points_xy, label: str = ""):
        """Add a measurement on the image shown, from (column, row) points; returns the stored annotation."""
        ref = self.ref()
        if ref is None:
            return None
        series_uid = str(self.view.series.meta.get("series_uid", "")) if self.view.series is not None else ""
        return self.annotations.add(new_image_annotation(kind, points_xy, ref, series_uid, label))

    def drag(self, start_scene, end_scene, finished: bool) -> None:
        kind = self.tool
        a, b = self._xy(start_scene), self._xy(end_scene)
        if kind in ("length", "arrow"):
            points = np.array([a, b])
        elif kind == "angle":
            points = np.array([a, b])
        elif kind == "ellipse":
            points = m.ellipse_from_corners((*a, 0), (*b, 0), (1, 0, 0), (0, 1, 0))[:, :2]
        elif kind == "rectangle":
            points = m.rectangle_from_corners((*a, 0), (*b, 0), (1, 0, 0), (0, 1, 0))[:, :2]
        else:
            return
        self._preview(np.vstack([points, points[:1]]) if kind in m.ROI_KINDS else points)
        if not finished or np.hypot(*(b - a)) < 1.0:
            return
        if kind == "angle":
            self._pending = points
            return
        if kind == "arrow":
            def done(text: str) -> None:
                self.add("arrow", points, text)

            self.tools.ask_text(self.view, done)
            return
        self.add(kind, points)

    def click(self, scene_pos) -> bool:
        """An angle's third point, or a selection; True when the click was used."""
        xy = self._xy(scene_pos)
        if self._pending is not None and self.tool == "angle":
            first_arm, self._pending = self._pending, None
            self.add("angle", np.vstack([first_arm, [xy]]))
            return True
        hit = self._hit(scene_pos)
        if self.tools is not None:
            self.tools.select(hit)
        return hit is not None

    def _cancel(self, _tool: str = "") -> None:
        self._pending = None
        self.redraw()

    # --- showing ------------------------------------------------------------------------------------
    def _changed(self, annotation) -> None:
        if annotation.image is not None:
            self.redraw()

    def redraw(self) -> None:
        vb = self.view.vb
        for item in self._items:
            vb.removeItem(item)
        self._items = []
        if self.view.current is None:
            return
        selected = self.tools.selected if self.tools is not None else None
        for a in self.shown():
            colour = _SELECTED if a.id == selected else _COLOUR
            line = m.outline(a.kind, a.points)[:, :2]
            curve = pg.PlotCurveItem(*self._scene(line), pen=pg.mkPen(colour, width=2))
            curve.setZValue(20)
            vb.addItem(curve)
            self._items.append(curve)
            text = display_text(a, hu=False)
            if text:
                if a.kind in m.ROI_KINDS:  # under the shape, centred
                    xs, ys = self._scene(line)
                    x, y, anchor = [sum(xs) / len(xs)], [max(ys)], (0.5, 0)
                else:  # at the end point, on the side that keeps it inside the view
                    x, y = self._scene(line[-1:])
                    (x0, x1), _ = self.view.vb.viewRange()
                    anchor = (1 if x[0] > (x0 + x1) / 2 else 0, 1)
                label = pg.TextItem(text, color=colour, anchor=anchor)
                label.setZValue(21)
                label.setPos(x[0], y[0])
                vb.addItem(label)
                self._items.append(label)

    def _preview(self, points_xy) -> None:
        self.view.line_item.setData(*self._scene(points_xy))

    def clear_preview(self) -> None:
        self.view.line_item.setData([], [])

    # --- coordinates -----------------------------------------------------------------------------------
    def _xy(self, scene_pos) -> np.ndarray:
        p = self.view.image_item.mapFromScene(scene_pos)
        return np.array([p.x() - 0.5, p.y() - 0.5])  # pixel centres: pixel (0, 0) spans 0 … 1

    def _scene(self, points_xy) -> tuple[list, list]:
        pts = [self.view.image_item.mapToParent(QPointF(x + 0.5, y + 0.5)) for x, y in np.asarray(points_xy)]
        return [p.x() for p in pts], [p.y() for p in pts]

    def _hit(self, scene_pos) -> str | None:
        view = self.view
        click = view.mapFromScene(scene_pos)
        best, best_d = None, _PICK_PX
        for a in self.shown():
            xs, ys = self._scene(m.outline(a.kind, a.points)[:, :2])
            screen = np.array([[q.x(), q.y()] for q in (view.mapFromScene(view.vb.mapViewToScene(QPointF(x, y)))
                                                        for x, y in zip(xs, ys))])
            d = _distance_to_polyline(np.array([click.x(), click.y()]), screen)
            if d < best_d:
                best, best_d = a.id, d
        return best


def _distance_to_polyline(p: np.ndarray, line: np.ndarray) -> float:
    if len(line) == 1:
        return float(np.linalg.norm(p - line[0]))
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
    return float(np.min(np.linalg.norm(a + t[:, None] * ab - p, axis=1)))
