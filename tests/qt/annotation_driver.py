"""Drives a real radview process from inside (``RADVIEW_STARTUP_HOOK=annotation_driver:<function>``).

``draw_lengths``: once the study is open, draws lengths one by one on the
axial view with real mouse and key events (the user's code path), one
slice further each time, and prints ``COMPLETED <id> <value>`` when the
autosave has put that annotation on disk. It goes on until the process is
killed (or ``RADVIEW_DRIVER_COUNT`` are drawn).

``report``: once the study and its saved annotations are open, prints
``HAVE <id> <value>`` for each annotation, then ``END``, and closes the window.
"""
from __future__ import annotations

import os

from input_events import drag
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest


def app_ready(window) -> bool:
    return (window.session.volume is not None and not window.tasks._running and window.opener.after_load is None
            and bool(window.autosave.study_uid))


def every(ms: int, step) -> QTimer:
    timer = QTimer()
    timer.setInterval(ms)
    timer.timeout.connect(step)
    timer.start()
    return timer


def draw_lengths(window) -> None:
    limit = int(os.environ.get("RADVIEW_DRIVER_COUNT", "100000"))
    state = {"n": 0, "waiting": None}

    def step() -> None:
        if not app_ready(window):
            return
        axial = window.layout_widget.views["axial"]
        if state["waiting"] is not None:  # the last one drawn: on disk yet?
            ident, value, generation = state["waiting"]
            if window.autosave.saved_generation < generation:
                return
            print(f"COMPLETED {ident} {value:.4f}", flush=True)
            state["waiting"] = None
            state["n"] += 1
            if state["n"] >= limit:
                timer.stop()
            return
        n = state["n"]
        if n == 0:
            axial.setFocus()
            QTest.keyClick(axial, Qt.Key_L)
        axial.set_slice(20 + n % 120)  # each on its own slice, so no drag starts on an earlier one
        before = len(window.session.annotations)
        centre = axial.viewport().rect().center()
        start = centre + QPoint(-60 + (n % 5) * 7, -40 + (n % 3) * 11)
        drag(axial.viewport(), start, start + QPoint(90 + (n % 4) * 9, 50 - (n % 6) * 8))
        if len(window.session.annotations) != before + 1:
            raise RuntimeError(f"drawing {n} did not add an annotation")
        added = list(window.session.annotations)[-1]
        state["waiting"] = (added.id, added.value, window.autosave.generation)

    timer = every(30, step)
    window._driver_timer = timer


def report(window) -> None:
    def step() -> None:
        if not app_ready(window):
            return
        timer.stop()
        print(f"LOADED {window.autosave.study_uid} {len(window.session.annotations)}", flush=True)
        axial = window.layout_widget.views["axial"]
        for a in window.session.annotations:
            axial.set_slice(axial.plane.slice_of(a.points[0]))
            shown = a.id in {x.id for x in axial.annotation_overlay.in_plane()}
            print(f"HAVE {a.id} {a.value:.4f} {'shown' if shown else 'hidden'}", flush=True)
        print("END", flush=True)
        window.close()

    timer = every(50, step)
    window._driver_timer = timer
