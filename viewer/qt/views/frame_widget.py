"""The 3D view's widget when its frames are drawn on the frame thread: a picture, and the mouse fed to VTK.

:class:`FrameWidget` paints the last frame (an RGB array from :mod:`viewer.render3d.frame_thread`) with ``QPainter``,
or, before there is one, "Preparing 3D…" on black: never leftover pixels. Mouse and wheel events go to the
:class:`~viewer.render3d.input_window.InputWindow`'s interactor (VTK display coordinates: y up, device pixels), with
the click-or-drag policy of :class:`~viewer.qt.views.vtk_widget.PressFilter`.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QWidget

from viewer.qt.views.vtk_widget import PressFilter

BUTTON_EVENTS = {Qt.LeftButton: ("LeftButtonPressEvent", "LeftButtonReleaseEvent"),
                 Qt.MiddleButton: ("MiddleButtonPressEvent", "MiddleButtonReleaseEvent"),
                 Qt.RightButton: ("RightButtonPressEvent", "RightButtonReleaseEvent")}


class FrameWidget(PressFilter, QWidget):
    """Shows frames; forwards the mouse to ``input_window.interactor``."""

    clicked = Signal(float, float)
    pressed = Signal()
    double_clicked = Signal()
    key_reset = Signal()
    resized = Signal()  # after the input window took the new size

    def __init__(self, input_window, parent: QWidget | None = None, message: str = ""):
        super().__init__(parent)
        self.input_window = input_window
        self.interactor = input_window.interactor
        self.message = message  # shown while there is no frame
        self.rgb: np.ndarray | None = None  # the frame shown, (h, w, 3) uint8, top row first
        self._image: QImage | None = None
        self._button = Qt.NoButton
        self._wheel = 0
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        self.setMouseTracking(True)  # hover: the crop box's handles
        self.setFocusPolicy(Qt.WheelFocus)
        self.setMinimumSize(64, 64)

    # --- the picture ------------------------------------------------------------------------------
    def set_frame(self, rgb: np.ndarray | None) -> None:
        """Show ``rgb`` (None: the message on black)."""
        self.rgb = rgb
        if rgb is None:
            self._image = None
        else:
            h, w, _ = rgb.shape
            data = np.ascontiguousarray(rgb)
            self._image = QImage(data.data, w, h, 3 * w, QImage.Format_RGB888)
            self._image_data = data  # the QImage reads this memory
        self.update()

    def set_message(self, text: str) -> None:
        self.message = text
        if self.rgb is None:
            self.update()

    def paintEvent(self, ev):  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self._image is not None and not self.closed:
            painter.drawImage(self.rect(), self._image)
        elif self.message:
            painter.setPen(QColor(0x8a, 0x8a, 0x8a))
            painter.drawText(self.rect(), Qt.AlignCenter, self.message)
        painter.end()

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        if not self.closed:
            self.input_window.set_size(*self.device_size())
            self.resized.emit()

    # --- the mouse, to VTK ------------------------------------------------------------------------
    def _event_info(self, ev, repeat: int = 0) -> None:
        x, y = self.display_xy(ev.position())
        mods = ev.modifiers()
        self.interactor.SetEventInformation(int(round(x)), int(round(y)), int(bool(mods & Qt.ControlModifier)),
                                            int(bool(mods & Qt.ShiftModifier)), chr(0), repeat, None)

    def forward_press(self, ev) -> None:
        names = BUTTON_EVENTS.get(ev.button())
        if names is None:
            return
        self._button = ev.button()
        self._event_info(ev)
        getattr(self.interactor, names[0])()

    def forward_move(self, ev) -> None:
        self._event_info(ev)
        self.interactor.MouseMoveEvent()

    def forward_release(self, ev) -> None:
        names = BUTTON_EVENTS.get(self._button)
        self._button = Qt.NoButton
        if names is None:
            return
        self._event_info(ev)
        getattr(self.interactor, names[1])()

    def wheelEvent(self, ev):  # noqa: N802
        if self.closed:
            return
        self._wheel += ev.angleDelta().y()
        self._event_info(ev)
        if self._wheel >= 120:
            self._wheel = 0
            self.interactor.MouseWheelForwardEvent()
        elif self._wheel <= -120:
            self._wheel = 0
            self.interactor.MouseWheelBackwardEvent()
        ev.accept()

    def enterEvent(self, ev):  # noqa: N802
        if not self.closed:
            self.interactor.EnterEvent()

    def leaveEvent(self, ev):  # noqa: N802
        if not self.closed:
            self.interactor.LeaveEvent()
