"""Annotations drawn in one 2D view, and the mouse and keys that draw and edit them.

Drawing follows OHIF / Weasis: with a tool chosen, press and drag with the
left button (or click, move, click); an angle takes a third click. Esc
cancels a drawing, and a second Esc goes back to navigation. Click an
annotation to select it, drag it to move it, drag an end point (handle)
to reshape it; Delete / Backspace deletes the selected one; Ctrl+Z / Ctrl+Y
undo / redo. With no tool chosen the left drag stays window/level unless
it starts on an annotation.

Each view shows the annotations drawn on its current slice in its own
orientation in full (value next to them), and where an annotation of
another orientation crosses the slice, the crossing as a dashed chord or a
cross. All positions are patient coordinates (LPS): the view only converts
them to its scene (millimetres in the plane, see ``slice_view``). Values
and the undo stack live in :mod:`viewer.core.annotations`.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem

from viewer.core import measurements as m
from viewer.core.annotations import Annotation, Plane, display_text, measured, new_annotation
from viewer.qt.overlays.tool_state import CLICKS, TOOL_KEYS, ToolState

HANDLE_PX = 7.0
HIT_PX = 6.0
COLOR = QColor(255, 215, 64)
SELECTED = QColor(110, 255, 140)
DRAFT = QColor(120, 200, 255)


def _cosmetic(color: QColor, width: float = 1.5, dashed: bool = False) -> QPen:
    pen = QPen(color)
    pen.setCosmetic(True)
    pen.setWidthF(width)
    if dashed:
        pen.setStyle(Qt.DashLine)
    return pen


class AnnotationOverlay:
    """Draws the session's annotations in one SliceView and turns mouse and keys there into edits."""

    def __init__(self, view, tools: ToolState):
        self.view, self.tools = view, tools
        self.items: list[QGraphicsItem] = []
        self.draft: list[np.ndarray] = []  # points placed so far (LPS)
        self.floating: np.ndarray | None = None  # where the next point would go (follows the mouse)
        self._drag: tuple | None = None  # ("draw",) | ("move", annotation, start LPS) | ("handle", annotation, index)
        self.preview: Annotation | None = None  # the dragged version, shown until the drag ends
        self.drawn: dict[str, list[np.ndarray]] = {}  # id → view (x, y) points of annotations drawn in full here
        annotations = view.session.annotations
        for sig in (annotations.annotation_added, annotations.annotation_changed, annotations.annotation_removed,
                    annotations.annotations_reset):
            sig.connect(self._on_annotations_changed)
        tools.tool_changed.connect(self._on_tool_changed)
        tools.selection_changed.connect(lambda _id: self.redraw())
        view.vb.sigRangeChanged.connect(self._on_range_changed)  # zoom / pan: the values stay inside the view

    @property
    def annotations(self):
        return self.view.session.annotations

    # --- coordinates ----------------------------------------------------------------------------
    def view_plane(self) -> Plane:
        plane = self.view.plane
        normal = plane.geometry.direction_matrix[:, 2 - plane.slice_axis]
        return Plane(tuple(normal), tuple(plane.to_world(self.view.k, 0, 0)))

    def to_view(self, points_lps) -> np.ndarray:
        """``(n, 2)`` scene positions (mm in the plane) of LPS points, projected onto the view."""
        plane = self.view.plane
        idx = plane.geometry.world_to_index(np.asarray(points_lps, float).reshape(-1, 3))
        n_rows, n_cols = plane.shape
        row, col = idx[:, plane.row_axis], idx[:, plane.col_axis]
        row = n_rows - 1 - row if plane.flip_row else row
        col = n_cols - 1 - col if plane.flip_col else col
        row_mm, col_mm = plane.pixel_spacing
        return np.stack([(col + 0.5) * col_mm, (row + 0.5) * row_mm], axis=1)

    def to_world(self, scene_pos) -> np.ndarray:
        """The LPS point on the current slice under a scene position (not clamped to the image)."""
        p = self.view.vb.mapSceneToView(scene_pos)
        row_mm, col_mm = self.view.plane.pixel_spacing
        return self.view.plane.to_world(self.view.k, p.y() / row_mm - 0.5, p.x() / col_mm - 0.5)

    def _mm_per_px(self) -> float:
        return float(self.view.vb.viewPixelSize()[0]) or 1.0

    def _view_xy(self, scene_pos) -> np.ndarray:
        p = self.view.vb.mapSceneToView(scene_pos)
        return np.array([p.x(), p.y()])

    # --- what is shown where ----------------------------------------------------------------------
    def _series_uid(self) -> str:
        volume = self.view.session.volume
        return str(volume.meta.get("series_uid", "")) if volume is not None else ""

    def in_plane(self) -> list[Annotation]:
        """Annotations of this series drawn on the current slice in this orientation (shown in full)."""
        if self.view.plane is None:
            return []
        vp = self.view_plane()
        half = self.view.plane.slice_spacing / 2
        series = self._series_uid()
        out = []
        for a in self.annotations:
            a = self.preview if self.preview is not None and self.preview.id == a.id else a
            if a.series_uid in (series, "") and a.plane.is_parallel(vp.normal) and \
                    abs(float(vp.distance(np.asarray(a.plane.point)))) <= half + 1e-6:
                out.append(a)
        return out

    def crossing(self) -> list[tuple[Annotation, list[np.ndarray]]]:
        """Annotations of other orientations that cross the current slice, with the crossing pieces (LPS)."""
        if self.view.plane is None:
            return []
        vp = self.view_plane()
        half = self.view.plane.slice_spacing / 2
        series = self._series_uid()
        out = []
        for a in self.annotations:
            if a.series_uid not in (series, "") or a.plane.is_parallel(vp.normal):
                continue
            pieces = m.cross_section(a.kind, a.points, vp.normal, vp.point, half)
            if pieces:
                out.append((a, pieces))
        return out

    # --- drawing -------------------------------------------------------------------------------------
    def _add(self, item: QGraphicsItem, z: float = 30) -> QGraphicsItem:
        item.setZValue(z)
        self.view.vb.addItem(item, ignoreBounds=True)
        self.items.append(item)
        return item

    def _path(self, xy: np.ndarray, closed: bool, pen: QPen) -> None:
        path = QPainterPath(QPointF(*xy[0]))
        for x, y in xy[1:]:
            path.lineTo(x, y)
        if closed:
            path.closeSubpath()
        item = QGraphicsPathItem(path)
        item.setPen(pen)
        self._add(item)

    def _pixel_item(self, path: QPainterPath, at, pen: QPen, brush=None, rotation: float = 0.0) -> None:
        """A shape drawn in screen pixels at a scene point (handles, arrow heads, crossing marks)."""
        item = QGraphicsPathItem(path)
        item.setFlag(QGraphicsItem.ItemIgnoresTransformations, True)
        item.setPen(pen)
        if brush is not None:
            item.setBrush(brush)
        item.setPos(QPointF(*at))
        item.setRotation(rotation)
        self._add(item, 31)

    def _shape(self, kind: str, points, color: QColor, width: float = 1.5, dashed: bool = False) -> np.ndarray:
        xy = self.to_view(m.outline(kind, points))
        pen = _cosmetic(color, width, dashed)
        self._path(xy, False, pen)
        if kind == "arrow":
            tip, tail = self.to_view(points)
            head = QPainterPath(QPointF(0, 0))
            head.lineTo(-11, -4.5)
            head.lineTo(-11, 4.5)
            head.closeSubpath()
            angle = math.degrees(math.atan2(tip[1] - tail[1], tip[0] - tail[0]))
            self._pixel_item(head, tip, pen, QBrush(color), angle)
        return xy

    def _text(self, text: str, xy: np.ndarray, color: QColor) -> None:
        """The value next to the shape (right, left, below or above it), inside the view, clear of other values."""
        if not text:
            return
        item = pg.TextItem(text, color=color, anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 150))
        px = self._mm_per_px()
        rect = item.textItem.boundingRect()
        w, h = rect.width() * px, rect.height() * px
        (x0, x1), (y0, y1) = self.view.vb.viewRange()
        gap = 6 * px
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        right, left = xy[int(np.argmax(xy[:, 0]))], xy[int(np.argmin(xy[:, 0]))]
        candidates = [(right[0] + gap, right[1] - h / 2), (left[0] - gap - w, left[1] - h / 2),
                      ((lo[0] + hi[0] - w) / 2, hi[1] + gap), ((lo[0] + hi[0] - w) / 2, lo[1] - gap - h)]

        def inside(x, y):
            x = min(max(x, x0 + gap), x1 - gap - w) if w + 2 * gap < x1 - x0 else x0 + gap
            y = min(max(y, y0 + gap), y1 - gap - h) if h + 2 * gap < y1 - y0 else y0 + gap
            return x, y

        def free(x, y):
            return not any(x < bx + bw and bx < x + w and y < by + bh and by < y + h for bx, by, bw, bh in self._labels)

        spots = [inside(x, y) for x, y in candidates]
        x, y = next((p for p in spots if free(*p)), spots[0])
        for _ in range(20):  # all taken: slide down until clear
            if free(x, y):
                break
            y += h * 0.55
        self._labels.append((x, y, w, h))
        item.setPos(x, y)
        self._add(item, 32)

    def redraw(self) -> None:
        for item in self.items:
            self.view.vb.removeItem(item)
        self.items.clear()
        self.drawn.clear()
        self._labels: list[tuple[float, float, float, float]] = []  # value boxes placed (x, y, w, h, mm)
        if self.view.plane is None or self.view.session.volume is None:
            return
        hu = self.view.session.is_ct
        handle = QPainterPath()
        handle.addRect(QRectF(-HANDLE_PX / 2, -HANDLE_PX / 2, HANDLE_PX, HANDLE_PX))
        for a in self.in_plane():
            selected = a.id == self.tools.selected
            color = SELECTED if selected else COLOR
            self._shape(a.kind, a.points, color, 2.2 if selected else 1.5)
            xy = self.to_view(a.points)
            self.drawn[a.id] = list(xy)
            self._text(display_text(a, hu=hu, lines=True), self.to_view(m.outline(a.kind, a.points)), color)
            if selected:
                for p in xy:
                    self._pixel_item(handle, p, _cosmetic(color, 1.0), None)
        cross = QPainterPath(QPointF(-5, -5))
        cross.lineTo(5, 5)
        cross.moveTo(-5, 5)
        cross.lineTo(5, -5)
        for a, pieces in self.crossing():
            color = SELECTED if a.id == self.tools.selected else COLOR
            for piece in pieces:
                xy = self.to_view(piece)
                if len(xy) == 1:
                    self._pixel_item(cross, xy[0], _cosmetic(color, 1.2))
                else:
                    self._path(xy, False, _cosmetic(color, 1.5, dashed=True))
        self._draw_draft()

    def _draft_points(self) -> tuple[str, np.ndarray] | None:
        pts = list(self.draft) + ([self.floating] if self.floating is not None else [])
        kind = self.tools.tool
        if not kind or len(pts) < 2:
            return None
        if kind in m.ROI_KINDS:
            right, down = self.view.plane.screen_vectors()
            make = m.ellipse_from_corners if kind == "ellipse" else m.rectangle_from_corners
            return kind, make(pts[0], pts[1], right, down)
        if kind == "angle" and len(pts) == 2:
            return "length", np.array(pts)
        return kind, np.array(pts[:m.N_POINTS[kind]])

    def _draw_draft(self) -> None:
        found = self._draft_points()
        if found is None:
            return
        kind, pts = found
        xy = self._shape(kind, pts, DRAFT, 1.5)
        if kind in ("length", "angle") or kind in m.ROI_KINDS:
            volume = self.view.session.volume
            a = measured(Annotation("draft", kind, tuple(map(tuple, pts)), self.view_plane(),
                                    self._series_uid()), volume)
            self._text(display_text(a, hu=self.view.session.is_ct, lines=True), xy, DRAFT)

    # --- events from the session / tool state ------------------------------------------------------------
    def _on_annotations_changed(self, *_args) -> None:
        if self.tools.selected is not None and self.tools.selected not in self.annotations:
            self.tools.select(None)
        if self._drag is not None and self._drag[0] not in ("draw", "paint") and \
                self._drag[1].id not in self.annotations:
            self._drag, self.preview = None, None  # undone under the mouse
        self.redraw()

    def _on_range_changed(self, *_args) -> None:
        if self.items:
            self.redraw()

    def _on_tool_changed(self, name: str) -> None:
        self.cancel_draft()
        self.view.viewport().setCursor(Qt.CrossCursor if name else Qt.ArrowCursor)

    def cancel_draft(self) -> None:
        painter = getattr(self.view, "label_painter", None)
        if painter is not None and painter.stroke is not None:  # a stroke in progress ends (and can be undone)
            painter.end_stroke()
        self.draft, self.floating = [], None
        self._drag = None
        self.preview = None
        self.redraw()

    # --- hit testing ----------------------------------------------------------------------------------------
    def hit(self, scene_pos) -> tuple[str, Annotation, int] | None:
        """("handle", annotation, point index) or ("shape", annotation, -1) under a scene position."""
        if self.view.plane is None:
            return None
        q = self._view_xy(scene_pos)
        tol = HIT_PX * self._mm_per_px()
        shown = self.in_plane()
        # the selected annotation first, then the most recent
        shown.sort(key=lambda a: a.id != self.tools.selected)
        for a in shown[:1] + shown[1:][::-1]:
            xy = self.to_view(a.points)
            d = np.linalg.norm(xy - q, axis=1)
            if d.min() <= tol:
                return "handle", a, int(np.argmin(d))
        for a in shown[:1] + shown[1:][::-1]:
            ring = self.to_view(m.outline(a.kind, a.points))
            if _distance_to_polyline(q, ring) <= tol:
                return "shape", a, -1
        return None

    # --- mouse (called by the view box) --------------------------------------------------------------------------
    def begin_drag(self, press_scene_pos, scene_pos) -> bool:
        """A left drag starts; True if it is an annotation's (draw, move, reshape) rather than window/level."""
        if self.view.plane is None:
            return False
        if self.tools.painting:  # brush / eraser: the view's label painter
            painter = self.view.label_painter
            if not painter.begin(press_scene_pos):
                return False
            self._drag = ("paint",)
            painter.continue_stroke(scene_pos)
            return True
        if self.tools.tool and self.draft:  # click-move-click drawing in progress: the release places the point
            self._drag = ("draw",)
            self.floating = self.to_world(scene_pos)
            self.redraw()
            return True
        found = self.hit(press_scene_pos)
        if found is not None:
            what, a, index = found
            self.tools.select(a.id)
            self._drag = ("handle", a, index) if what == "handle" else ("move", a, self.to_world(press_scene_pos))
            return True
        if self.tools.tool:
            self.draft = [self.to_world(press_scene_pos)]
            self.floating = self.to_world(scene_pos)
            self._drag = ("draw",)
            self.redraw()
            return True
        return False

    def continue_drag(self, scene_pos) -> None:
        if self._drag is None:
            return
        if self._drag[0] == "paint":
            self.view.label_painter.continue_stroke(scene_pos)
            return
        point = self.to_world(scene_pos)
        if self._drag[0] == "draw":
            self.floating = point
        elif self._drag[0] == "move":
            _, a, start = self._drag
            self.preview = measured(a.with_points(m.moved_points(a.points, point - start)),
                                    self.view.session.volume)
        else:
            _, a, index = self._drag
            self.preview = measured(a.with_points(m.with_handle_moved(a.kind, a.points, index, point)),
                                    self.view.session.volume)
        self.redraw()

    def finish_drag(self, scene_pos) -> None:
        if self._drag is None:
            return
        kind = self._drag[0]
        if kind == "paint":
            self._drag = None
            self.view.label_painter.finish(scene_pos)
            return
        self.continue_drag(scene_pos)
        self._drag = None
        if kind == "draw":
            self._place(self.to_world(scene_pos))
            return
        new, self.preview = self.preview, None
        if new is not None and new.id in self.annotations and \
                new.points_lps != self.annotations.get(new.id).points_lps:
            self.annotations.replace(new, "move" if kind == "move" else "reshape")
        else:
            self.redraw()

    def click(self, scene_pos) -> bool:
        """A left click; True if an annotation used it (a point placed, a selection)."""
        if self.view.plane is None:
            return False
        if self.tools.painting:
            return self.view.label_painter.click(scene_pos)
        if self.tools.tool and self.draft:
            self._place(self.to_world(scene_pos))
            return True
        found = self.hit(scene_pos)
        if found is not None:
            self.tools.select(found[1].id)
            return True
        self.tools.select(None)
        if self.tools.tool:
            self.draft = [self.to_world(scene_pos)]
            self.floating = None
            self.redraw()
            return True
        return False

    def hover(self, scene_pos) -> None:
        if self.tools.painting:
            self.view.label_painter.hover(scene_pos)
            return
        if self.tools.tool and self.draft and self._drag is None and self.view.plane is not None:
            self.floating = self.to_world(scene_pos)
            self.redraw()

    def _place(self, point: np.ndarray) -> None:
        """Add a point to the drawing; complete the annotation when it has enough."""
        kind = self.tools.tool
        if self.draft and np.linalg.norm(point - self.draft[-1]) < 1e-6:
            return  # the release of the press that started a click-click drawing
        self.draft.append(point)
        self.floating = None
        if len(self.draft) < CLICKS[kind]:
            self.redraw()
            return
        found = self._draft_points()
        self.draft = []
        if found is None:
            self.redraw()
            return
        _kind, pts = found
        if kind in ("length", "arrow") and m.length_mm(pts) < 1e-3 or \
                kind in m.ROI_KINDS and m.roi_area_mm2(kind, pts) < 1e-6:
            self.redraw()  # a zero-size shape is a slip, not a measurement
            return
        annotation = new_annotation(kind, pts, self.view_plane(), self._series_uid())
        if kind == "arrow":
            self.redraw()
            self.tools.ask_text(self.view, lambda text: self._add_arrow(annotation, text))
            return
        added = self.annotations.add(annotation)
        self.tools.select(added.id)

    def _add_arrow(self, annotation: Annotation, text: str) -> None:
        if text.strip():
            added = self.annotations.add(replace(annotation, label=text.strip()))
            self.tools.select(added.id)

    # --- keys ------------------------------------------------------------------------------------------------
    def handle_key(self, ev) -> bool:
        key, mods = ev.key(), ev.modifiers()
        ctrl = bool(mods & Qt.ControlModifier)
        if ctrl and key == Qt.Key_Z and not mods & Qt.ShiftModifier:
            self.cancel_draft()
            self.annotations.undo()
            return True
        if ctrl and (key == Qt.Key_Y or key == Qt.Key_Z):
            self.cancel_draft()
            self.annotations.redo()
            return True
        if mods & (Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier):
            return False
        if key == Qt.Key_B and mods & Qt.ShiftModifier:  # Shift+B: the eraser (as X)
            self.tools.set_tool("eraser")
            return True
        if key in (Qt.Key_BracketLeft, Qt.Key_BracketRight):  # brush / eraser radius
            self.tools.step_brush(1 if key == Qt.Key_BracketRight else -1)
            self.tools.message.emit(f"Brush radius {self.tools.brush_radius_mm:g} mm")
            return True
        for name, tool_key in TOOL_KEYS.items():
            if key == tool_key:
                self.tools.set_tool(name)
                return True
        if key == Qt.Key_Escape:
            if self.draft or self._drag is not None:
                self.cancel_draft()
            else:
                self.tools.set_tool("")
                self.tools.select(None)
            return True
        if key in (Qt.Key_Delete, Qt.Key_Backspace) and self.tools.selected in self.annotations:
            self.annotations.delete(self.tools.selected)
            return True
        return False


def _distance_to_polyline(q: np.ndarray, xy: np.ndarray) -> float:
    if len(xy) == 1:
        return float(np.linalg.norm(xy[0] - q))
    a, b = xy[:-1], xy[1:]
    ab = b - a
    denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
    t = np.clip(((q - a) * ab).sum(axis=1) / denom, 0, 1)
    nearest = a + t[:, None] * ab
    return float(np.min(np.linalg.norm(nearest - q, axis=1)))
