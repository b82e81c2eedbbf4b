"""The VTK render widget of the 3D view: tells a left click from a left drag and keeps VTK's keys out."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, Qt, Signal
from PySide6.QtGui import QMouseEvent
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

#: a press and release closer than this (pixels) is a click, not a drag
CLICK_SLOP_PX = 4


class VtkWidget(QVTKRenderWindowInteractor):
    """The render window widget; tells a left click from a left drag, and keeps VTK's key bindings out.

    A left press is held back until the mouse moves more than :data:`CLICK_SLOP_PX` with the button
    down; only then is it given to VTK (at the press position) and the drag rotates (or pans with
    Shift, or moves a crop-box handle). A release before that is a click: ``clicked`` with VTK display
    coordinates (pixels from the bottom-left corner).
    """

    clicked = Signal(float, float)
    pressed = Signal()
    double_clicked = Signal()
    key_reset = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._held: QMouseEvent | None = None
        self.closed = False  # set when the View3D has finalized the render window: nothing is drawn after

    def paintEvent(self, ev):  # noqa: N802
        if not self.closed:
            super().paintEvent(ev)

    def display_xy(self, pos: QPointF) -> tuple[float, float]:
        scale = self._getPixelRatio()
        return float(pos.x()) * scale, float(self.height() - pos.y() - 1) * scale

    def mousePressEvent(self, ev):  # noqa: N802 (Qt naming)
        self.pressed.emit()
        if ev.button() == Qt.LeftButton:
            self._held = QMouseEvent(QEvent.MouseButtonPress, ev.position(), ev.globalPosition(), ev.button(),
                                     ev.buttons(), ev.modifiers())
            return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev):  # noqa: N802
        if self._held is not None:
            if not ev.buttons() & Qt.LeftButton:
                self._held = None
            elif (ev.position() - self._held.position()).manhattanLength() > CLICK_SLOP_PX:
                held, self._held = self._held, None
                super().mousePressEvent(held)
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.LeftButton and self._held is not None:
            self._held = None
            self.clicked.emit(*self.display_xy(ev.position()))
            return
        super().mouseReleaseEvent(ev)

    def mouseDoubleClickEvent(self, ev):  # noqa: N802
        self._held = None
        self.double_clicked.emit()

    def keyPressEvent(self, ev):  # noqa: N802
        # VTK's own keys (w wireframe, 3 stereo, e/q exit, ...) would surprise a reader: not forwarded
        if ev.key() in (Qt.Key_R, Qt.Key_Space) and not ev.modifiers() & ~Qt.ShiftModifier:
            self.key_reset.emit()
            return
        ev.ignore()

    def keyReleaseEvent(self, ev):  # noqa: N802
        ev.ignore()

    def closeEvent(self, ev):  # noqa: N802
        # the View3D finalizes the render window (after removing its observers)
        ev.accept()
