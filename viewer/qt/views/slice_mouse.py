"""The mouse of a slice view (``shared/CONVENTIONS.md``): left-drag window/level (or an annotation's, or the
brush's, drag), Ctrl+left-drag turns the crosshair (oblique planes), middle-drag pans, right-drag and Ctrl+wheel
zoom, the wheel scrolls one image per notch (toward the user: the next image), Shift+click moves the cursor."""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt


class SliceViewBox(pg.ViewBox):
    """Mouse bindings of a reading view (instead of pyqtgraph's plot-style defaults)."""

    def __init__(self, view):  # the SliceView
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.0)
        self._view = view
        self._annotating = False  # the current left drag draws, moves or reshapes an annotation
        self._refused = False  # the current left drag would paint on an oblique plane

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (Qt naming)
        ev.accept()
        button = ev.button()
        delta = ev.pos() - ev.lastPos()
        if button == Qt.LeftButton and ev.modifiers() & Qt.ControlModifier:  # turn the crosshair
            self._view.turn_crosshair(self.mapToView(ev.lastPos()), self.mapToView(ev.pos()))
        elif button == Qt.LeftButton and not (ev.modifiers() & Qt.ShiftModifier):
            overlay = self._view.annotation_overlay
            if ev.isStart():
                self._refused = self._view.refuse_oblique_painting()
                self._annotating = not self._refused and overlay.begin_drag(ev.buttonDownScenePos(), ev.scenePos())
            if self._refused:  # a brush stroke on an oblique plane: nothing happens
                return
            if self._annotating:
                if ev.isFinish():
                    self._annotating = False
                    overlay.finish_drag(ev.scenePos())
                else:
                    overlay.continue_drag(ev.scenePos())
                return
            self._view.drag_window(delta.x(), delta.y())
        elif button == Qt.MiddleButton:
            self._view.fitted = False
            shift = self.mapToView(ev.lastPos()) - self.mapToView(ev.pos())
            self.translateBy(x=shift.x(), y=shift.y())
        elif button == Qt.RightButton:
            self._view.fitted = False
            factor = math.exp(delta.y() * 0.01)
            self.scaleBy((factor, factor), center=self.mapToView(ev.buttonDownPos()))
            self._view.viewport().update()

    def mouseClickEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.LeftButton and ev.modifiers() & Qt.ShiftModifier:
            ev.accept()
            self._view.move_cursor_to_scene(ev.scenePos())
        elif ev.button() == Qt.LeftButton and self._view.annotation_overlay.click(ev.scenePos()):
            ev.accept()
        else:
            ev.ignore()

    def wheelEvent(self, ev, axis=None):  # noqa: N802
        ev.accept()
        steps = ev.delta() / 120.0 if hasattr(ev, "delta") else ev.angleDelta().y() / 120.0
        if ev.modifiers() & Qt.ControlModifier:
            self._view.fitted = False
            factor = 0.85 ** steps
            self.scaleBy((factor, factor), center=self.mapToView(ev.pos()))
            self._view.viewport().update()
        elif steps:  # wheel towards the user = next slice; one slice per notch (fine-grained wheels: at least 1)
            clicks = int(round(steps)) or (1 if steps > 0 else -1)
            self._view.step_slice(-clicks)
