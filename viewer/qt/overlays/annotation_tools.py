"""The tools of the 2D views: which one is chosen, the selection, and the Measure menu and toolbar.

Tools (``shared/CONVENTIONS.md``): length (L), angle (A), ellipse ROI (E),
rectangle ROI (R), text arrow (T); label map brush (B) and eraser (X, or
Shift+B), whose radius ``[`` / ``]`` change (and the Radius box of the
toolbar); Esc back to navigation; Ctrl+Z / Ctrl+Y undo / redo. One
:class:`ToolState` is shared by the views of a layout; each view draws and
edits through its :class:`~viewer.qt.overlays.annotation_overlay.AnnotationOverlay`
(the brush and eraser through its :class:`~viewer.qt.overlays.label_brush.LabelPainter`).
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QActionGroup, QKeySequence
from PySide6.QtWidgets import QInputDialog, QMenu, QToolBar

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


def build_measure_ui(window, tools: ToolState, annotations) -> QMenu:
    """The "Measure" menu (tools, undo, redo, delete) before Help, and a "Measure" toolbar with the tools."""
    menu = QMenu("&Measure", window)
    bar = QToolBar("Measure", window)
    bar.setObjectName("measure")
    group = QActionGroup(window)
    group.setExclusive(True)
    actions = {}
    for name, title in TOOL_TITLES.items():
        if name == PAINT_TOOLS[0]:
            menu.addSeparator()
            bar.addSeparator()
        key = QKeySequence(TOOL_KEYS[name]).toString() if name else "Esc"
        if name == "eraser":
            key = "X or Shift+B"
        action = menu.addAction(f"{title}\t{key}")
        action.setCheckable(True)
        action.setChecked(name == tools.tool)
        tip = f"{title} ({key})"
        if name in PAINT_TOOLS:
            tip = (f"{title} ({key}): {'paint the chosen label' if name == 'brush' else 'erase the chosen label'} "
                   "of a label map on the slice you drag on; radius [ / ] or the Radius box; Ctrl+Z undoes a stroke")
        action.setToolTip(tip)
        action.triggered.connect(lambda _=False, n=name: tools.set_tool(n))
        group.addAction(action)
        bar.addAction(action)
        action.setIconText(title)
        actions[name] = action
    tools.tool_changed.connect(lambda name: actions[name].setChecked(True))
    menu.addSeparator()
    undo = menu.addAction("&Undo")
    undo.setShortcut(QKeySequence("Ctrl+Z"))
    undo.triggered.connect(lambda: annotations.undo())
    redo = menu.addAction("&Redo")
    redo.setShortcuts([QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")])
    redo.triggered.connect(lambda: annotations.redo())
    delete = menu.addAction("&Delete selected\tDel")
    delete.triggered.connect(lambda: tools.selected in annotations and annotations.delete(tools.selected))

    def sync() -> None:
        undo.setEnabled(annotations.undo_stack.can_undo)
        redo.setEnabled(annotations.undo_stack.can_redo)
        undo.setText(f"&Undo {annotations.undo_stack.undo_text}".rstrip())
        redo.setText(f"&Redo {annotations.undo_stack.redo_text}".rstrip())

    annotations.undo_stack.changed.connect(sync)
    sync()
    session = getattr(window, "session", None)
    if session is not None:
        from viewer.qt.overlays.label_brush import build_paint_widgets

        menu.paint_widgets = build_paint_widgets(bar, tools, session)
    status = getattr(window, "status_label", None)
    if status is not None:
        tools.message.connect(status.setText)
    help_menu = next((a for a in window.menuBar().actions() if a.text().replace("&", "") == "Help"), None)
    if help_menu is not None:
        window.menuBar().insertMenu(help_menu, menu)
    else:
        window.menuBar().addMenu(menu)
    window.addToolBar(bar)
    menu.undo_action, menu.redo_action, menu.tool_actions = undo, redo, actions
    return menu
