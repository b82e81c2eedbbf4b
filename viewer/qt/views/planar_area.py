"""The reading area of a 2D series: its images hung as :mod:`viewer.core.hanging` says (1×1, a pair side by
side, the four-view mammography hanging), one :class:`~viewer.qt.views.planar_view.PlanarView` per cell.

No empty MPR or 3D panes: a radiograph study never shows the volume layout. The last clicked view is the
active one (blue frame); keys go to it.
"""
from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from viewer.core.hanging import hang
from viewer.qt.views.planar_view import PlanarView


class PlanarArea(QWidget):
    def __init__(self, session, parent=None, tools=None):
        super().__init__(parent)
        self.session = session
        self.tools = tools  # the measuring tools shared with the MPR views, the Measure menu and the toolbar
        self.views: list[PlanarView] = []
        self.hanging = None
        self.active: PlanarView | None = None
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.setStyleSheet("background: #202020;")
        session.images_loaded.connect(self.show_series)
        session.images_cleared.connect(self.clear)
        session.display_changed.connect(self._repaint)

    def show_series(self, series) -> None:
        self.clear()
        self.hanging = hang(series)
        for i, cell in enumerate(self.hanging.cells):
            row, col = divmod(i, self.hanging.columns)
            if cell.image < 0:
                empty = QLabel("(view not in this study)")
                empty.setStyleSheet("color: #777; background: black;")
                self._grid.addWidget(empty, row, col)
                continue
            view = PlanarView(self.session, tools=self.tools)
            view.activated.connect(self.set_active)
            self._grid.addWidget(view, row, col)
            self.views.append(view)
            view.set_series(series, cell.image, cell.flip_h)
        for r in range(self.hanging.rows):
            self._grid.setRowStretch(r, 1)
        for c in range(self.hanging.columns):
            self._grid.setColumnStretch(c, 1)
        if self.views:
            self.set_active(self.views[0])
            self.views[0].setFocus()

    def clear(self) -> None:
        for view in self.views:
            view.stop_cine()
            view.measurements.disconnect()
        while self._grid.count():
            item = self._grid.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.setParent(None)
                widget.deleteLater()
        self.views, self.active, self.hanging = [], None, None

    def set_active(self, view: PlanarView) -> None:
        for v in self.views:
            v.active = v is view
            v.viewport().update()
        self.active = view

    def visible_panes(self) -> list:
        return list(self.views)

    def _repaint(self) -> None:
        for view in self.views:
            view.display_changed()

    def stop_cine(self) -> None:
        for view in self.views:
            view.stop_cine()
