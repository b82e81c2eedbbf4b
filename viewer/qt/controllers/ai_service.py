"""The one long-lived AI thread: jobs run one at a time, in order; results come back tagged with job ids.

``AiService`` (GUI thread) owns a QThread named ``radview-ai`` hosting an
``AiWorker`` that owns the ``EngineClient``. The engine runs models in a child
process (which imports torch and keeps the model cache), so this process never
imports torch. ``EngineClient.run`` blocks its caller: only the worker thread
calls it; ``cancel`` is thread-safe and is called from the GUI thread.

Jobs are posted to the worker through a queued signal, so they run in
submission order. A queued job that is cancelled is dropped before it starts
(``cancelled`` is emitted at once); a running one is cancelled through the
engine and ends with ``cancelled`` within about a second. Any exception in the
worker becomes ``failed`` with a readable message and the worker stays ready
for the next job.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ai.api import Cancelled, ModelError
from viewer.qt.jobs import new_job_id

THREAD_NAME = "radview-ai"
#: at most this many progress signals per second reach the GUI (the last message always does)
PROGRESS_INTERVAL_S = 0.03


def _default_client():
    from ai.engine_process import EngineClient  # imports no torch: the child process does

    return EngineClient()


def readable_error(exc: BaseException) -> str:
    """A message for the user: a ModelError's own text, else the exception's type and text."""
    if isinstance(exc, ModelError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "not enough memory for this AI run"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class AiWorker(QObject):
    """Lives on the AI thread; owns the engine client. Slots are invoked through queued signals only."""

    started = Signal(int)
    progressed = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    warmed_up = Signal(str)  # "" when the engine is ready, else why it is not

    def __init__(self, service: AiService, client=None, client_factory: Callable[[], Any] | None = None,
                 own_client: bool = True):
        super().__init__()
        self.service = service
        self.client = client
        self._factory = client_factory or _default_client
        self.own_client = own_client if client is not None else True

    def _client(self):
        if self.client is None:
            self.client = self._factory()
            self.own_client = True
        return self.client

    @Slot()
    def warm_up(self) -> None:
        if self.service.is_shut_down:
            return
        try:
            client = self._client()
            client.start()
            client.warm_up()
        except Exception as exc:  # noqa: BLE001 - reported, and the next run tries again
            if not self.service.is_shut_down:  # (closing the engine ends a warm-up with an error)
                traceback.print_exc()
            self.warmed_up.emit(readable_error(exc))
        else:
            self.warmed_up.emit("")

    @Slot(int, object, object)
    def run_job(self, job_id: int, request, after) -> None:
        service = self.service
        if not service.begin_job(job_id):  # cancelled while queued, or shutting down
            return
        self.started.emit(job_id)
        last = [0.0, None]

        def progress(fraction: float, message: str = "") -> None:
            if service.is_cancelled(job_id):  # a cancel that reached the engine before its run began
                raise Cancelled("cancelled by the user")
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or fraction >= 1.0 or (message != last[1] and now - last[0]
                                                                           >= PROGRESS_INTERVAL_S / 3):
                last[0], last[1] = now, message
                self.progressed.emit(job_id, float(fraction), str(message))

        try:
            client = self._client()
            if service.is_cancelled(job_id):
                raise Cancelled("cancelled before it started")
            result = client.run(request, progress=progress)
            if service.is_cancelled(job_id):  # cancelled just as it finished: the user asked for nothing
                raise Cancelled("cancelled")
            payload = after(result) if after is not None else result
        except Cancelled:
            service.end_job(job_id)
            self.cancelled.emit(job_id)
        except BaseException as exc:  # every error is the user's to read, never a dead worker
            # (after EngineCrashed the client starts a fresh engine process on the next run by itself)
            if not isinstance(exc, ModelError):
                traceback.print_exc()
            service.end_job(job_id)
            if service.is_cancelled(job_id):
                self.cancelled.emit(job_id)
            else:
                self.failed.emit(job_id, readable_error(exc))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            service.end_job(job_id)
            self.finished.emit(job_id, payload)


class AiService(QObject):
    """Submit AI jobs from the GUI thread; signals arrive on the GUI thread, tagged with the job id.

    ``client``: an existing engine client to use (``own_client=False``: not closed on shutdown);
    ``client_factory``: builds one on the AI thread at first use (default: ``EngineClient()``).
    """

    started = Signal(int)
    progressed = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    warmed_up = Signal(str)

    _run_requested = Signal(int, object, object)
    _warm_up_requested = Signal()

    def __init__(self, parent: QObject | None = None, client=None, client_factory=None, own_client: bool = True):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending: list[int] = []  # submitted, not started
        self._running: int | None = None
        self._cancelled: set[int] = set()
        self._stopping = threading.Event()
        self._warming = False
        self.thread = QThread()
        self.thread.setObjectName(THREAD_NAME)
        self.worker = AiWorker(self, client, client_factory, own_client)
        self.worker.moveToThread(self.thread)
        self._run_requested.connect(self.worker.run_job)
        self._warm_up_requested.connect(self.worker.warm_up)
        for name in ("started", "progressed", "finished", "failed", "cancelled", "warmed_up"):
            getattr(self.worker, name).connect(getattr(self, name))
        self.warmed_up.connect(self._on_warmed_up)
        self.thread.start()

    # --- GUI thread API -------------------------------------------------------------------
    def submit(self, request, after: Callable[[Any], Any] | None = None) -> int:
        """Queue ``request``; return its job id. ``after(result)`` runs on the AI thread (e.g. to build layers)
        and its return value is what ``finished`` carries (the ``InferenceResult`` itself without it)."""
        if self._stopping.is_set():
            raise RuntimeError("the AI service has been shut down")
        job_id = new_job_id()
        with self._lock:
            self._pending.append(job_id)
        self._run_requested.emit(job_id, request, after)
        return job_id

    def warm_up(self) -> None:
        """Start the engine's child process in the background (returns at once)."""
        if self._stopping.is_set() or self._warming:
            return
        self._warming = True
        self._warm_up_requested.emit()

    def cancel(self, job_id: int) -> None:
        """Cancel a running job through the engine, or drop a queued one (``cancelled`` is emitted at once)."""
        dropped = False
        with self._lock:
            if job_id in self._cancelled:
                return
            if job_id == self._running:
                self._cancelled.add(job_id)
                running = True
            elif job_id in self._pending:
                self._pending.remove(job_id)
                self._cancelled.add(job_id)
                running, dropped = False, True
            else:
                return
        if running:
            client = self.worker.client
            if client is not None:
                try:
                    client.cancel()
                except Exception:  # noqa: BLE001 - the run then ends by itself
                    traceback.print_exc()
        elif dropped:
            self.cancelled.emit(job_id)

    def is_busy(self) -> bool:
        with self._lock:
            return self._running is not None or bool(self._pending)

    @property
    def running_job(self) -> int | None:
        return self._running

    def is_cancelled(self, job_id: int) -> bool:
        return job_id in self._cancelled

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel everything, close the engine, stop the thread (never terminate). Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            dropped, self._pending = self._pending, []
            self._cancelled.update(dropped)
            running = self._running
            if running is not None:
                self._cancelled.add(running)
        client = self.worker.client
        if client is not None:
            try:
                if running is not None:
                    client.cancel()
                if self.worker.own_client:
                    client.close(timeout=3)  # thread-safe: a run or warm-up in progress ends at once
            except Exception:  # noqa: BLE001 - closing is best effort at exit
                traceback.print_exc()
        self.thread.quit()
        if not self.thread.wait(timeout_ms):
            print(f"radview: the AI thread did not stop within {timeout_ms / 1000:.0f} s")
            return
        client = self.worker.client  # (created by a warm-up that was starting as we stopped)
        if client is not None and self.worker.own_client:
            try:
                client.close(timeout=3)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        self.worker.client = None

    @property
    def is_shut_down(self) -> bool:
        return self._stopping.is_set()

    # --- called by the worker (AI thread) -----------------------------------------------------
    def begin_job(self, job_id: int) -> bool:
        """The worker starts ``job_id``: False when it was cancelled while queued (or the service is stopping)."""
        with self._lock:
            if job_id in self._pending:
                self._pending.remove(job_id)
            if job_id in self._cancelled or self._stopping.is_set():
                return False
            self._running = job_id
            return True

    def end_job(self, job_id: int) -> None:
        with self._lock:
            if self._running == job_id:
                self._running = None

    def _on_warmed_up(self, _error: str) -> None:
        self._warming = False
