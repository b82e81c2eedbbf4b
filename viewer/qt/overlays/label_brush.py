"""The brush (B) and eraser (X or Shift+B) of the 2D views: paint the active label of a label layer by hand.

With the brush or the eraser chosen (Measure menu or toolbar, or the keys), a left drag (or a click)
in a reading view paints the *active label* (``Session.active_label``: chosen in the toolbar's Label
box or by clicking a label in the Overlays legend) into its label layer on the slice shown, in a disc
of the toolbar's radius (mm; ``[`` / ``]`` change it) around the mouse: see :mod:`viewer.core.label_edit`
for the geometry. The eraser sets voxels of the active label back to background. The other views
redraw while the stroke goes; when it ends, the stroke is one step of the undo stack (Ctrl+Z / Ctrl+Y,
with the measurements and the review decisions) and the legend volumes and the 3D surfaces follow
(``Session.labels_edited``). A circle shows the brush under the mouse.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPen, QPixmap
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QGraphicsEllipseItem, QLabel

from viewer.core.label_edit import BrushStroke, record_edit
from viewer.qt.overlays.tool_state import MAX_BRUSH_MM, MIN_BRUSH_MM, TOOL_TITLES

ERASER_COLOR = QColor(235, 235, 235)


class LabelPainter:
    """Turns the left drags of one SliceView into brush or eraser strokes while a paint tool is chosen."""

    def __init__(self, view, tools):
        self.view, self.tools = view, tools
        self.stroke: BrushStroke | None = None
        self.last_edit = None  # the undo record of the last stroke finished here (tests, status)
        self.cursor = QGraphicsEllipseItem()
        self.cursor.setZValue(40)
        self.cursor.hide()
        view.vb.addItem(self.cursor, ignoreBounds=True)
        self._last_scene = None
        tools.tool_changed.connect(self._on_tool_changed)
        tools.brush_changed.connect(lambda _r: self._place_cursor())
        view.session.active_label_changed.connect(self._place_cursor)

    @property
    def session(self):
        return self.view.session

    # --- coordinates ----------------------------------------------------------------------------
    def display_pixel(self, scene_pos) -> tuple[float, float]:
        """(row, col) of the display pixel under a scene position (floats; pixel centres are integers)."""
        p = self.view.vb.mapSceneToView(scene_pos)
        row_mm, col_mm = self.view.plane.pixel_spacing
        return p.y() / row_mm - 0.5, p.x() / col_mm - 0.5

    # --- the cursor circle -------------------------------------------------------------------------
    def _on_tool_changed(self, _name: str) -> None:
        if self.stroke is not None:
            self.end_stroke()
        self._place_cursor()

    def hover(self, scene_pos) -> None:
        self._last_scene = scene_pos
        self._place_cursor()

    def leave(self) -> None:
        self._last_scene = None
        self.cursor.hide()

    def _place_cursor(self) -> None:
        if not self.tools.painting or self.view.plane is None or self._last_scene is None:
            self.cursor.hide()
            return
        row, col = self.display_pixel(self._last_scene)
        row_mm, col_mm = self.view.plane.pixel_spacing
        r = self.tools.brush_radius_mm
        cx, cy = (round(col) + 0.5) * col_mm, (round(row) + 0.5) * row_mm
        self.cursor.setRect(QRectF(cx - r, cy - r, 2 * r, 2 * r))
        target = self.session.active_label
        color = QColor(*target[0].colors.get(target[1], (255, 255, 255))) if target and self.tools.tool == "brush" \
            else ERASER_COLOR
        pen = QPen(color)
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        if self.tools.tool == "eraser":
            pen.setStyle(Qt.DashLine)
        self.cursor.setPen(pen)
        self.cursor.show()

    # --- strokes -------------------------------------------------------------------------------------
    def begin(self, scene_pos) -> bool:
        """A left drag or click starts with a paint tool chosen; True when it is the painter's (always, then)."""
        if not self.tools.painting or self.view.plane is None:
            return False
        target = self.session.active_label
        if target is None:
            self.tools.message.emit("Nothing to paint on: load a segmentation (File → Load segmentation…) or run "
                                    "AI first")
            return True
        layer, label = target
        if not (layer.visible and self.session.overlays_visible):
            self.tools.message.emit(f"{layer.name} is hidden: show it (Overlays, G) to paint on it")
            return True
        try:
            self.stroke = BrushStroke(layer, self.view.plane, self.view.k, label, self.tools.brush_radius_mm,
                                      erase=self.tools.tool == "eraser")
        except ValueError as exc:
            self.tools.message.emit(f"Cannot paint: {exc}")
            return True
        self._paint(scene_pos)
        return True

    def _paint(self, scene_pos) -> None:
        self._last_scene = scene_pos
        self._place_cursor()
        if self.stroke is None:
            return
        if self.stroke.add(*self.display_pixel(scene_pos)):
            self.session.notify_labels_edited(self.stroke.layer, False)

    def continue_stroke(self, scene_pos) -> None:
        self._paint(scene_pos)

    def finish(self, scene_pos) -> None:
        self._paint(scene_pos)
        self.end_stroke()

    def end_stroke(self) -> None:
        """The stroke in progress (if any) ends here: one step of the undo stack."""
        stroke, self.stroke = self.stroke, None
        if stroke is None:
            return
        edit = stroke.finish()
        if edit is None:
            return
        self.last_edit = edit
        record_edit(self.session, edit)
        layer = edit.layer
        label = stroke.label
        ml = edit.voxels * layer.voxel_ml
        what = "erased" if stroke.erase else "painted"
        self.tools.message.emit(f"{TOOL_TITLES['eraser' if stroke.erase else 'brush']}: {what} "
                                f"{edit.voxels} voxels ({ml:.2f} mL) of {label} {layer.label_name(label)} in "
                                f"{layer.name}; {layer.label_name(label)} now "
                                f"{layer.volumes_ml.get(label, 0.0):.2f} mL (Ctrl+Z undoes)")

    def click(self, scene_pos) -> bool:
        if not self.begin(scene_pos):
            return False
        self.end_stroke()
        return True


# --- toolbar: radius and label ---------------------------------------------------------------------------------
def _swatch(rgb) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(QColor(*rgb))
    return QIcon(pix)


class PaintWidgets:
    """The Radius box and the Label box of the Measure toolbar (``add_widget(widget)`` puts a widget there)."""

    def __init__(self, add_widget, tools, session):
        self.tools, self.session = tools, session
        self._choices: list[tuple] = []
        add_widget(QLabel(" Radius "))
        self.radius = QDoubleSpinBox()
        self.radius.setRange(MIN_BRUSH_MM, MAX_BRUSH_MM)
        self.radius.setSingleStep(0.5)
        self.radius.setDecimals(1)
        self.radius.setSuffix(" mm")
        self.radius.setValue(tools.brush_radius_mm)
        self.radius.setToolTip("Brush and eraser radius in mm ([ smaller, ] bigger)")
        self.radius.setFocusPolicy(Qt.ClickFocus)
        self.radius.valueChanged.connect(tools.set_brush_radius)
        tools.brush_changed.connect(self._show_radius)
        add_widget(self.radius)
        add_widget(QLabel(" Label "))
        self.label_box = QComboBox()
        self.label_box.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.label_box.setToolTip("The label the brush (B) paints and the eraser (X) erases; clicking a label in the "
                                  "Overlays legend chooses it too")
        self.label_box.setFocusPolicy(Qt.ClickFocus)
        self.label_box.activated.connect(self._chosen)
        add_widget(self.label_box)
        for signal in (session.layer_added, session.layer_removed):
            signal.connect(lambda *_: self.refresh())
        session.active_label_changed.connect(self.refresh)
        self.refresh()

    def _show_radius(self, radius: float) -> None:
        if abs(self.radius.value() - radius) > 1e-9:
            self.radius.blockSignals(True)
            self.radius.setValue(radius)
            self.radius.blockSignals(False)

    def refresh(self) -> None:
        layers = self.session.label_layers()
        active = self.session.active_label
        self.label_box.blockSignals(True)
        self.label_box.clear()
        self._choices = []
        for layer in layers:
            for label in sorted(set(layer.colors) | set(layer.label_map.labels)):
                if label <= 0:
                    continue
                text = f"{label}  {layer.label_name(label)}"
                if len(layers) > 1:
                    text = f"{layer.name} · {text}"
                self.label_box.addItem(_swatch(layer.colors.get(label, (200, 200, 200))), text)
                self._choices.append((layer, label))
                if active is not None and active[0] is layer and active[1] == label:
                    self.label_box.setCurrentIndex(len(self._choices) - 1)
        self.label_box.setEnabled(bool(self._choices))
        if not self._choices:
            self.label_box.addItem("(no label map)")
        self.label_box.blockSignals(False)

    def _chosen(self, index: int) -> None:
        if 0 <= index < len(self._choices):
            self.session.set_active_label(*self._choices[index])

    def choices(self) -> list[tuple]:
        return list(self._choices)

