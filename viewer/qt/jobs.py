"""Run a function off the GUI thread: progress, cancel, and a result delivered to the GUI thread by job id.

One QThread per task; the worker checks a ``threading.Event`` for cancel (the
function receives it); threads are never terminated, only asked to stop and
joined (``shutdown``).
"""
from __future__ import annotations

import itertools
import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

_ids = itertools.count(1)


class _Worker(QObject):
    progressed = Signal(int, int, int, str)  # job id, done, total, message
    finished = Signal(int, object)  # job id, result
    failed = Signal(int, str)  # job id, readable message
    cancelled = Signal(int)

    def __init__(self, job_id: int, fn: Callable[..., Any], cancel: threading.Event):
        super().__init__()
        self.job_id, self.fn, self.cancel = job_id, fn, cancel

    @Slot()
    def run(self) -> None:
        from viewer.io.dicom_index import Cancelled

        def progress(done: int, total: int, message: str = "") -> None:
            self.progressed.emit(self.job_id, int(done), int(total), str(message))

        try:
            result = self.fn(progress, self.cancel)
        except Cancelled:
            self.cancelled.emit(self.job_id)
        except MemoryError:
            self.failed.emit(self.job_id, "not enough memory for this task")
        except Exception as exc:  # reported to the user, never crashes the viewer
            traceback.print_exc()
            self.failed.emit(self.job_id, f"{type(exc).__name__}: {exc}")
        else:
            self.finished.emit(self.job_id, result)


class BackgroundTasks(QObject):
    """Starts tasks on their own QThread; emits results on the GUI thread, tagged with the job id."""

    progressed = Signal(int, int, int, str)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._running: dict[int, tuple[QThread, _Worker, threading.Event]] = {}

    def submit(self, fn: Callable[[Callable, threading.Event], Any]) -> int:
        """Run ``fn(progress, cancel_event)`` in a new thread; return its job id."""
        job_id = next(_ids)
        cancel = threading.Event()
        thread = QThread()
        worker = _Worker(job_id, fn, cancel)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progressed.connect(self.progressed)
        worker.finished.connect(self.finished)
        worker.failed.connect(self.failed)
        worker.cancelled.connect(self.cancelled)
        for sig in (worker.finished, worker.failed, worker.cancelled):
            sig.connect(thread.quit)
        thread.finished.connect(lambda j=job_id: self._running.pop(j, None))
        self._running[job_id] = (thread, worker, cancel)
        thread.start()
        return job_id

    def cancel(self, job_id: int) -> None:
        entry = self._running.get(job_id)
        if entry is not None:
            entry[2].set()

    def is_running(self, job_id: int) -> bool:
        return job_id in self._running

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Ask every task to stop and wait for its thread to finish (never terminate)."""
        for thread, _worker, cancel in list(self._running.values()):
            cancel.set()
        for thread, _worker, _cancel in list(self._running.values()):
            thread.quit()
            thread.wait(timeout_ms)
        self._running.clear()
