"""The one QApplication of the process, with the one-time pyqtgraph configuration.

Used by the GUI entry point (:mod:`viewer.qt.app`) and by offscreen rendering (:mod:`viewer.qt.capture.offscreen`),
which must not import the main window.
"""
from __future__ import annotations

import sys


def create_app(argv: list[str] | None = None):
    """The QApplication (the existing one when there is one)."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("radview")
    return app
