"""One 2D reading view (axial, coronal or sagittal) of the session's volume, drawn with pyqtgraph.

Mouse and keys follow ``shared/CONVENTIONS.md``: wheel / Up / Down scroll
(Shift ×10, Home / End), left-drag window/level, middle-drag pan, right-drag
or Ctrl+wheel zoom, Shift+move or Shift+click moves the linked cursor, keys
0-8 window presets, Space reset, I invert, C cine, F12 corner text,
Shift+F12 patient data, G overlays, H crosshair, double-click maximise. Measuring tools
(L, A, E, R, T, Esc; Delete; Ctrl+Z / Ctrl+Y) are ``annotation_tools``: a left
drag that starts on an annotation or with a tool chosen is theirs; with the
brush (B) or eraser (X, Shift+B) chosen it paints the active label
(``label_brush``; ``[`` / ``]`` radius). AI markers show their review state:
accepted ones with ✓, rejected ones grey and dashed with ✗; a rejected AI
label map is drawn grey.

"Next image" (Down, wheel down) goes to the next InstanceNumber in the
plane the series was acquired in, and toward I / P / L in reformats
(``viewer.core.slicing.ImageNumbers``); the corner says the image's number,
and the cursor's read-out follows every slice change, however it was made.
The keys reach the active view from anywhere in the window
(:mod:`viewer.qt.views.reading_keys`).

Reformats (:mod:`viewer.core.reformat`): an anisotropic plane is shown with
linear interpolation on near-isotropic display pixels (labels stay
nearest-neighbour, their outlines smooth); the session's slab (MIP, MinIP,
average) shows in every view; Ctrl+drag turns the crosshair, rotating the
other two planes about this one's normal (oblique reformats). Dear images
(thick oblique slabs) are made off the GUI thread
(:mod:`viewer.qt.views.slice_render`). A 4D series shows the session's time
point.

Scene units are millimetres in the plane (the image item is scaled by the
pixel spacing), so anisotropic voxels show with their true aspect and
markers are placed in mm. Corner text, orientation letters and the scale
bar are painted in the viewport's own coordinates (``drawForeground``,
:mod:`viewer.qt.views.slice_foreground`), so they are in every screenshot.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QPainter, QTransform

from viewer.core import review
from viewer.core.layers import render_labels
from viewer.core.reformat import Rendered, crosshair_angles, plane_for, render, smooth_labels
from viewer.core.session import Session
from viewer.core.slicing import ImageNumbers, SlicePlane, image_numbers
from viewer.core.window_presets import preset_for_key
from viewer.qt.overlays.annotation_overlay import AnnotationOverlay
from viewer.qt.overlays.label_brush import LabelPainter
from viewer.qt.overlays.tool_state import ToolState
from viewer.qt.views.corner_text import corner_lines
from viewer.qt.views.slice_foreground import paint_foreground, shadow_text
from viewer.qt.views.slice_markers import REJECTED_COLOR, marker_items
from viewer.qt.views.slice_mouse import SliceViewBox
from viewer.qt.views.slice_render import SliceRenderer

_INVERT_LUT = np.arange(255, -1, -1, dtype=np.uint8)
_CURSOR_PEN = pg.mkPen((80, 200, 255, 150), width=1)


def greyed_lut(lut: np.ndarray) -> np.ndarray:
    """A rejected label map's colours: grey, at half the opacity."""
    out = lut.copy()
    grey = out[:, :3].mean(axis=1, keepdims=True).astype(np.uint16)
    out[:, :3] = ((grey + np.array(REJECTED_COLOR, np.uint16)) // 2).astype(np.uint8)
    out[:, 3] //= 2
    return out


class SliceView(pg.GraphicsView):
    activated = Signal(object)  # this view, on any click
    maximise_requested = Signal(object)
    series_step_requested = Signal(int)  # PgUp / PgDn: -1 / +1
    slice_changed = Signal(int)

    def __init__(self, session: Session, view: str, parent=None, tools: ToolState | None = None):
        super().__init__(parent, background="k")
        self.session, self.view = session, view
        self.plane: SlicePlane | None = None
        self.image_numbers: ImageNumbers | None = None  # "Im 20/134" and the direction of "next image"
        self.k = 0
        self.rendered: Rendered | None = None  # the image shown, with the values the cursor reads
        self.hover: tuple[np.ndarray, object] | None = None  # (LPS, value) under the mouse
        self._mouse: QPoint | None = None  # the mouse in the viewport, while it is over the view
        self.active = False
        self.fitted = True  # the image fills the view (until the user zooms or pans); kept on resize
        self.vb = SliceViewBox(self)
        self.setCentralItem(self.vb)
        self.image_item = pg.ImageItem()
        self.vb.addItem(self.image_item)
        self._label_items: dict[int, pg.ImageItem] = {}
        self.label_luts: dict[int, np.ndarray] = {}  # id(label layer) → the colours its labels are drawn in
        self._marker_items: list = []
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=_CURSOR_PEN)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=_CURSOR_PEN)
        for line in (self.hline, self.vline):
            line.setZValue(20)
            line.setVisible(session.show_crosshair)
            self.vb.addItem(line, ignoreBounds=True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumSize(120, 120)
        self._cine = QTimer(self)
        self._cine.setInterval(66)
        self._cine.timeout.connect(lambda: self.step_slice(1, wrap=True))
        self.tools = tools if tools is not None else ToolState(self)
        self.annotation_overlay = AnnotationOverlay(self, self.tools)
        self.label_painter = LabelPainter(self, self.tools)
        self.renderer = SliceRenderer(self)  # slabs and oblique planes: off the GUI thread when dear
        self.renderer.ready.connect(self._show_rendered)
        session.volume_loaded.connect(self._on_volume_loaded)
        session.volume_cleared.connect(self._on_volume_cleared)
        session.cursor_moved.connect(self._on_cursor_moved)
        session.window_changed.connect(self._on_window_changed)
        session.display_changed.connect(self._on_display_changed)
        session.layer_added.connect(self._on_layers_changed)
        session.layer_removed.connect(self._on_layers_changed)
        session.layer_changed.connect(self._on_layers_changed)
        session.labels_edited.connect(self._on_labels_edited)
        session.annotations.reviews_changed.connect(self._on_layers_changed)
        session.annotations.annotations_reset.connect(self._on_layers_changed)
        session.reformat_changed.connect(self._on_reformat_changed)
        session.timepoint_changed.connect(self._on_timepoint_changed)
        if session.volume is not None:
            self._on_volume_loaded(session.volume)

    # --- session events ------------------------------------------------------------
    def _on_volume_loaded(self, volume) -> None:
        self._previewing = False
        self.image_item.setLookupTable(_INVERT_LUT if self.session.invert else None)
        self.renderer.cancel()
        self._set_plane(plane_for(self.view, volume.geometry, self.session.rotations))
        self.k = -1
        self._on_layers_changed()
        self._show_slice(self.plane.slice_of(self.session.cursor_lps))
        self._place_crosshair()
        self.reset_view()

    def _set_plane(self, plane: SlicePlane) -> None:
        self.plane = plane
        self.image_numbers = image_numbers(plane, self.session.volume.meta.get("instance_numbers"))
        row_mm, col_mm = plane.pixel_spacing
        self._pixel_transform = QTransform.fromScale(col_mm, row_mm)
        for item in self._label_items.values():
            item.setTransform(self._pixel_transform)

    def _on_reformat_changed(self) -> None:
        """The slab or the planes' rotation changed: a rotated plane keeps the cursor where it was on screen."""
        if self.plane is None:
            return
        plane = plane_for(self.view, self.session.volume.geometry, self.session.rotations)
        if plane != self.plane:
            before = self._cursor_scene()
            self._set_plane(plane)
            after = self._cursor_scene()
            self.vb.translateBy(x=after.x() - before.x(), y=after.y() - before.y())
        self.k = -1
        self._show_slice(self.plane.slice_of(self.session.cursor_lps))
        self._place_crosshair()

    def _on_timepoint_changed(self, _t: int) -> None:
        if self.plane is not None:
            self.image_numbers = image_numbers(self.plane, self.session.volume.meta.get("instance_numbers"))
            self.k = -1
            self._show_slice(self.plane.slice_of(self.session.cursor_lps))

    def _on_volume_cleared(self) -> None:
        self.renderer.cancel()
        self.plane = None
        self.rendered = None
        self.image_numbers = None
        self.hover = None
        self._previewing = False
        self.image_item.clear()
        self._on_layers_changed()
        self.viewport().update()

    def _on_cursor_moved(self, point) -> None:
        if self.plane is None:
            return
        k = self.plane.slice_of(point)
        if k != self.k:
            self._show_slice(k)
        self._place_crosshair()

    def _on_window_changed(self, *_args) -> None:
        if self.plane is not None:
            self.image_item.setLevels(self.session.levels)
            self.viewport().update()

    def _on_display_changed(self) -> None:
        self.image_item.setLookupTable(_INVERT_LUT if self.session.invert else None)
        for line in (self.hline, self.vline):
            line.setVisible(self.session.show_crosshair)
        if self.plane is not None:
            self._place_crosshair()
        self._on_layers_changed()

    def _on_layers_changed(self, *_args) -> None:
        for item in self._label_items.values():
            self.vb.removeItem(item)
        self._label_items.clear()
        self.label_luts.clear()
        if self.plane is not None:
            rejected = self._rejected_layers()
            for layer in self.session.label_layers():
                item = pg.ImageItem()
                item.setZValue(10)
                item.setTransform(self._pixel_transform)
                self.vb.addItem(item)
                self._label_items[id(layer)] = item
                self.label_luts[id(layer)] = greyed_lut(layer.lut()) if id(layer) in rejected else layer.lut()
        self._draw_overlays()
        self.viewport().update()

    def _on_labels_edited(self, _layer, _finished: bool = True) -> None:
        """A label layer's voxels changed (a brush stroke, its undo or redo): redraw the label images."""
        self._draw_labels()
        self.viewport().update()

    def _rejected_layers(self) -> set[int]:
        table = self.session.annotations.review
        return {id(r.label_layer) for r in review.ai_results(self.session) if r.label_layer is not None
                and (review.result_entry(table, r) or {}).get("state") == review.REJECTED}

    def marker_states(self) -> dict[int, list]:
        """``id(marker layer)`` → each marker's review state as drawn ("accepted", "rejected" or None)."""
        table = self.session.annotations.review
        return {id(r.marker_layer): review.shown_states(table, r) for r in review.ai_results(self.session)
                if r.marker_layer is not None}

    # --- drawing -------------------------------------------------------------------------
    def _show_slice(self, k: int) -> None:
        volume = self.session.volume
        self.k = int(np.clip(k, 0, self.plane.n_slices - 1))
        rendered = self.renderer.request(volume.array, self.plane, self.k, self.session.slab)
        if rendered is None and (self.rendered is None or self.rendered.values.shape != self.plane.shape):
            rendered = render(volume.array, self.plane, self.k, interpolate=False)  # until the full one comes
        if rendered is not None:
            self._show_rendered(rendered)
        self._draw_overlays()
        self._update_hover()
        self.slice_changed.emit(self.k)
        self.viewport().update()

    def _show_rendered(self, rendered: Rendered) -> None:
        """Show an image made for this view (at once, or from the renderer's worker for the newest request)."""
        self.rendered = rendered
        self.image_item.setImage(rendered.image, autoLevels=False, levels=self.session.levels)
        row_mm, col_mm = self.plane.pixel_spacing
        fr, fc = rendered.factors
        self.image_item.setTransform(QTransform.fromScale(col_mm / fc, row_mm / fr))
        self._update_hover()
        self.viewport().update()

    def _draw_labels(self) -> None:
        show = self.session.overlays_visible and self.plane is not None
        for layer in self.session.label_layers():
            item = self._label_items.get(id(layer))
            if item is None:
                continue
            if not (show and layer.visible):
                item.hide()
                continue
            labels = self.plane.extract(layer.label_map.array, self.k)
            factors = self.rendered.factors if self.rendered is not None else (1, 1)
            if layer.outline and factors != (1, 1):  # outlines on the display grid: smooth
                labels = smooth_labels(labels, factors)
                row_mm, col_mm = self.plane.pixel_spacing
                item.setTransform(QTransform.fromScale(col_mm / factors[1], row_mm / factors[0]))
            else:
                item.setTransform(self._pixel_transform)
            item.setImage(render_labels(layer, labels, self.label_luts[id(layer)]), autoLevels=False, levels=None)
            item.show()

    def _draw_overlays(self) -> None:
        show = self.session.overlays_visible and self.plane is not None
        self._draw_labels()
        for gi in self._marker_items:
            self.vb.removeItem(gi)
        self._marker_items.clear()
        if show:
            states = self.marker_states()
            for layer in self.session.marker_layers():
                if layer.visible:
                    layer_states = states.get(id(layer), ())
                    for i, marker in enumerate(layer.markers):
                        self._draw_marker(marker, layer_states[i] if i < len(layer_states) else None)
        self.annotation_overlay.redraw()

    def _draw_marker(self, marker, state: str | None = None) -> None:
        for item in marker_items(self.plane, self.k, marker, state):
            self.vb.addItem(item, ignoreBounds=True)
            self._marker_items.append(item)

    def _cursor_scene(self) -> QPointF:
        """The cursor in this view's scene (mm in the plane)."""
        _k, row, col = self.plane.from_world(self.session.cursor_lps)
        row_mm, col_mm = self.plane.pixel_spacing
        return QPointF((col + 0.5) * col_mm, (row + 0.5) * row_mm)

    def _place_crosshair(self) -> None:
        """The lines where the other two planes cut this one, through the cursor (rotated with the planes)."""
        at = self._cursor_scene()
        rotations = self.session.rotations
        angles = crosshair_angles(self.view, self.session.volume.geometry, rotations) if rotations.any else (0, 90)
        for line, angle in zip((self.hline, self.vline), angles):
            line.setVisible(self.session.show_crosshair and angle is not None)
            line.setAngle(0 if angle is None else angle)
            line.setPos(at)

    def turn_crosshair(self, last, now) -> None:
        """Ctrl+drag from ``last`` to ``now`` (points in the plane, mm): the crosshair turns with the mouse about
        the cursor, rotating the other two planes about this view's normal."""
        if self.plane is None:
            return
        c = self._cursor_scene()
        before = math.atan2(last.y() - c.y(), last.x() - c.x())
        after = math.atan2(now.y() - c.y(), now.x() - c.x())
        turn = (after - before + math.pi) % (2 * math.pi) - math.pi
        if abs(turn) > 1e-4 and math.hypot(now.x() - c.x(), now.y() - c.y()) > 1.0:
            self.session.rotate_planes(self.view, turn)

    def refuse_oblique_painting(self) -> bool:
        """A brush stroke on an oblique plane is refused (it paints voxels of the native planes): True, said so."""
        if self.plane is not None and self.plane.oblique and self.tools.painting:
            self.tools.message.emit("Painting works on the volume's own planes: reset the plane rotation "
                                    "(View → Reset plane rotation) to paint here")
            return True
        return False

    # --- actions (called by input handlers and by the window) -------------------------------
    def set_slice(self, k: int) -> None:
        """Show slice ``k``; the linked cursor follows (so the other views' cursor lines move)."""
        if self.plane is None:
            return
        k = int(np.clip(k, 0, self.plane.n_slices - 1))
        if k == self.k:
            return
        _k, row, col = self.plane.from_world(self.session.cursor_lps)
        self._show_slice(k)
        self.session.move_cursor(self.plane.to_world(k, row, col))

    def step_slice(self, step: int, wrap: bool = False) -> None:
        """``step`` images on (back when negative) in reading order: "next image" is +1 (Down, wheel down)."""
        if self.plane is None:
            return
        self.set_slice(self.image_numbers.step_from(self.k, step, wrap))

    def show_image_at(self, order: int) -> None:
        """The ``order``-th image in reading order (1: the first, Home; N: the last, End)."""
        if self.plane is not None:
            self.set_slice(self.image_numbers.k_at(order))

    def image_number(self) -> int | None:
        """The number of the image shown, as the corner says it: its InstanceNumber in the acquired plane of a
        DICOM series (what "image 20" means on PACS; None on a gap), else its place in reading order."""
        if self.image_numbers is None:
            return None
        return self.image_numbers.number(self.k)

    def drag_window(self, dx: float, dy: float) -> None:
        """Left-drag: horizontal changes the width, vertical the level (down = higher level)."""
        if self.plane is None:
            return
        sensitivity = max(self.session.width, 50.0) / 250.0
        self.session.set_window(self.session.width + dx * sensitivity, self.session.level + dy * sensitivity, "")

    def reset_view(self) -> None:
        if self.plane is None:
            return
        rows, cols = self.plane.shape
        row_mm, col_mm = self.plane.pixel_spacing
        self.vb.setRange(QRectF(0, 0, cols * col_mm, rows * row_mm), padding=0.0)
        self.fitted = True
        self.viewport().update()

    def toggle_cine(self) -> None:
        if self._cine.isActive():
            self._cine.stop()
        elif self.plane is not None:
            self._cine.start()

    @property
    def cine_running(self) -> bool:
        return self._cine.isActive()

    def move_cursor_to_scene(self, scene_pos) -> None:
        point = self._scene_to_world(scene_pos)
        if point is not None:
            self.session.move_cursor(point[0])

    def _scene_to_world(self, scene_pos):
        if self.plane is None:
            return None
        p = self.vb.mapSceneToView(scene_pos)
        row_mm, col_mm = self.plane.pixel_spacing
        row, col = p.y() / row_mm - 0.5, p.x() / col_mm - 0.5
        n_rows, n_cols = self.plane.shape
        inside = -0.5 <= row < n_rows - 0.5 and -0.5 <= col < n_cols - 0.5
        return self.plane.to_world(self.k, row, col), (int(round(row)), int(round(col))), inside

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel along the columns."""
        if self.plane is None:
            return 1.0
        mm_per_screen_px = self.vb.viewPixelSize()[0]
        return self.plane.pixel_spacing[1] / mm_per_screen_px if mm_per_screen_px else 1.0

    # --- Qt events ------------------------------------------------------------------------------
    def mousePressEvent(self, ev):  # noqa: N802
        self.activated.emit(self)
        super().mousePressEvent(ev)

    def mouseDoubleClickEvent(self, ev):  # noqa: N802
        if self.tools.tool and ev.button() == Qt.LeftButton:  # drawing: a quick second click is a click
            self.annotation_overlay.click(self.mapToScene(ev.position().toPoint()))
        else:
            self.maximise_requested.emit(self)
        ev.accept()

    def _hover_at(self, viewport_pos: QPoint):
        """(LPS, value) under ``viewport_pos`` on the slice shown (None outside the image), and the LPS point."""
        found = self._scene_to_world(self.mapToScene(viewport_pos))
        if found is None:
            return None, None
        world, (row, col), inside = found
        volume = self.session.volume
        idx = np.rint(volume.geometry.world_to_index(world)).astype(int)
        if not inside or np.any(idx < 0) or np.any(idx >= volume.shape_zyx):
            return None, world
        shown = self.rendered
        if self.session.slab.active and shown is not None and shown.k == self.k and \
                shown.values.shape == self.plane.shape:
            return (world, shown.values[row, col]), world  # the slab's value there (MIP, MinIP, average)
        return (world, volume.array[tuple(idx)]), world  # the voxel there, in any plane

    def _update_hover(self) -> None:
        """The read-out under the last mouse position, on the slice shown now (after any slice change)."""
        if self._mouse is not None and self.plane is not None:
            self.hover = self._hover_at(self._mouse)[0]

    def mouseMoveEvent(self, ev):  # noqa: N802
        super().mouseMoveEvent(ev)
        self._mouse = ev.position().toPoint()
        if self.plane is None:
            return
        self.hover, world = self._hover_at(self._mouse)
        if ev.modifiers() & Qt.ShiftModifier and not ev.buttons():
            self.session.move_cursor(world)
        elif not ev.buttons():
            self.annotation_overlay.hover(self.mapToScene(self._mouse))
        self.viewport().update()

    def leaveEvent(self, ev):  # noqa: N802
        self.hover = None
        self._mouse = None
        self.label_painter.leave()
        self.viewport().update()
        super().leaveEvent(ev)

    def keyPressEvent(self, ev):  # noqa: N802
        if self.handle_key(ev.key(), ev.modifiers()):
            ev.accept()
        else:
            super().keyPressEvent(ev)

    def handle_key(self, key, mods=Qt.NoModifier) -> bool:
        """A reading key (the view's own, or one the window passes on, see ``reading_keys``); False: not one."""
        shift = bool(mods & Qt.ShiftModifier)
        if self.annotation_overlay.handle_key(QKeyEvent(QEvent.KeyPress, key, mods)):
            pass
        elif key in (Qt.Key_Up, Qt.Key_Down):
            self.step_slice((10 if shift else 1) * (-1 if key == Qt.Key_Up else 1))
        elif key == Qt.Key_Home:
            self.show_image_at(1)
        elif key == Qt.Key_End:
            self.show_image_at(self.plane.n_slices if self.plane else 1)
        elif key in (Qt.Key_PageUp, Qt.Key_PageDown):
            self.series_step_requested.emit(-1 if key == Qt.Key_PageUp else 1)
        elif Qt.Key_0 <= key <= Qt.Key_9 and not (mods & Qt.ControlModifier):
            preset = preset_for_key(chr(key))
            if preset is not None:
                self.session.apply_preset(preset)
        elif key == Qt.Key_Space:
            self.reset_view()
        elif key == Qt.Key_I:
            self.session.set_display(invert=not self.session.invert)
        elif key == Qt.Key_C:
            self.toggle_cine()
        elif key == Qt.Key_F12 and shift:
            self.session.set_display(show_patient_data=not self.session.show_patient_data)
        elif key == Qt.Key_F12:
            self.session.set_display(show_corner_text=not self.session.show_corner_text)
        elif key == Qt.Key_G:
            self.session.set_display(overlays_visible=not self.session.overlays_visible)
        elif key == Qt.Key_H:
            self.session.set_display(show_crosshair=not self.session.show_crosshair)
        else:
            return False
        return True

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        if getattr(self, "fitted", False):
            QTimer.singleShot(0, self._refit)
        self.viewport().update()

    def _refit(self) -> None:
        if self.fitted:
            self.reset_view()

    # --- foreground: corner text, orientation letters, scale bar ------------------------------
    def corner_texts(self) -> dict[str, list[str]]:
        """The lines painted in each corner (top_left, top_right, bottom_left, bottom_right)."""
        return corner_lines(self)

    def show_preview(self, image: np.ndarray) -> None:
        """Show a raw slice while the series is still loading (before the volume, and its geometry, exist)."""
        self._previewing = True
        self.image_item.setTransform(QTransform())
        self.image_item.setLookupTable(None)
        self.image_item.setImage(image, autoLevels=True)
        self.vb.setRange(QRectF(0, 0, image.shape[1], image.shape[0]), padding=0.0)
        self.viewport().update()

    @property
    def previewing(self) -> bool:
        return getattr(self, "_previewing", False)

    def clear_preview(self) -> None:
        """Drop a preview whose series did not load (a loaded volume replaces it by itself)."""
        if self.previewing:
            self._previewing = False
            if self.plane is None:
                self.image_item.clear()
            self.viewport().update()

    def drawForeground(self, painter: QPainter, rect) -> None:  # noqa: N802
        paint_foreground(self, painter, self._shadow_text)

    def _shadow_text(self, painter, x, y, text, color) -> None:
        shadow_text(painter, x, y, text, color)
