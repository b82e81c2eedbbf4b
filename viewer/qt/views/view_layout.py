"""The reading area: axial, coronal and sagittal views (and the 3D pane) in a 1×1, 1×3 or 2×2 grid.

Double-click on a view maximises it; double-click again restores the layout.
The last clicked view is the active one (blue frame): keys, toolbar actions
and "Export screenshot → active view" act on it. The reading keys reach it
wherever the focus is in the window (:mod:`viewer.qt.views.reading_keys`).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from viewer.core.session import Session
from viewer.qt.overlays.tool_state import ToolState
from viewer.qt.views.reading_keys import install_reading_keys
from viewer.qt.views.slice_view import SliceView

LAYOUTS = ("1x1", "1x3", "2x2")


class ViewLayout(QWidget):
    active_view_changed = Signal(object)

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.tools = ToolState(self)  # the measuring tool and selection, shared by the three views
        self.views = {name: SliceView(session, name, tools=self.tools) for name in ("axial", "coronal", "sagittal")}
        self.pane_3d: QWidget = QLabel("3D view")
        self.pane_3d.setAlignment(Qt.AlignCenter)
        self.pane_3d.setStyleSheet("background: black; color: #777;")
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.setStyleSheet("background: #202020;")
        self.layout_name = "1x3"
        self.maximised: QWidget | None = None
        self.active: SliceView = self.views["axial"]
        for view in self.views.values():
            view.activated.connect(self.set_active)
            view.maximise_requested.connect(self.toggle_maximise)
        self.set_active(self.active)
        self.set_layout("1x3")
        self.reading_keys = install_reading_keys(self)

    def set_3d_pane(self, widget: QWidget) -> None:
        """Install the 3D view (the 3D issue's widget) in the fourth pane."""
        self.pane_3d.setParent(None)
        self.pane_3d = widget
        self._arrange()

    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        self.layout_name = name
        self.maximised = None
        self._arrange()

    def toggle_maximise(self, view: QWidget) -> None:
        self.maximised = None if self.maximised is view else view
        self._arrange()

    def set_active(self, view: SliceView) -> None:
        for v in self.views.values():
            v.active = v is view
            v.viewport().update()
        changed = view is not self.active
        self.active = view
        if changed:
            self.active_view_changed.emit(view)

    def show_preview(self, z: int, image) -> None:
        """The first slice read of a series that is still loading, in the axial view."""
        if self.session.volume is not None:
            self.session.clear()
        self.views["axial"].show_preview(image)

    def clear_preview(self) -> None:
        self.views["axial"].clear_preview()

    def visible_panes(self) -> list[QWidget]:
        if self.maximised is not None:
            return [self.maximised]
        if self.layout_name == "1x1":
            return [self.active]
        panes = [self.views["axial"], self.views["coronal"], self.views["sagittal"]]
        return panes + [self.pane_3d] if self.layout_name == "2x2" else panes

    def _arrange(self) -> None:
        for pane in [*self.views.values(), self.pane_3d]:
            self._grid.removeWidget(pane)
            pane.hide()
        for stretch_index in range(3):
            self._grid.setColumnStretch(stretch_index, 0)
            self._grid.setRowStretch(stretch_index, 0)
        panes = self.visible_panes()
        columns = 3 if len(panes) == 3 else (2 if len(panes) == 4 else 1)
        for i, pane in enumerate(panes):
            row, col = divmod(i, columns)
            self._grid.addWidget(pane, row, col)
            self._grid.setColumnStretch(col, 1)
            self._grid.setRowStretch(row, 1)
            pane.show()
