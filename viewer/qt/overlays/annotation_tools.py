"""The Measure menu and toolbar of the main window: the tools, undo / redo / delete, the brush's Radius and Label.

The tools themselves and their shared state are in :mod:`viewer.qt.overlays.tool_state` (one
:class:`~viewer.qt.overlays.tool_state.ToolState` shared by the views of a layout); each view draws and edits
through its :class:`~viewer.qt.overlays.annotation_overlay.AnnotationOverlay` (the brush and eraser through its
:class:`~viewer.qt.overlays.label_brush.LabelPainter`). The entries are declared in :data:`MEASURE_ACTIONS`.
"""
from __future__ import annotations

from PySide6.QtGui import QKeySequence

from viewer.qt.actions import ActionSpec
from viewer.qt.overlays.label_brush import PaintWidgets
from viewer.qt.overlays.tool_state import PAINT_TOOLS, TOOL_KEYS, TOOL_TITLES


def tool_action_id(name: str) -> str:
    return f"measure.tool.{name or 'navigate'}"


def _key_text(name: str) -> str:
    if name == "eraser":
        return "X or Shift+B"
    return QKeySequence(TOOL_KEYS[name]).toString() if name else "Esc"


def _tool_tip(name: str) -> str:
    title, key = TOOL_TITLES[name], _key_text(name)
    if name not in PAINT_TOOLS:
        return f"{title} ({key})"
    return (f"{title} ({key}): {'paint the chosen label' if name == 'brush' else 'erase the chosen label'} "
            "of a label map on the slice you drag on; radius [ / ] or the Radius box; Ctrl+Z undoes a stroke")


#: the Measure menu (tools, undo, redo, delete) and the Measure toolbar (the tools)
MEASURE_ACTIONS = [
    *(ActionSpec(tool_action_id(name), f"{title}\t{_key_text(name)}", "choose_tool", args=(name,), checkable=True,
                 checked=not name, group="measure.tools", tip=_tool_tip(name), icon_text=title,
                 menu="Measure#paint" if name in PAINT_TOOLS else "Measure#tools",
                 toolbar="measure#paint" if name in PAINT_TOOLS else "measure#tools")
      for name, title in TOOL_TITLES.items()),
    ActionSpec("measure.undo", "&Undo", "undo", menu="Measure#edit", shortcut="Ctrl+Z"),
    ActionSpec("measure.redo", "&Redo", "redo", menu="Measure#edit", shortcut=("Ctrl+Y", "Ctrl+Shift+Z")),
    ActionSpec("measure.delete", "&Delete selected\tDel", "delete_selected", menu="Measure#edit"),
]


class MeasureUi:
    """The Measure entries of ``registry`` (menu "Measure", toolbar "measure") kept in step with the tools and
    the undo stack; ``tool_actions`` by tool name, ``undo_action``, ``redo_action``, ``paint_widgets``."""

    def __init__(self, registry, tools, annotations, session=None, notifier=None):
        self.tools, self.annotations = tools, annotations
        made = registry.add(MEASURE_ACTIONS, target=self)
        self.menu = registry.menu("Measure")
        self.tool_actions = {name: made[tool_action_id(name)] for name in TOOL_TITLES}
        self.undo_action, self.redo_action = made["measure.undo"], made["measure.redo"]
        self.tool_actions[tools.tool].setChecked(True)
        tools.tool_changed.connect(lambda name: self.tool_actions[name].setChecked(True))
        annotations.undo_stack.changed.connect(self.sync)
        self.sync()
        self.paint_widgets = None
        if session is not None:
            self.paint_widgets = PaintWidgets(lambda widget: registry.add_widget("measure#paint", widget), tools,
                                              session)
        if notifier is not None:
            tools.message.connect(notifier.info)

    def choose_tool(self, name: str) -> None:
        self.tools.set_tool(name)

    def undo(self) -> None:
        self.annotations.undo()

    def redo(self) -> None:
        self.annotations.redo()

    def delete_selected(self) -> None:
        if self.tools.selected in self.annotations:
            self.annotations.delete(self.tools.selected)

    def sync(self) -> None:
        stack = self.annotations.undo_stack
        self.undo_action.setEnabled(stack.can_undo)
        self.redo_action.setEnabled(stack.can_redo)
        self.undo_action.setText(f"&Undo {stack.undo_text}".rstrip())
        self.redo_action.setText(f"&Redo {stack.redo_text}".rstrip())
