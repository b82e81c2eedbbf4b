"""The state of the 2D views' tools, shared by the views of a layout: which tool is chosen, the selection, the
brush radius; the tools' names, keys and titles.

Tools (``shared/CONVENTIONS.md``): length (L), angle (A), ellipse ROI (E), rectangle ROI (R), text arrow (T);
label map brush (B) and eraser (X, or Shift+B), whose radius ``[`` / ``]`` change; Esc back to navigation. The
Measure menu and toolbar are in :mod:`viewer.qt.overlays.annotation_tools`, the brush in
:mod:`viewer.qt.overlays.label_brush`; both import this module, neither imports the other's.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QInputDialog

#: tool name → key; "" is navigation
TOOL_KEYS = {"length": Qt.Key_L, "angle": Qt.Key_A, "ellipse": Qt.Key_E, "rectangle": Qt.Key_R, "arrow": Qt.Key_T,
             "brush": Qt.Key_B, "eraser": Qt.Key_X}
TOOL_TITLES = {"": "Navigate", "length": "Length", "angle": "Angle", "ellipse": "Ellipse ROI",
               "rectangle": "Rectangle ROI", "arrow": "Text arrow", "brush": "Brush", "eraser": "Eraser"}
#: clicks (or drag ends) a drawing needs: two corners for the ROIs
CLICKS = {"length": 2, "angle": 3, "ellipse": 2, "rectangle": 2, "arrow": 2}
#: tools that paint a label map instead of drawing an annotation
PAINT_TOOLS = ("brush", "eraser")
DEFAULT_BRUSH_MM = 5.0
MIN_BRUSH_MM, MAX_BRUSH_MM = 0.5, 100.0


def brush_step(radius_mm: float) -> float:
    """How much ``[`` / ``]`` change the brush radius: 0.5 mm for small brushes, about 20 % for big ones."""
    return max(0.5, round(radius_mm * 0.2 * 2) / 2)


class ToolState(QObject):
    """The measuring tool and the selected annotation, shared by the views of a layout."""

    tool_changed = Signal(str)
    selection_changed = Signal(object)  # annotation id or None
    brush_changed = Signal(float)  # brush / eraser radius (mm)
    message = Signal(str)  # something the user should read in the status bar

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tool = ""
        self.selected: str | None = None
        self.brush_radius_mm = DEFAULT_BRUSH_MM
        self.ask_text = ask_text_dialog  # (parent widget, callback(text)); tests replace it

    @property
    def painting(self) -> bool:
        return self.tool in PAINT_TOOLS

    def set_brush_radius(self, radius_mm: float) -> None:
        radius = round(min(max(float(radius_mm), MIN_BRUSH_MM), MAX_BRUSH_MM), 2)
        if radius != self.brush_radius_mm:
            self.brush_radius_mm = radius
            self.brush_changed.emit(radius)

    def step_brush(self, direction: int) -> None:
        """``]`` (+1) / ``[`` (-1)."""
        r = self.brush_radius_mm
        self.set_brush_radius(r + brush_step(r) if direction > 0 else r - brush_step(r))

    def set_tool(self, name: str) -> None:
        if name not in TOOL_TITLES:
            raise ValueError(f"unknown tool {name!r}")
        if name != self.tool:
            self.tool = name
            self.tool_changed.emit(name)

    def select(self, ident: str | None) -> None:
        if ident != self.selected:
            self.selected = ident
            self.selection_changed.emit(ident)


def ask_text_dialog(parent, done) -> None:
    """Ask for an arrow's text without blocking (a window-modal dialog opened with ``open``)."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle("Annotation text")
    dialog.setLabelText("Text:")
    dialog.setAttribute(Qt.WA_DeleteOnClose)
    dialog.textValueSelected.connect(done)
    dialog.open()
