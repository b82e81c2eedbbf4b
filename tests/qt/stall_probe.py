"""How long the GUI event loop was blocked: the largest gap between the ticks of a 5 ms timer.

Tests assert the largest gap against :data:`STALL_BOUND_S`, one bound for every test that checks the GUI keeps
serving events while work runs (loading, an AI run, the 3D view's set-up, an export). The strict targets (50 ms)
are measured and printed with the machine's load average by ``bench/gui_stall.py`` and ``bench/ai.py``, not
asserted here.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer

#: The largest gap a test accepts: a real block breaks it, machine load alone doesn't. Work moved back onto the GUI
#: thread (the demo series read, a model run, an export written, the 3D view set up there: the last once froze the
#: window for 6-16 s) takes far longer than 500 ms; on 2 cores shared with other work, the GUI process was measured
#: not getting the CPU for 85-141 ms (failing the old 50/100 ms limits) while it did nothing wrong.
STALL_BOUND_S = 0.5


class StallProbe:
    """A 5 ms QTimer; the largest gap between its ticks is the longest the GUI event loop was stalled."""

    def __init__(self, interval_ms: int = 5):
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.max_gap = 0.0
        self.gaps = []
        self.ticks = 0
        self._last = 0.0

    def start(self) -> StallProbe:
        import gc

        gc.collect()
        gc.freeze()  # as viewer.qt.app.main does once the window is up: long-lived objects leave the collector's passes
        self._last = time.perf_counter()
        self.timer.start()
        return self

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last, now))
        self.max_gap = max(self.max_gap, now - self._last)
        self._last = now
        self.ticks += 1

    def stop(self) -> float:
        import gc

        self._tick()
        self.timer.stop()
        gc.unfreeze()
        return self.max_gap
