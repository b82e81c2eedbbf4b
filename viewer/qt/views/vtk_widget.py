"""The 3D view's render widgets: a left click told from a left drag, VTK's own keys kept out.

* :class:`VtkWidget`: VTK draws in it (a ``QVTKRenderWindowInteractor``, OpenGL on the GUI thread); used where frames
  can't be drawn on a frame thread.
* :class:`~viewer.qt.views.frame_widget.FrameWidget`: shows frames drawn on the frame thread and feeds the mouse to
  VTK's interactor; the GUI thread does no OpenGL at all.

Both take :class:`PressFilter`'s mouse policy: a left press is held back until the mouse moves more than
:data:`CLICK_SLOP_PX` with the button down; only then is it given to VTK (at the press position) and the drag
rotates (or pans with Shift, or moves a crop-box handle). A release before that is a click: ``clicked`` with VTK
display coordinates (pixels from the bottom-left corner).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, Qt, Signal
from PySide6.QtGui import QMouseEvent
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

#: a press and release closer than this (pixels) is a click, not a drag
CLICK_SLOP_PX = 4


class PressFilter:
    """Mixin of a render widget (a QWidget with ``clicked``, ``pressed``, ``double_clicked``, ``key_reset`` signals)
    that forwards events to VTK through ``forward_press``, ``forward_move`` and ``forward_release``."""

    _held: QMouseEvent | None = None
    closed = False  # set when the view has finalized its VTK objects: nothing is drawn or forwarded after

    def pixel_ratio(self) -> float:
        return float(self.devicePixelRatioF())

    def device_size(self) -> tuple[int, int]:
        """The widget's size in device pixels: the render window's size."""
        scale = self.pixel_ratio()
        return max(1, int(round(scale * self.width()))), max(1, int(round(scale * self.height())))

    def display_xy(self, pos: QPointF) -> tuple[float, float]:
        scale = self.pixel_ratio()
        return float(pos.x()) * scale, float(self.height() - pos.y() - 1) * scale

    def mousePressEvent(self, ev):  # noqa: N802 (Qt naming)
        self.pressed.emit()
        if ev.button() == Qt.LeftButton:
            self._held = QMouseEvent(QEvent.MouseButtonPress, ev.position(), ev.globalPosition(), ev.button(),
                                     ev.buttons(), ev.modifiers())
            return
        if not self.closed:
            self.forward_press(ev)

    def mouseMoveEvent(self, ev):  # noqa: N802
        if self.closed:
            return
        if self._held is not None:
            if not ev.buttons() & Qt.LeftButton:
                self._held = None
            elif (ev.position() - self._held.position()).manhattanLength() > CLICK_SLOP_PX:
                held, self._held = self._held, None
                self.forward_press(held)
        self.forward_move(ev)

    def mouseReleaseEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.LeftButton and self._held is not None:
            self._held = None
            self.clicked.emit(*self.display_xy(ev.position()))
            return
        if not self.closed:
            self.forward_release(ev)

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


class VtkWidget(PressFilter, QVTKRenderWindowInteractor):
    """The render window widget: VTK draws in it on the GUI thread."""

    clicked = Signal(float, float)
    pressed = Signal()
    double_clicked = Signal()
    key_reset = Signal()
    resized = Signal()  # after the render window took the new size

    def __init__(self, parent=None):
        super().__init__(parent)
        self._held = None
        self.closed = False

    def pixel_ratio(self) -> float:
        return float(self._getPixelRatio())

    def forward_press(self, ev) -> None:
        QVTKRenderWindowInteractor.mousePressEvent(self, ev)

    def forward_move(self, ev) -> None:
        QVTKRenderWindowInteractor.mouseMoveEvent(self, ev)

    def forward_release(self, ev) -> None:
        QVTKRenderWindowInteractor.mouseReleaseEvent(self, ev)

    def paintEvent(self, ev):  # noqa: N802
        if not self.closed:
            super().paintEvent(ev)

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        if not self.closed:
            self.resized.emit()

    def closeEvent(self, ev):  # noqa: N802
        # the View3D finalizes the render window (after removing its observers)
        ev.accept()
