"""Synthetic mouse events with modifiers and held buttons (QTest cannot send Shift+move or wheel)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication


def _send(widget, event) -> None:
    QApplication.sendEvent(widget, event)
    QApplication.processEvents()


def mouse(widget, kind, pos, button=Qt.NoButton, buttons=Qt.NoButton, modifiers=Qt.NoModifier) -> None:
    p = QPointF(pos)
    _send(widget, QMouseEvent(kind, p, QPointF(widget.mapToGlobal(p.toPoint())), button, buttons, modifiers))


def move(widget, pos, buttons=Qt.NoButton, modifiers=Qt.NoModifier) -> None:
    mouse(widget, QEvent.MouseMove, pos, Qt.NoButton, buttons, modifiers)


def drag(widget, start, end, button=Qt.LeftButton, steps: int = 8, modifiers=Qt.NoModifier) -> None:
    """Press at ``start``, move in steps to ``end`` with the button held, release."""
    start, end = QPointF(start), QPointF(end)
    mouse(widget, QEvent.MouseButtonPress, start, button, button, modifiers)
    for i in range(1, steps + 1):
        move(widget, start + (end - start) * (i / steps), button, modifiers)
    mouse(widget, QEvent.MouseButtonRelease, end, button, Qt.NoButton, modifiers)


def wheel(widget, pos, clicks: int = 1, modifiers=Qt.NoModifier) -> None:
    """``clicks`` > 0 turns the wheel away from the user (up), < 0 towards the user (down)."""
    p = QPointF(pos)
    _send(widget, QWheelEvent(p, QPointF(widget.mapToGlobal(p.toPoint())), QPoint(0, 0), QPoint(0, 120 * clicks),
                              Qt.NoButton, modifiers, Qt.NoScrollPhase, False))
