"""Background jobs: one job-id counter, one way to run work off the GUI thread, one progress bar and Cancel button.

:class:`BackgroundTasks` runs ``work(progress, cancel)`` on its own QThread and emits its outcome on the GUI
thread, tagged with the job id; ``cancel`` is a ``threading.Event`` the work checks (raising
:class:`~radview_base.cancel.Cancelled` stops it); threads are never terminated, only asked to stop and joined
(``shutdown``). Views that build things in the background without telling the user (thumbnails, 3D surfaces)
use it directly.

:class:`Jobs` is the window's jobs service on top of it::

    job = jobs.submit(work, on_done, "Loading the series…")   # progress and Cancel in the status bar

``on_done(result)`` runs on the GUI thread; a failure goes to ``on_failed(message)`` or, by default, to the
notifier (a non-modal box); a job cancelled by the user says "Cancelled". ``progress(done, total, message)``
moves the bar (a message replaces the text beside it) and ``progress.preview(value)`` hands a partial result
(the first slice of a series) to ``on_preview`` on the GUI thread. ``cancel(job, drop=True)`` supersedes a job:
nothing of it (result, failure, preview) is delivered afterwards. Work that runs elsewhere (the AI thread) shows
its progress and Cancel through the same status bar with :meth:`Jobs.track`, :meth:`Jobs.set_progress` and
:meth:`Jobs.end`, and takes its ids from :func:`new_job_id`. The newest cancellable job is the one shown; when it
ends, the one before it (still running) shows again.
"""
from __future__ import annotations

import itertools
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

from radview_base.cancel import Cancelled

_ids = itertools.count(1)
CANCELLED_TEXT = "Cancelled"
CANCELLING_TEXT = "Cancelling…"


def new_job_id() -> int:
    """A job id never given before in this process (worker jobs and AI jobs share the counter)."""
    return next(_ids)


class Progress:
    """What a work function gets as ``progress``: ``progress(done, total, message="")``, and ``preview(value)``."""

    def __init__(self, worker: _Worker):
        self.worker = worker

    def __call__(self, done: int, total: int, message: str = "") -> None:
        self.worker.progressed.emit(self.worker.job_id, int(done), int(total), str(message))

    def preview(self, value: Any) -> None:
        """A partial result, delivered on the GUI thread tagged with the job id (dropped if the job was dropped)."""
        self.worker.previewed.emit(self.worker.job_id, value)


class _Worker(QObject):
    progressed = Signal(int, int, int, str)  # job id, done, total, message
    previewed = Signal(int, object)  # job id, partial result
    finished = Signal(int, object)  # job id, result
    failed = Signal(int, str)  # job id, readable message
    cancelled = Signal(int)

    def __init__(self, job_id: int, fn: Callable[..., Any], cancel: threading.Event):
        super().__init__()
        self.job_id, self.fn, self.cancel = job_id, fn, cancel

    @Slot()
    def run(self) -> None:
        try:
            result = self.fn(Progress(self), self.cancel)
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
    previewed = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._running: dict[int, tuple[QThread, _Worker, threading.Event]] = {}

    def submit(self, fn: Callable[[Progress, threading.Event], Any]) -> int:
        """Run ``fn(progress, cancel_event)`` in a new thread; return its job id."""
        return self.start(fn)

    def start(self, fn: Callable[[Progress, threading.Event], Any]) -> int:
        job_id = new_job_id()
        cancel = threading.Event()
        thread = QThread()
        worker = _Worker(job_id, fn, cancel)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progressed.connect(self.progressed)
        worker.previewed.connect(self.previewed)
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

    @property
    def running(self) -> bool:
        """Some task's thread is still running."""
        return bool(self._running)

    def cancel_all(self) -> None:
        """Ask every task to stop, without waiting (each ends through its ``cancelled`` signal)."""
        for _thread, _worker, cancel in list(self._running.values()):
            cancel.set()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Ask every task to stop and wait for its thread to finish (never terminate): for a window that closes."""
        for _thread, _worker, cancel in list(self._running.values()):
            cancel.set()
        for thread, _worker, _cancel in list(self._running.values()):
            thread.quit()
            thread.wait(timeout_ms)
        self._running.clear()


@dataclass
class JobEntry:
    """What the service knows of one job while it runs."""

    message: str | None = None
    cancellable: bool = True
    label: str = ""
    cancel_text: str = "Cancel"
    cancel_tip: str = ""
    on_done: Callable[[Any], None] | None = None
    on_failed: Callable[[str], None] | None = None
    on_cancelled: Callable[[], None] | None = None
    on_preview: Callable[[Any], None] | None = None
    on_cancel: Callable[[], None] | None = None  # a tracked job: how the Cancel button stops it
    done: int = 0
    total: int = 0  # 0: busy (no fraction known yet)
    cancelling: bool = False


class Jobs(BackgroundTasks):
    """The window's jobs service: background work with its progress and Cancel in the status bar.

    ``progress_label``, ``progress_bar`` and ``cancel_button`` are the status bar's widgets of the job shown.
    """

    def __init__(self, notifier, status_bar: QStatusBar, parent: QObject | None = None):
        super().__init__(parent)
        self.notifier = notifier
        self.entries: dict[int, JobEntry] = {}
        self.shown: list[int] = []  # cancellable jobs still running, oldest first; the last one is on screen
        self.progress_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(240)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_current)
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.hide()
            status_bar.addPermanentWidget(widget)
        self.progressed.connect(self._on_progress)
        self.previewed.connect(self._on_preview)
        self.finished.connect(self._on_finished)
        self.failed.connect(self._on_failed)
        self.cancelled.connect(self._on_cancelled)

    # --- starting -------------------------------------------------------------------------------------------
    def submit(self, work: Callable[[Progress, threading.Event], Any], on_done: Callable[[Any], None] | None = None,
               message: str | None = None, cancellable: bool = True, *, label: str = "", cancel_text: str = "Cancel",
               cancel_tip: str = "", on_preview=None, on_failed=None, on_cancelled=None) -> int:
        """Run ``work(progress, cancel)`` off the GUI thread; return its job id.

        ``message``: said in the status bar as it starts. ``cancellable``: its progress, ``label`` and a Cancel
        button (``cancel_text``) show in the status bar while it runs (else it is short, and only ``message``
        shows). ``on_done(result)``, ``on_preview(value)``, ``on_failed(message)`` and ``on_cancelled()`` run on
        the GUI thread.
        """
        job = self.start(work)
        self.entries[job] = JobEntry(message, cancellable, label, cancel_text, cancel_tip, on_done, on_failed,
                                     on_cancelled, on_preview)
        if message:
            self.notifier.info(message)
        if cancellable:
            self.shown.append(job)
            self._refresh()
        return job

    def track(self, job: int, label: str, on_cancel: Callable[[], None], cancel_text: str = "Cancel",
              cancel_tip: str = "") -> None:
        """Show the progress and Cancel of a job that runs elsewhere (its id from :func:`new_job_id`)."""
        self.entries[job] = JobEntry(None, True, label, cancel_text, cancel_tip, on_cancel=on_cancel)
        self.shown.append(job)
        self._refresh()

    def set_progress(self, job: int, done: int, total: int, label: str | None = None) -> None:
        entry = self.entries.get(job)
        if entry is None:
            return
        entry.done, entry.total = int(done), int(total)
        if label is not None:
            entry.label = label
        if self.current_job == job:
            self._refresh()

    def end(self, job: int) -> None:
        """A tracked job ended (or a job is forgotten): its progress leaves the status bar."""
        self.entries.pop(job, None)
        if job in self.shown:
            self.shown.remove(job)
            self._refresh()

    # --- cancelling -------------------------------------------------------------------------------------------
    @property
    def current_job(self) -> int | None:
        """The job whose progress and Cancel are on screen."""
        return self.shown[-1] if self.shown else None

    def cancel(self, job: int, drop: bool = False) -> None:
        """Ask ``job`` to stop. ``drop``: it is superseded; nothing of it is delivered any more."""
        entry = self.entries.get(job)
        if drop:
            self.end(job)
        elif entry is not None and entry.on_cancel is not None:
            entry.on_cancel()
            return
        elif entry is not None:
            entry.cancelling = True
            if self.current_job == job:
                self._refresh()
        super().cancel(job)

    def cancel_current(self) -> None:
        """The Cancel button: stop the job shown."""
        job = self.current_job
        if job is not None and not self.entries[job].cancelling:
            self.cancel(job)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop every job (nothing more is delivered) and join the threads."""
        self.entries.clear()
        self.shown.clear()
        self._refresh()
        super().shutdown(timeout_ms)

    # --- the status bar -------------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        job = self.current_job
        widgets = (self.progress_label, self.progress_bar, self.cancel_button)
        if job is None:
            for widget in widgets:
                widget.hide()
            return
        entry = self.entries[job]
        text = CANCELLING_TEXT if entry.cancelling else entry.label
        self.progress_label.setText(text)
        self.progress_label.setToolTip(text)
        self.progress_label.setVisible(bool(text))
        self.progress_bar.setRange(0, max(entry.total, 0))
        self.progress_bar.setValue(entry.done)
        self.progress_bar.show()
        self.cancel_button.setText(entry.cancel_text)
        self.cancel_button.setToolTip(entry.cancel_tip)
        self.cancel_button.setEnabled(not entry.cancelling)
        self.cancel_button.show()

    # --- outcomes (GUI thread) --------------------------------------------------------------------------------------
    def _on_progress(self, job: int, done: int, total: int, message: str) -> None:
        entry = self.entries.get(job)
        if entry is not None and entry.cancellable:
            self.set_progress(job, done, total, message or None)

    def _on_preview(self, job: int, value) -> None:
        entry = self.entries.get(job)
        if entry is not None and entry.on_preview is not None:
            entry.on_preview(value)

    def _take(self, job: int) -> JobEntry | None:
        entry = self.entries.get(job)
        self.end(job)
        return entry

    def _on_finished(self, job: int, result) -> None:
        entry = self._take(job)
        if entry is not None and entry.on_done is not None:
            entry.on_done(result)

    def _on_failed(self, job: int, message: str) -> None:
        entry = self._take(job)
        if entry is None:
            return
        if entry.on_failed is not None:
            entry.on_failed(message)
        else:
            self.notifier.error(message)

    def _on_cancelled(self, job: int) -> None:
        entry = self._take(job)
        if entry is None:
            return
        if entry.on_cancelled is not None:
            entry.on_cancelled()
        elif entry.cancellable:
            self.notifier.info(CANCELLED_TEXT)
